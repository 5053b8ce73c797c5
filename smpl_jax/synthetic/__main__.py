"""``python -m smpl_jax.synthetic OUT.npz [--seed S]`` (console script ``smpl-jax-synthetic``).

Writes a synthetic body model (`generate`; seed 0: the built-in body) to an `.npz`
readable by `smpl_jax.load` and `np.load`, through `smpl_jax.save_npz`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from smpl_jax.io import save_npz
from smpl_jax.synthetic.generator import generate


def main(argv=None) -> int:
    """CLI: write a synthetic body model to an `.npz` file."""
    parser = argparse.ArgumentParser(
        prog="smpl-jax-synthetic",
        description="Write the procedurally generated, redistributable SMPL-format body "
        "(not SMPL) to an .npz readable by smpl_jax.load and by np.load.",
    )
    parser.add_argument("out", type=pathlib.Path, help="output file, e.g. synthetic.npz")
    parser.add_argument("--seed", type=int, default=0,
                        help="0 (default): the built-in body; others: another person")  # fmt: skip
    args = parser.parse_args(argv)
    if args.out.suffix.lower() != ".npz":
        parser.error(f"OUT must end in .npz (smpl_jax.load tells formats by suffix): {args.out}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")
    arrays = generate(args.seed)
    path = save_npz(arrays, args.out)
    print(f"wrote {path}: synthetic body (seed {args.seed}), {len(arrays['v_template'])} "
          f"vertices, {len(arrays['f'])} faces, keys {', '.join(arrays)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build a SPIN-format dataset into TFDS array_record files.

    python -m hkmr_jax.data.build --dataset h36m --manual_dir ~/spin_data \\
        --data_dir ~/tensorflow_datasets [--splits valid_p1,valid_p2] [--num_workers 8]
    python -m hkmr_jax.data.build --dataset mpii --manual_dir ~/spin_data \\
        --data_dir ~/tensorflow_datasets \\
        --mpii_annotations ~/mpii/mpii_human_pose_v1_u12_1.mat

`manual_dir` holds SPIN's `dataset_extras/*.npz` and the image folders; run with
`--layout` to print the layout every dataset expects. `--mpii_annotations` (mpii only)
adds MPII's per-joint visibility flags (`hkmr_jax.data.mpii_visibility`), which the
`invisible` evaluator (paper Table 4 right) needs. The result is read with
`hkmr_jax.data.spin_format.load_split(name, split, data_dir)`.
"""

from __future__ import annotations

import argparse
import sys

from hkmr_jax.data import spin_format


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0 built, 1 user error)."""
    parser = argparse.ArgumentParser(
        prog="python -m hkmr_jax.data.build",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=spin_format.expected_layout(),
    )
    parser.add_argument("--dataset", help=f"one of: {', '.join(spin_format.DATASETS)}")
    parser.add_argument("--manual_dir", help="folder with dataset_extras/ and the images")
    parser.add_argument("--data_dir", help="TFDS data directory to write to")
    parser.add_argument("--splits", help="comma-separated subset of the splits (default: all)")
    parser.add_argument(
        "--num_workers", type=int, default=None, help="image threads (default: CPU count)"
    )
    parser.add_argument(
        "--mpii_annotations",
        help="mpii only: MPII's mpii_human_pose_v1_u12_1.mat, for the visibility flags",
    )
    parser.add_argument("--layout", action="store_true", help="print the expected layout")
    args = parser.parse_args(argv)
    if args.layout:
        print(spin_format.expected_layout(args.dataset if args.dataset in spin_format.DATASETS
                                          else None))  # fmt: skip
        return 0
    for flag in ("dataset", "manual_dir", "data_dir"):
        if getattr(args, flag) is None:
            parser.error(f"--{flag} is required")
    splits = args.splits.split(",") if args.splits else None
    # TFDS's own per-split bars count without a total; ours know it.
    spin_format.tfds.disable_progress_bar()
    try:
        builder = spin_format.build(
            args.dataset,
            args.manual_dir,
            args.data_dir,
            splits=splits,
            num_workers=args.num_workers,
            progress=True,
            mpii_annotations=args.mpii_annotations,
        )
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{s}: {i.num_examples}" for s, i in builder.info.splits.items())
    print(f"{spin_format.TFDS_NAME}/{args.dataset} at {builder.data_dir} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build a SPIN-format dataset into TFDS array_record files.

    python -m hkmr_jax.data.build --dataset h36m --manual_dir ~/spin_data \\
        --data_dir ~/tensorflow_datasets [--splits valid_p1,valid_p2] [--num_workers 8]

`--layout` prints the layout `manual_dir` must have; `--mpii_annotations` (mpii only) adds
MPII's visibility flags. Read the result with `spin_format.load_split`. Details:
docs/spin_format.md.
"""

from __future__ import annotations

import argparse
import sys

import tensorflow_datasets as tfds

from hkmr_jax import cli
from hkmr_jax.data import spin_format

_PROG = "python -m hkmr_jax.data.build"


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0 built; a user error: a line
    on stderr and exit status 2, with the traceback under `--verbose`)."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=spin_format.expected_layout(),
    )
    parser.add_argument("--dataset", help=f"one of: {', '.join(spin_format.DATASETS)}")
    parser.add_argument("--manual_dir", help="folder with dataset_extras/ and the images")
    parser.add_argument("--data_dir", help="TFDS data directory to write to")
    parser.add_argument(
        "--splits",
        help="comma-separated subset of the splits (default: every split whose npz file "
        "is in manual_dir; the others are skipped, with a note)",
    )
    parser.add_argument(
        "--num_workers", type=int, default=None, help="image threads (default: CPU count)"
    )
    parser.add_argument(
        "--mpii_annotations",
        help="mpii only: MPII's mpii_human_pose_v1_u12_1.mat, for the visibility flags",
    )
    parser.add_argument("--layout", action="store_true", help="print the expected layout")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of errors")
    args = parser.parse_args(argv)
    cli.set_verbose(args.verbose)
    if args.layout:
        print(spin_format.expected_layout(args.dataset if args.dataset in spin_format.DATASETS
                                          else None))  # fmt: skip
        return 0
    for flag in ("dataset", "manual_dir", "data_dir"):
        if getattr(args, flag) is None:
            parser.error(f"--{flag} is required")
    if args.num_workers is not None and args.num_workers < 0:
        parser.error(f"--num_workers must be 0 or more, got {args.num_workers}.")
    try:
        with cli.report_errors(_PROG):
            try:
                builder = _build(args)
            except ImportError as e:  # e.g. scipy for --mpii_annotations
                raise cli.UserError(str(e)) from None
    except SystemExit as e:
        return e.code
    counts = ", ".join(f"{s}: {i.num_examples}" for s, i in builder.info.splits.items())
    print(f"{spin_format.TFDS_NAME}/{args.dataset} at {builder.data_dir} ({counts})")
    return 0


def _build(args):
    """Build the requested splits (default: those whose npz exists, naming the others)."""
    splits = [s for s in args.splits.split(",") if s] if args.splits else None
    if splits is None and args.dataset in spin_format.DATASETS:
        present, absent = spin_format.available_splits(args.dataset, args.manual_dir)
        if present and absent:  # (none present: build() names every missing file)
            for split, missing in absent.items():
                print(f"{_PROG}: note: skipping {args.dataset}/{split}: no {missing}.",
                      file=sys.stderr)  # fmt: skip
            print(f"{_PROG}: note: building {args.dataset} split(s) {', '.join(present)}; "
                  "TFDS cannot add a split to a built version later, so to have every "
                  "split, add the missing files and build into a fresh --data_dir "
                  f"(or pass --splits {','.join(present)} to say this is all).",
                  file=sys.stderr)  # fmt: skip
            splits = present
    # TFDS's own per-split bars count without a total; ours know it.
    tfds.disable_progress_bar()
    return spin_format.build(
        args.dataset,
        args.manual_dir,
        args.data_dir,
        splits=splits,
        num_workers=args.num_workers,
        progress=True,
        mpii_annotations=args.mpii_annotations,
    )


if __name__ == "__main__":
    sys.exit(main())

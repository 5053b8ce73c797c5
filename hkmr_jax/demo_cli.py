"""`hkmr-demo` / `python -m hkmr_jax.demo`: an image (or a folder) in, meshes and pictures out.

    hkmr-demo --workdir runs/hkmr --image person.jpg --out demo/ \\
        [--bbox X,Y,W,H | --openpose person_keypoints.json] [--step N] [--batch_size 8]

Argument parsing and error reporting around `hkmr_jax.demo.run_demo`; see docs/demo.md.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from hkmr_jax import cli
from hkmr_jax.demo import (
    MAX_RENDER_SIZE,
    PROG,
    DemoError,
    Predictor,
    find_box,
    list_images,
    read_image,
    run_demo,
)


def _parse_bbox(text: str):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(
            f"expected x,y,w,h (four numbers: top-left corner and size in pixels), got {text!r}"
        )
    return values


def main(argv=None) -> int:
    """``hkmr-demo``: see docs/demo.md. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Recover a body mesh from images with a trained run: writes .obj, "
        ".npz/.json parameters and overlay/side-view PNGs per image.",
    )
    parser.add_argument("--workdir", required=True, help="the training run's directory")
    parser.add_argument("--image", required=True, help="an image, or a folder of images")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bbox", type=_parse_bbox, metavar="X,Y,W,H",
                       help="box around the person, pixels (default: the whole image); write "
                       "--bbox=X,Y,W,H when X is negative")  # fmt: skip
    where.add_argument("--openpose", metavar="JSON",
                       help="OpenPose BODY_25 keypoints file (or, with a folder of images, a "
                       "folder of <name>_keypoints.json)")  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument("--batch_size", type=int, default=8, help="images per forward pass")
    parser.add_argument("--render_size", type=int, default=224, help="side of the PNGs, px")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of errors")
    args = parser.parse_args(argv)
    cli.set_verbose(args.verbose)
    if args.batch_size < 1:
        parser.error(f"--batch_size must be positive, got {args.batch_size}.")
    if not 16 <= args.render_size <= MAX_RENDER_SIZE:
        # The pictures (and their float32 crops) grow with its square.
        parser.error(f"--render_size must be 16 to {MAX_RENDER_SIZE} pixels, got "
                     f"{args.render_size}.")  # fmt: skip
    try:
        with cli.report_errors(PROG):  # one line and exit status 2 (cli.report_errors)
            images = list_images(args.image)
            if args.openpose is not None:
                openpose = pathlib.Path(args.openpose)
                if not openpose.exists():
                    raise DemoError(f"OpenPose file {openpose} does not exist.")
                if len(images) > 1 and not openpose.is_dir():
                    raise DemoError(
                        "--image is a folder: give --openpose a folder of OpenPose files "
                        "(<image name>_keypoints.json), not one file."
                    )
            if pathlib.Path(args.out).exists() and not pathlib.Path(args.out).is_dir():
                raise DemoError(f"--out {args.out} exists and is not a folder.")
            if len(images) == 1:  # fail fast, before the model loads (which takes a while)
                find_box(read_image(images[0]).shape[:2], images[0], args.bbox, args.openpose)
            predictor = Predictor.from_workdir(args.workdir, args.step)
    except SystemExit as e:
        return e.code
    written, failed = run_demo(predictor, images, args.out, bbox=args.bbox,
                               openpose=args.openpose, batch_size=args.batch_size,
                               render_size=args.render_size)  # fmt: skip
    for message in failed.values():
        print(f"{PROG}: error: {message}", file=sys.stderr)
    print(f"{len(written)} of {len(images)} image(s) done (checkpoint step {predictor.step}); "
          f"outputs in {args.out}")  # fmt: skip
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""A contact sheet of the built-in synthetic dataset: crops with their keypoints.

Visible keypoints: the person's left green, right red, centre orange; hidden ones grey.
The README's docs/synthetic_data.png::

    python -m hkmr_jax.tools.synthetic_sheet docs/synthetic_data.png
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
from PIL import Image

from hkmr_jax import render
from hkmr_jax.data.synthetic import (
    J24_MASK,
    J24_PARENTS,
    POSE_SPREAD,
    SPLITS,
    YAW_RANGE_DEG,
    SyntheticDataset,
)
from smpl_jax import atomic_files, skeleton

_LEFT_J24 = np.array([n.startswith("left_") for n in skeleton.J24_NAMES])
_RIGHT_J24 = np.array([n.startswith("right_") for n in skeleton.J24_NAMES])


def contact_sheet(
    dataset: SyntheticDataset,
    n: int = 32,
    path=None,
    *,
    columns: int = 8,
    start: int = 0,
    colors: int | None = None,
) -> np.ndarray:
    """Examples ``start … start + n − 1`` with their keypoints, as one image.

    Visible keypoints are dots (the person's left side green, right side red, centre
    orange) joined by blue bones; hidden ones (occluded or outside the crop) are grey.

    Args:
      dataset: a `SyntheticDataset`.
      n: number of examples.
      path: if given, the sheet is written there as PNG (atomically).
      columns: examples per row.
      start: first example index.
      colors: if given, the PNG is written with a palette of this many colours (the
        images' grain makes a full-colour PNG ~4× larger); the returned array is not.

    Returns:
      [rows · (S + 2), columns · (S + 2), 3] uint8.
    """
    s, gap = dataset.size, 2
    rows = -(-n // columns)
    sheet = np.full((rows * (s + gap), columns * (s + gap), 3), 255, np.uint8)
    parents = np.array(J24_PARENTS)
    radius = max(1.0, s / 64)
    for k, ex in enumerate(dataset.render_batch(range(start, start + n))):
        kp = ex["keypoints"]
        px = (kp[:, :2].astype(np.float64) + 1.0) * s / 2.0
        px[J24_MASK == 0] = np.nan
        visible = kp[:, 2] > 0
        image = render.draw_keypoints(ex["image"], px, visible, parents, radius=radius,
                                      color=(255, 150, 0))  # fmt: skip
        for side, colour in ((_LEFT_J24, (40, 220, 40)), (_RIGHT_J24, (230, 30, 30))):
            only = np.where(side[:, None], px, np.nan)
            image = render.draw_keypoints(image, only, visible, radius=radius, color=colour)
        r, c = divmod(k, columns)
        sheet[r * (s + gap) : r * (s + gap) + s, c * (s + gap) : c * (s + gap) + s] = image
    if path is not None and colors is None:
        render.write_png(path, sheet)
    elif path is not None:
        _write_palette_png(path, sheet, colors)
    return sheet


def _write_palette_png(path, image, colors: int) -> None:
    """`image` as a palette PNG of `colors` colours, written atomically."""
    buffer = io.BytesIO()
    quantized = Image.fromarray(image).quantize(colors, method=Image.Quantize.MEDIANCUT)
    quantized.save(buffer, format="PNG", optimize=True)
    atomic_files.write_bytes(path, buffer.getvalue())


def main(argv=None) -> int:
    """``python -m hkmr_jax.tools.synthetic_sheet OUT.png``: a contact sheet of the dataset."""
    parser = argparse.ArgumentParser(
        prog="python -m hkmr_jax.tools.synthetic_sheet",
        description="Write a contact sheet of the built-in synthetic dataset.",
    )
    parser.add_argument("out", help="output PNG, e.g. docs/synthetic_data.png")
    parser.add_argument("--split", default="train", choices=list(SPLITS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--yaw_range", type=float, default=YAW_RANGE_DEG, help="degrees")
    parser.add_argument("--pose_spread", type=float, default=POSE_SPREAD)
    parser.add_argument("-n", type=int, default=32, help="number of examples")
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument(
        "--colors", type=int, default=256, help="PNG palette size (0: full colour, lossless)"
    )
    args = parser.parse_args(argv)
    try:
        dataset = SyntheticDataset(
            args.split,
            size=args.size,
            seed=args.seed,
            yaw_range=args.yaw_range,
            pose_spread=args.pose_spread,
        )
    except ValueError as e:
        parser.error(str(e))
    colors = args.colors if args.colors > 0 else None
    sheet = contact_sheet(dataset, args.n, args.out, columns=args.columns, colors=colors)
    print(f"wrote {args.out} ({sheet.shape[1]}×{sheet.shape[0]} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

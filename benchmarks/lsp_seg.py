"""Images per second of the `lsp_seg` evaluator's renderer (`hkmr_jax.segmentation`).

    python benchmarks/lsp_seg.py [--size 224] [--batch 64] [--workers 2] [--repeats 3]

Meshes: the built-in body (13,568 faces) in the poses, shapes and cameras of the
synthetic test split's first `--batch` people (each fills 60-95 % of the crop's height),
rendered into part maps at `--size` px with SPIN's camera, `--workers` threads per
batch (`render_parts_batch`). Also times the rest of the evaluator's per-image work on
an LSP-sized image (uncrop of the mask and the part map to 300 × 400 px, scoring).
Prints the best of `--repeats` runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import time

import jax.numpy as jnp
import numpy as np

from hkmr_jax import segmentation
from hkmr_jax.data import synthetic as synthetic_data
from smpl_jax import synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    body = synthetic.load_builtin()
    dataset = synthetic_data.SyntheticDataset("test", size=64)
    examples = dataset.render_batch(range(args.batch))
    pose = jnp.asarray(np.stack([e["pose"] for e in examples]))
    betas = jnp.asarray(np.stack([e["betas"] for e in examples]))
    cameras = np.stack([e["camera"] for e in examples])
    vertices = np.asarray(
        body(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    )
    faces = np.asarray(body.faces)
    parts = segmentation.PartLabels.from_body(body)

    best = np.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        masks, labels = segmentation.render_parts_batch(
            vertices, faces, cameras, parts, args.size, workers=args.workers
        )
        best = min(best, time.perf_counter() - start)
    fill = masks.mean()
    print(f"render_parts_batch: {args.batch / best:.0f} images/s at {args.size} px, "
          f"{args.workers} threads ({os.cpu_count()} CPUs), body covers {100 * fill:.0f} % "
          "of the crop")  # fmt: skip

    rng = np.random.default_rng(0)
    shape = (300, 400)
    gt_parts = rng.integers(0, 7, shape).astype(np.uint8)
    gt_mask = (gt_parts > 0).astype(np.uint8)
    best = np.inf
    for _ in range(args.repeats):
        scores = segmentation.SegmentationScores()
        start = time.perf_counter()
        for m, p in zip(masks, labels, strict=True):
            box = (200.0, 150.0), 1.3, shape
            pred_mask = segmentation.uncrop(m.astype(np.uint8), *box)
            pred_parts = segmentation.uncrop(p, *box)
            scores.add(pred_parts, gt_parts, pred_mask, gt_mask)
        best = min(best, time.perf_counter() - start)
    print(f"uncrop + scoring on {shape[1]}×{shape[0]} images: {args.batch / best:.0f} images/s "
          "(one thread)")  # fmt: skip


if __name__ == "__main__":
    main()

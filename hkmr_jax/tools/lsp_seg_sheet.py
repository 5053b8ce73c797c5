"""Predicted vs true body-part maps (SPIN's LSP protocol, `hkmr_jax.segmentation`) of
trained runs on synthetic test people, as one PNG. The README's docs/lsp_seg.png::

    python -m hkmr_jax.tools.lsp_seg_sheet --configs configs/hkmr.py,configs/hmr.py \\
        --workdirs runs/hkmr,runs/hmr --names HKMR,HMR --num 6 --out docs/lsp_seg.png
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np
from flax import nnx

from hkmr_jax import bodies, cli, config_files, eval_lib, inference, render
from hkmr_jax.data import pipeline
from hkmr_jax.segmentation import IGNORE, NUM_CLASSES, PartLabels, render_parts_batch

#: RGB per label for pictures: background white, then the six parts.
PALETTE = np.array([[255, 255, 255], [220, 60, 60], [60, 90, 220], [240, 190, 40],
                    [190, 70, 200], [50, 190, 200], [110, 190, 90]], np.uint8)  # fmt: skip


def colourize(labels) -> np.ndarray:
    """uint8 [H, W, 3] picture of a label map (255, ignored, in grey)."""
    labels = np.asarray(labels)
    out = PALETTE[np.minimum(labels, NUM_CLASSES - 1)]
    out[labels == IGNORE] = 160
    return out


def contact_sheet(images, truths, predictions: dict, zoom: int = 2) -> np.ndarray:
    """One row per example: the image, its true parts, then each model's parts.

    Args:
      images: [N, S, S, 3] uint8; truths: [N, S, S] labels; predictions: {name: [N, S, S]}.
      zoom: nearest-neighbour enlargement of every cell.
    """
    columns = [("image", np.asarray(images))]
    columns.append(("truth", np.stack([colourize(t) for t in truths])))
    for name, pred in predictions.items():
        columns.append((name, np.stack([colourize(p) for p in pred])))
    n, s = len(images), np.asarray(images).shape[1] * zoom
    sheet = np.full((n * s, len(columns) * s, 3), 255, np.uint8)
    for c, (name, cells) in enumerate(columns):
        for r in range(n):
            cell = np.repeat(np.repeat(cells[r], zoom, axis=0), zoom, axis=1)
            if r == 0:
                cell = cell.copy()
                render.caption(cell, name)
            sheet[r * s : (r + 1) * s, c * s : (c + 1) * s] = cell
    return sheet


def main(argv=None) -> int:
    """``python -m hkmr_jax.tools.lsp_seg_sheet``: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m hkmr_jax.tools.lsp_seg_sheet",
        description="Predicted vs true body-part maps (SPIN's LSP protocol) on synthetic people.",
    )
    parser.add_argument(
        "--configs", required=True, help="comma-separated config files (FILE[:variant])"
    )
    parser.add_argument("--workdirs", required=True, help="comma-separated run directories")
    parser.add_argument("--names", help="comma-separated column titles (default: model names)")
    parser.add_argument("--num", type=int, default=6, help="examples (rows)")
    parser.add_argument("--zoom", type=int, default=2, help="cell enlargement")
    parser.add_argument("--out", default="lsp_seg.png", help="output PNG")
    args = parser.parse_args(argv)
    with cli.report_errors(parser.prog):
        return _sheet(args)


def _sheet(args) -> int:
    configs, workdirs = args.configs.split(","), args.workdirs.split(",")
    if len(configs) != len(workdirs):
        raise ValueError(f"give one config per workdir: {len(configs)} vs {len(workdirs)}.")
    if not 1 <= args.num <= 64:
        raise ValueError(f"--num must be 1-64, got {args.num}.")
    names = args.names.split(",") if args.names else None
    predictions, dataset = {}, None
    for k, (spec, workdir) in enumerate(zip(configs, workdirs, strict=True)):
        path, _, variant = spec.partition(":")
        config = config_files.get_config(path, variant or None)
        if dataset is None:
            dataset = pipeline.make_source("synthetic", "test", config.data).with_segmentation()
            examples = [dataset[i] for i in range(args.num)]
            images = np.stack([e["image"] for e in examples])
        model, _ = inference.restore_model(config, workdir)
        graphdef, variables = nnx.split(model)
        out = nnx.merge(graphdef, variables)(inference.normalize_images(jax.numpy.asarray(images)))
        body, _ = bodies.load_body(config)
        vertices = np.asarray(eval_lib.predicted_vertices(out, body))
        parts = PartLabels.from_body(body)
        cameras = np.asarray(out.final.camera)
        size = images.shape[1]
        _, labels = render_parts_batch(vertices, np.asarray(body.faces), cameras, parts, size)
        predictions[names[k] if names else config.model.name] = labels
    sheet = contact_sheet(images, [e["seg_parts"] for e in examples], predictions, args.zoom)
    path = render.write_png(args.out, sheet)
    print(f"wrote {path} ({sheet.shape[1]}×{sheet.shape[0]} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

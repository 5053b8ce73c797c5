"""The paper's Table 1 and Fig. 6 on the built-in data: HKMR vs HMR, as measured.

Train and evaluate both models with the same encoder, data and budget, then collect:

    python train.py --config configs/hkmr.py --workdir runs/hkmr
    python train.py --config configs/hmr.py --workdir runs/hmr
    python eval.py --workdir runs/hkmr \\
        --evaluators standard,occluded,doc_sweep
    python eval.py --workdir runs/hmr \\
        --evaluators standard,occluded,doc_sweep
    python benchmarks/table1.py --runs hkmr=runs/hkmr,hmr=runs/hmr --plot docs/doc_sweep.png

Prints a Markdown table (MPJPE / PA-MPJPE in mm, standard and each occluder at DoC 3)
and draws the degree-of-occlusion sweep of every run into one figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hkmr_jax import eval_lib, eval_report


def load(runs: dict[str, str], dataset: str) -> dict[str, dict]:
    results = {}
    for label, workdir in runs.items():
        path = Path(workdir) / "eval" / f"{dataset}.json"
        if not path.is_file():
            raise SystemExit(f"{path} not found: run eval.py on {workdir} first (see --help).")
        results[label] = json.loads(path.read_text())
    return results


def markdown(results: dict[str, dict]) -> str:
    settings = ["standard", *eval_lib.OCCLUDERS]
    head = "| model | step | " + " | ".join(f"{s} MPJPE / PA" for s in settings) + " |"
    lines = [head, "|" + "---|" * (len(settings) + 2)]
    for label, r in results.items():
        cells = []
        for s in settings:
            m = r.get("standard") if s == "standard" else r.get("occluded", {}).get(s)
            cells.append("–" if m is None else f"{m['mpjpe_mm']:.1f} / {m['pa_mpjpe_mm']:.1f}")
        lines.append(f"| {label} | {r['checkpoint_step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def segmentation_markdown(results: dict[str, dict]) -> str | None:
    """Paper Table 5's columns (`lsp_seg`: FB and parts accuracy % / F1), or None."""
    rows = [(k, r["lsp_seg"]) for k, r in results.items() if "lsp_seg" in r]
    if not rows:
        return None
    lines = ["| model | FB acc. / F1 | parts acc. / F1 |", "|---|---|---|"]
    for label, r in rows:
        lines.append(f"| {label} | {r['fb_accuracy']:.2f} / {r['fb_f1']:.3f} | "
                     f"{r['parts_accuracy']:.2f} / {r['parts_f1']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="hkmr=runs/hkmr,hmr=runs/hmr",
                        help="label=workdir pairs, comma-separated")  # fmt: skip
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--plot", default=None, help="PNG for the DoC sweeps of every run")
    args = parser.parse_args(argv)
    runs = dict(pair.split("=", 1) for pair in args.runs.split(","))
    results = load(runs, args.dataset)
    print(markdown(results))
    segmentation = segmentation_markdown(results)
    if segmentation:
        print(segmentation)
    if args.plot:
        sweeps = {k: r["doc_sweep"] for k, r in results.items() if "doc_sweep" in r}
        if sweeps:
            print(f"plot: {eval_report.plot_doc_sweep(sweeps, args.plot)}")


if __name__ == "__main__":
    main()

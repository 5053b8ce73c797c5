"""Reporting evaluation results: the JSON file of a run's results, paper Fig. 6's DoC-sweep
plot, and the plain-text table `eval.py` prints. Files are written atomically
(`smpl_jax.atomic_files`); the evaluators themselves are `hkmr_jax.eval_lib`.
"""

from __future__ import annotations

import json
from pathlib import Path

from hkmr_jax.eval_lib import DOCS, OCCLUDERS
from smpl_jax import atomic_files


def write_json(result: dict, path) -> Path:
    """Write `result` as JSON atomically (`smpl_jax.atomic_files`)."""
    return atomic_files.write_text(path, json.dumps(result, indent=2, sort_keys=True))


def plot_doc_sweep(sweeps: dict[str, dict], path) -> Path:
    """Paper Fig. 6: MPJPE vs degree of occlusion, one panel per occluder kind.

    Args:
      sweeps: {model label: doc_sweep result}.
      path: PNG to write (atomically).
    """
    import matplotlib  # lazily: heavy, and only this plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({k for s in sweeps.values() for k in s}, key=OCCLUDERS.index)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for label, sweep in sweeps.items():
            docs = sorted(sweep[kind], key=int)
            ax.plot([int(d) for d in docs], [sweep[kind][d] for d in docs], "o-", label=label)
        ax.set_title(kind)
        ax.set_xlabel("degree of occlusion")
        ax.set_xticks(DOCS)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("MPJPE (mm)")
    axes[0][-1].legend()
    fig.tight_layout()
    try:
        with atomic_files.writing(path) as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return Path(path)


def format_table(results: dict[str, dict]) -> str:
    """A plain-text table of {dataset: {evaluator: result}} results (standard, occluded,
    3dpw as rows; invisible as a line per dataset)."""
    lines = [
        f"{'dataset':<14} {'setting':<10} {'MPJPE':>8} {'PA-MPJPE':>9} {'PVE':>8} {'s/img':>8}"
    ]
    notes = []
    for dataset, result in results.items():
        rows = [(k, result[k]) for k in ("standard", "3dpw") if k in result]
        rows += [(k, v) for k, v in result.get("occluded", {}).items()]
        for setting, r in rows:
            pve = f"{r['pve_mm']:>8.2f}" if "pve_mm" in r else f"{'-':>8}"
            lines.append(
                f"{dataset:<14} {setting:<10} {r['mpjpe_mm']:>8.2f} {r['pa_mpjpe_mm']:>9.2f} "
                f"{pve} {r['seconds_per_image']:>8.4f}"
            )
        if "invisible" in result:
            notes.append(f"{dataset}: {_joints_line(result['invisible'])}")
        if "lsp_seg" in result:
            r = result["lsp_seg"]
            f1 = {k: "-" if r[k] is None else f"{r[k]:.3f}" for k in ("fb_f1", "parts_f1")}
            notes.append(f"{dataset}: lsp_seg FB {r['fb_accuracy']:.2f} % / F1 {f1['fb_f1']}, "
                         f"parts {r['parts_accuracy']:.2f} % / F1 {f1['parts_f1']} "
                         f"({r['num_examples']} images)")  # fmt: skip
    return "\n".join(lines + notes)


def _joints_line(r: dict) -> str:
    def part(s):
        if not s["num_joints"]:
            return "0 joints"
        return f"{s['num_joints']} joints, {s['mpjpe_px']:.2f} px, PCK {s['pck']:.1f} %"

    return (f"invisible {part(r)}; visible {part(r['visible'])} "
            f"(PCK within {r['pck_threshold_px']:.1f} px)")  # fmt: skip

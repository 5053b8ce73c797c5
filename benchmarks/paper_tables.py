"""The paper's Tables 1-4 on the built-in data, over seeds: train, evaluate, summarise.

    python benchmarks/paper_tables.py --tables 1 --seeds 0,1,2 --root runs/tables
    python benchmarks/paper_tables.py --tables 2,3 --seeds 0,1 --root runs/tables
    python benchmarks/paper_tables.py --tables 1 --seeds 0,1,2 --summarise_only

Each grid cell (a config, a seed) is trained with `train.py` into
`ROOT/<config>[+overrides]/seed<S>` (`config.seed` and `config.data.seed` = S: the model's
initialisation and the data order; the test set stays fixed; a cell that several tables
share, such as the default HKMR, is trained once) and evaluated with `eval.py --workdir` on
the whole synthetic test split. Cells already evaluated are skipped; a
killed training resumes from its checkpoints, so the whole command can be rerun after
any interruption. At the end it writes `ROOT/results.csv` and `ROOT/results.json` (every
cell's metrics, with its training CPU seconds) and `ROOT/table<N>.md`: mean ± standard
deviation per config over seeds, and each comparison's paired difference (same seeds)
with its 95 % t-interval.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (config file[:variant], overrides). The first entry of a table is its reference.
TABLES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "1": {  # paper Table 1: HKMR vs HMR, same encoder, data, losses and budget
        "HMR": ("configs/hmr.py", ()),  # the reference: rows give HKMR − HMR
        "HKMR": ("configs/hkmr.py", ()),
    },
    "2": {  # paper Table 2: history, passes, prior
        "HKMR (all, fwd-bwd, no prior)": ("configs/hkmr.py", ()),
        "history previous": ("configs/hkmr.py", ("--config.model.regressor.history=previous",)),
        "forward only": ("configs/hkmr.py", ("--config.model.regressor.passes=forward",)),
        "prior VAE": ("configs/hkmr.py", ("--config.prior=vae",)),
        "prior discriminator": ("configs/hkmr.py", ("--config.prior=discriminator",)),
    },
    "3": {  # paper Table 3: outer (T) x inner iterations
        "3x4": ("configs/hkmr.py", ()),
        "1x1": ("configs/hkmr.py", ("--config.model.regressor.outer_iters=1",
                                    "--config.model.regressor.inner_iters=1")),
        "3x1": ("configs/hkmr.py", ("--config.model.regressor.inner_iters=1",)),
        "3x8": ("configs/hkmr.py", ("--config.model.regressor.inner_iters=8",)),
    },
    "4": {  # paper Table 4: SMPLify in the loop, SPIN's 100 steps per stage
        "HKMR_MF": ("configs/hkmr_spin.py", ("--config.fitting.smplify.num_iters=100",)),
        "HKMR (no fits)": ("configs/hkmr_spin.py:nofit", ()),
    },
}  # fmt: skip

#: Columns: (label, path into the eval JSON).
METRICS = [
    ("MPJPE", ("standard", "mpjpe_mm")),
    ("PA-MPJPE", ("standard", "pa_mpjpe_mm")),
    *[(f"{o} MPJPE", ("occluded", o, "mpjpe_mm")) for o in ("bar", "circle", "rectangle")],
    *[(f"{o} PA", ("occluded", o, "pa_mpjpe_mm")) for o in ("bar", "circle", "rectangle")],
    ("invisible px", ("invisible", "mpjpe_px")),
    ("invisible PCK", ("invisible", "pck")),
    ("FB acc", ("lsp_seg", "fb_accuracy")),
    ("FB F1", ("lsp_seg", "fb_f1")),
    ("parts acc", ("lsp_seg", "parts_accuracy")),
    ("parts F1", ("lsp_seg", "parts_f1")),
]
EVALUATORS = "standard,occluded,doc_sweep,invisible,lsp_seg"

#: Two-sided 95 % quantiles of Student's t for 1..10 degrees of freedom (any table).
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def _run(cmd: list[str], log: Path) -> float:
    """Run `cmd` (output appended to `log`); returns the CPU seconds its children used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}; see {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cell_dir(root: Path, table: str, name: str, seed: int) -> Path:
    """`ROOT/<config>[+override...]/seed<S>`: equal settings share one directory."""
    config, overrides = TABLES[table][name]
    stem = Path(config.split(":")[0]).stem + "".join(f":{v}" for v in config.split(":")[1:])
    parts = [o.removeprefix("--config.") for o in overrides]
    return root / "+".join([stem, *parts]) / f"seed{seed}"


def run_cell(table: str, name: str, seed: int, root: Path, limit: int | None) -> dict:
    """Train and evaluate one cell unless done; returns its metrics and costs."""
    config, overrides = TABLES[table][name]
    workdir = cell_dir(root, table, name, seed)
    result_file = workdir / "eval" / "synthetic.json"
    costs_file = workdir / "costs.json"
    if not result_file.is_file():
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / "paper_tables.log"
        start = time.time()
        seeds = (f"--config.seed={seed}", f"--config.data.seed={seed}")
        train_cpu = _run([sys.executable, "train.py", "--config", config, "--workdir",
                          str(workdir), *seeds, *overrides], log)  # fmt: skip
        eval_cmd = [sys.executable, "eval.py", "--workdir", str(workdir), "--evaluators",
                    EVALUATORS, "--batch_size", "64"]  # fmt: skip
        eval_cpu = _run(eval_cmd + ([f"--limit={limit}"] if limit else []), log)
        costs_file.write_text(json.dumps({"train_eval_cpu_s": train_cpu + eval_cpu,
                                          "wall_s": time.time() - start}))  # fmt: skip
    result = json.loads(result_file.read_text())
    costs = json.loads(costs_file.read_text()) if costs_file.is_file() else {}
    row = {"table": table, "config": name, "seed": seed, **costs}
    for label, path in METRICS:
        value = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        row[label] = value
    return row


def mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "–"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def paired_interval(diffs: list[float]) -> str:
    """Mean of paired differences and its 95 % t-interval (n ≥ 2)."""
    n = len(diffs)
    if n < 2:
        return f"{diffs[0]:+.1f}" if diffs else "–"
    half = _T95[min(n - 2, len(_T95) - 1)] * statistics.stdev(diffs) / math.sqrt(n)
    mean = statistics.mean(diffs)
    return f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]"


def markdown(table: str, rows: list[dict]) -> str:
    """Mean ± sd per config, then each config's paired difference to the reference."""
    names = list(TABLES[table])
    labels = [label for label, _ in METRICS if any(r[label] is not None for r in rows)]
    by = {n: {r["seed"]: r for r in rows if r["config"] == n} for n in names}
    lines = ["| config | seeds | " + " | ".join(labels) + " |",
             "|" + "---|" * (len(labels) + 2)]  # fmt: skip
    for n in names:
        cells = [mean_sd([r[k] for r in by[n].values() if r[k] is not None]) for k in labels]
        lines.append(f"| {n} | {len(by[n])} | " + " | ".join(cells) + " |")
    reference = names[0]
    for n in names[1:]:
        seeds = sorted(set(by[n]) & set(by[reference]))
        cells = []
        for k in labels:
            pairs = [(by[n][s][k], by[reference][s][k]) for s in seeds]
            cells.append(paired_interval([a - b for a, b in pairs if None not in (a, b)]))
        lines.append(f"| {n} − {reference} (paired, 95 % CI) | {len(seeds)} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    cpu = sum(r.get("train_eval_cpu_s", 0.0) for r in rows)
    lines.append(f"\nCPU time of these runs: {cpu / 3600:.1f} h (training and evaluation).")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="1", help="comma-separated: 1,2,3,4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--root", default="runs/tables")
    parser.add_argument("--limit", type=int, default=None, help="test people (default: all)")
    parser.add_argument("--summarise_only", action="store_true",
                        help="collect finished cells only; train nothing")  # fmt: skip
    args = parser.parse_args(argv)
    tables = args.tables.split(",")
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {unknown}; choose from {sorted(TABLES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    root = Path(args.root).resolve()
    rows = []
    for table in tables:
        for seed in seeds:  # seed-major: a partial grid already has complete comparisons
            for name in TABLES[table]:
                done = (cell_dir(root, table, name, seed) / "eval" / "synthetic.json").is_file()
                if args.summarise_only and not done:
                    continue
                print(f"table {table} / {name} / seed {seed}", flush=True)
                rows.append(run_cell(table, name, seed, root, args.limit))
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(rows, indent=1))
    if rows:
        with open(root / "results.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
            writer.writeheader()
            writer.writerows(rows)
    for table in tables:
        text = markdown(table, [r for r in rows if r["table"] == table])
        (root / f"table{table}.md").write_text(text + "\n")
        print(f"\nTable {table}\n{text}")


if __name__ == "__main__":
    main()

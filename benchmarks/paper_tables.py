"""The paper's Tables 1-4 on the built-in data, over seeds: train, evaluate, summarise.

    python benchmarks/paper_tables.py --tables 1 --seeds 0,1,2 --root runs/tables
    python benchmarks/paper_tables.py --tables 2,3 --seeds 0,1 --root runs/tables
    python benchmarks/paper_tables.py --tables 4 --seeds 0,1 --root runs/tables
    python benchmarks/paper_tables.py --tables 1 --seeds 0,1,2 --summarise_only

Each grid cell (a config, a seed) is trained with `train.py` into
`ROOT/<config>[@variant][+overrides]/seed<S>` (`config.seed` and `config.data.seed` = S: the model's
initialisation and the data order; the test set stays fixed; a cell that several tables
share, such as the default HKMR, is trained once) and evaluated with `eval.py --workdir` on
the whole synthetic test split (Table 1's DoC sweep, paper Fig. 6, on its first
`DOC_SWEEP_LIMIT`: it costs 210 passes). Table 4 (SMPLify in the loop, `configs/hkmr_spin.py`'s
`spin_mix` variants) also reports the people trained with 2D keypoints only and their
fits (`TABLE_COLUMNS`). Cells already evaluated are skipped; a killed training resumes
from its checkpoints, so the whole command can be rerun after any interruption. At the
end it writes `ROOT/results.csv` and `ROOT/results.json` (every cell's metrics, with its
training CPU seconds) and `ROOT/table<N>.md`: mean ± standard deviation per config over
seeds, and each comparison's paired difference (same seeds) with its 95 % t-interval.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hkmr_jax import tb_scalars
from smpl_jax import atomic_files

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
    "4": {  # paper Table 4: SMPLify in the loop, SPIN's data mix and 100 steps per stage
        "HKMR (no fits)": ("configs/hkmr_spin.py:spin_mix_nofit", ()),  # the reference
        "HKMR_MF": ("configs/hkmr_spin.py:spin_mix", ()),
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
EVALUATORS = "standard,occluded,invisible,lsp_seg"
#: Table 1's DoC sweep (paper Fig. 6) is 210 passes over its people (3 occluders × 5
#: degrees × 14 joints): on the first 300 test people, as the README's figure.
DOC_SWEEP_LIMIT = 300

#: Table 4's cells are also evaluated on the first `PEOPLE_2D_LIMIT` of the 5,000 people
#: they trained on with 2D keypoints only (`eval.py --datasets synthetic_2d`, with their
#: true labels), the people SMPLify's fits supervise: 1,000 cost as much as the test
#: split, and the people are i.i.d., so the first 1,000 are a fair sample.
PEOPLE_2D_LIMIT = 1000
PEOPLE_2D_METRICS = [
    ("2D-only MPJPE", ("standard", "mpjpe_mm")),
    ("2D-only PA-MPJPE", ("standard", "pa_mpjpe_mm")),
]
#: The share (%) of the batches' 2D-only examples whose best fit is under the threshold
#: (`train/fit/valid_fraction`, logged every `log_every` steps as the mean over those
#: steps), averaged over each quarter of training: every logged value counts once, so a
#: quarter's share is not one log window's noise. Runs without fitting log none ("–").
FIT_SHARE_TAG = "train/fit/valid_fraction"
FIT_SHARE = [f"fits < thr. Q{q} %" for q in (1, 2, 3, 4)]
#: A table's own columns, shown even where no cell has them ("–"), and their note.
TABLE_COLUMNS = {"4": [*FIT_SHARE, *(label for label, _ in PEOPLE_2D_METRICS)]}
TABLE_NOTES = {
    "4": f"fits < thr. Qk %: the share of the 2D-only training examples whose best SMPLify "
    f"fit is under the threshold, mean of `{FIT_SHARE_TAG}` over the k-th quarter of "
    f"training. 2D-only: the first {PEOPLE_2D_LIMIT} people trained with 2D keypoints "
    "only (`eval.py --datasets synthetic_2d`); the other columns: the synthetic test split."
}

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
    """`ROOT/<config>[@variant][+override...]/seed<S>`: equal settings share one directory."""
    config, overrides = TABLES[table][name]
    stem = Path(config.split(":")[0]).stem + "".join(f"@{v}" for v in config.split(":")[1:])
    parts = [o.removeprefix("--config.") for o in overrides]
    return root / "+".join([stem, *parts]) / f"seed{seed}"


def _add_costs(costs_file: Path, cpu: float, wall: float) -> None:
    costs = json.loads(costs_file.read_text()) if costs_file.is_file() else {}
    atomic_files.write_text(costs_file, json.dumps({
        "train_eval_cpu_s": costs.get("train_eval_cpu_s", 0.0) + cpu,
        "wall_s": costs.get("wall_s", 0.0) + wall,
    }))  # fmt: skip


def run_cell(table: str, name: str, seed: int, root: Path, limit: int | None) -> dict:
    """Train and evaluate one cell unless done; returns its metrics and costs.

    Every cell: the test split with `EVALUATORS`. Table 1's cells also get the DoC sweep
    on the first `DOC_SWEEP_LIMIT` test people (its key joins the same JSON), Table 4's
    the 2D-only training people. A step already done is skipped.
    """
    config, overrides = TABLES[table][name]
    workdir = cell_dir(root, table, name, seed)
    result_file = workdir / "eval" / "synthetic.json"
    costs_file = workdir / "costs.json"
    log = workdir / "paper_tables.log"

    def evaluate(*flags, cap=None):
        """`eval.py` with `flags` on the first `limit` people, at most `cap` of them."""
        people = min(limit or cap, cap) if cap else limit
        start = time.time()
        cmd = [sys.executable, "eval.py", "--workdir", str(workdir), *flags, "--batch_size",
               "64", *([f"--limit={people}"] if people else [])]  # fmt: skip
        _add_costs(costs_file, _run(cmd, log), time.time() - start)

    if not result_file.is_file():
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.time()
        seeds = (f"--config.seed={seed}", f"--config.data.seed={seed}")
        train_cpu = _run([sys.executable, "train.py", "--config", config, "--workdir",
                          str(workdir), *seeds, *overrides], log)  # fmt: skip
        _add_costs(costs_file, train_cpu, time.time() - start)
        evaluate("--evaluators", EVALUATORS)
    if table == "1" and "doc_sweep" not in json.loads(result_file.read_text()):
        evaluate("--evaluators", "doc_sweep", cap=DOC_SWEEP_LIMIT)
    if table in TABLE_COLUMNS and not (workdir / "eval" / "synthetic_2d.json").is_file():
        evaluate("--datasets", "synthetic_2d", "--evaluators", "standard", cap=PEOPLE_2D_LIMIT)
    return collect_cell(table, name, seed, root)


def _lookup(result: dict, path: tuple[str, ...]):
    for key in path:
        result = result.get(key) if isinstance(result, dict) else None
    return result


def fit_shares(workdir: Path) -> list[float | None]:
    """`FIT_SHARE_TAG`'s mean over each quarter of training (steps ((q-1)N/4, qN/4], N
    the run's `num_steps`), in %; None for a quarter without a logged value."""
    tb = workdir / "tb"
    values = tb_scalars.read_scalars(tb).get(FIT_SHARE_TAG, {}) if tb.is_dir() else {}
    try:
        num_steps = int(json.loads((workdir / "config.json").read_text())["num_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        num_steps = max(values, default=0)
    shares = []
    for q in (1, 2, 3, 4):
        inside = [v for s, v in values.items() if (q - 1) * num_steps < 4 * s <= q * num_steps]
        shares.append(100 * statistics.mean(inside) if inside else None)
    return shares


def collect_cell(table: str, name: str, seed: int, root: Path) -> dict:
    """A finished cell's row: its metrics (None where missing) and costs."""
    workdir = cell_dir(root, table, name, seed)
    result = json.loads((workdir / "eval" / "synthetic.json").read_text())
    costs_file = workdir / "costs.json"
    costs = json.loads(costs_file.read_text()) if costs_file.is_file() else {}
    row = {"table": table, "config": name, "seed": seed, **costs}
    row.update({label: _lookup(result, path) for label, path in METRICS})
    if table in TABLE_COLUMNS:
        people = workdir / "eval" / "synthetic_2d.json"
        result = json.loads(people.read_text()) if people.is_file() else {}
        row.update({label: _lookup(result, path) for label, path in PEOPLE_2D_METRICS})
        row.update(zip(FIT_SHARE, fit_shares(workdir)))
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
    labels = [label for label, _ in METRICS if any(r.get(label) is not None for r in rows)]
    labels += TABLE_COLUMNS.get(table, [])
    by = {n: {r["seed"]: r for r in rows if r["config"] == n} for n in names}
    lines = ["| config | seeds | " + " | ".join(labels) + " |",
             "|" + "---|" * (len(labels) + 2)]  # fmt: skip
    for n in names:
        cells = [mean_sd([r[k] for r in by[n].values() if r.get(k) is not None]) for k in labels]
        lines.append(f"| {n} | {len(by[n])} | " + " | ".join(cells) + " |")
    reference = names[0]
    for n in names[1:]:
        seeds = sorted(set(by[n]) & set(by[reference]))
        cells = []
        for k in labels:
            pairs = [(by[n][s].get(k), by[reference][s].get(k)) for s in seeds]
            cells.append(paired_interval([a - b for a, b in pairs if None not in (a, b)]))
        lines.append(f"| {n} − {reference} (paired, 95 % CI) | {len(seeds)} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    if table in TABLE_NOTES:
        lines.append(f"\n{TABLE_NOTES[table]}")
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
                if args.summarise_only:
                    rows.append(collect_cell(table, name, seed, root))
                else:
                    rows.append(run_cell(table, name, seed, root, args.limit))
    root.mkdir(parents=True, exist_ok=True)
    atomic_files.write_text(root / "results.json", json.dumps(rows, indent=1))
    if rows:
        table_csv = io.StringIO(newline="")
        writer = csv.DictWriter(table_csv, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
        atomic_files.write_text(root / "results.csv", table_csv.getvalue())
    for table in tables:
        text = markdown(table, [r for r in rows if r["table"] == table])
        atomic_files.write_text(root / f"table{table}.md", text + "\n")
        print(f"\nTable {table}\n{text}")


if __name__ == "__main__":
    main()

"""benchmarks/paper_tables.py: the statistics and the resumable collection of a grid."""

import importlib.util
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

_spec = importlib.util.spec_from_file_location(
    "paper_tables", Path(__file__).parents[1] / "benchmarks" / "paper_tables.py"
)
paper_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paper_tables)


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_paired_interval_is_the_t_interval(n):
    diffs = list(np.random.default_rng(n).normal(-5.0, 3.0, n))
    half = scipy.stats.t.ppf(0.975, n - 1) * np.std(diffs, ddof=1) / np.sqrt(n)
    if n > 11:  # beyond the table: the 10-degree value, a slightly wider interval
        half = scipy.stats.t.ppf(0.975, 10) * np.std(diffs, ddof=1) / np.sqrt(n)
    mean = np.mean(diffs)
    assert (
        paper_tables.paired_interval(diffs)
        == f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]"
    )


def test_summarise_collects_finished_cells_only(tmp_path):
    rng = np.random.default_rng(0)
    values = {}
    for name in ("HKMR", "HMR"):
        for seed in (0, 1, 2):
            if name == "HMR" and seed == 2:
                continue  # unfinished: left out, and out of the pairs
            mpjpe, pa = rng.uniform(100, 150, 2)
            values[name, seed] = (mpjpe, pa)
            out = paper_tables.cell_dir(tmp_path, "1", name, seed) / "eval"
            out.mkdir(parents=True)
            (out / "synthetic.json").write_text(
                json.dumps(
                    {"checkpoint_step": 3500, "standard": {"mpjpe_mm": mpjpe, "pa_mpjpe_mm": pa}}
                )
            )
            (out.parent / "costs.json").write_text(json.dumps({"train_eval_cpu_s": 1800.0}))
    paper_tables.main(
        ["--tables", "1", "--seeds", "0,1,2", "--root", str(tmp_path), "--summarise_only"]
    )
    rows = json.loads((tmp_path / "results.json").read_text())
    assert len(rows) == 5
    text = (tmp_path / "table1.md").read_text()
    hkmr = [values["HKMR", s][0] for s in (0, 1, 2)]
    assert f"| HKMR | 3 | {statistics.mean(hkmr):.1f} ± {statistics.stdev(hkmr):.1f} |" in text
    diffs = [values["HKMR", s][0] - values["HMR", s][0] for s in (0, 1)]
    assert f"| HKMR − HMR (paired, 95 % CI) | 2 | {paper_tables.paired_interval(diffs)} |" in text
    assert "CPU time of these runs: 2.5 h" in text
    assert "invisible" not in text  # metrics no cell has are left out


def test_equal_settings_share_one_cell_and_different_ones_do_not(tmp_path):
    cell = paper_tables.cell_dir
    assert cell(tmp_path, "1", "HKMR", 0) == cell(tmp_path, "2", "HKMR (all, fwd-bwd, no prior)", 0)
    assert cell(tmp_path, "1", "HKMR", 0) == cell(tmp_path, "3", "3x4", 0)
    assert cell(tmp_path, "1", "HKMR", 0) != cell(tmp_path, "1", "HKMR", 1)
    every = [
        cell(tmp_path, t, n, 0)
        for t in paper_tables.TABLES
        for n in paper_tables.TABLES[t]
        if paper_tables.TABLES[t][n] != paper_tables.TABLES["1"]["HKMR"]
    ]
    assert len(set(every)) == len(every)

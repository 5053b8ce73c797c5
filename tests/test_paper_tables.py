"""benchmarks/paper_tables.py: the statistics and the resumable collection of a grid."""

import importlib.util
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from tensorboardX import SummaryWriter

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


def _write_cell(root, name, seed, mpjpe, people=None, shares=None, num_steps=8):
    """A finished Table 4 cell: eval JSONs (the 2D-only people's if `people`) and, if
    `shares`, `train/fit/valid_fraction` logged at steps 1..num_steps."""
    workdir = paper_tables.cell_dir(root, "4", name, seed)
    (workdir / "eval").mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps({"num_steps": num_steps}))
    result = {"checkpoint_step": num_steps, "standard": {"mpjpe_mm": mpjpe, "pa_mpjpe_mm": 90.0}}
    (workdir / "eval" / "synthetic.json").write_text(json.dumps(result))
    if people is not None:
        result = {"checkpoint_step": num_steps,
                  "standard": {"mpjpe_mm": people, "pa_mpjpe_mm": people - 40}}  # fmt: skip
        (workdir / "eval" / "synthetic_2d.json").write_text(json.dumps(result))
    if shares is not None:
        writer = SummaryWriter(str(workdir / "tb"))
        for step, share in enumerate(shares, 1):
            writer.add_scalar(paper_tables.FIT_SHARE_TAG, share, step)
            writer.add_scalar("train/loss", 1.0, step)
        writer.close()


def test_table_4_reports_the_fits_and_the_2d_only_people(tmp_path):
    # 8 steps, logged every step: quarter q holds steps 2q-1 and 2q.
    shares = {
        0: [0.1, 0.3, 0.5, 0.5, 0.6, 0.8, 0.9, 0.9],
        1: [0.2, 0.4, 0.4, 0.7, 0.7, 0.8, 1.0, 1.0],
    }
    for seed in (0, 1):
        _write_cell(tmp_path, "HKMR_MF", seed, 150.0 + seed, people=120.0 + seed,
                    shares=shares[seed])  # fmt: skip
    _write_cell(tmp_path, "HKMR (no fits)", 0, 152.0, people=130.0)
    _write_cell(tmp_path, "HKMR (no fits)", 1, 153.0)  # its 2D-only evaluation is missing
    paper_tables.main(["--tables", "4", "--seeds", "0,1", "--root", str(tmp_path),
                       "--summarise_only"])  # fmt: skip
    lines = (tmp_path / "table4.md").read_text().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["config", "seeds", "MPJPE", "PA-MPJPE", *paper_tables.FIT_SHARE,
                      "2D-only MPJPE", "2D-only PA-MPJPE"]  # fmt: skip
    rows = {}
    for line in lines[2:5]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    quarters = [[100 * statistics.mean(s[2 * q : 2 * q + 2]) for s in shares.values()]
                for q in range(4)]  # fmt: skip
    mf = rows["HKMR_MF"]
    for label, values in zip(paper_tables.FIT_SHARE, quarters):
        assert mf[label] == f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"
    assert mf["2D-only MPJPE"] == f"120.5 ± {statistics.stdev([120.0, 121.0]):.1f}"
    assert mf["2D-only PA-MPJPE"] == f"80.5 ± {statistics.stdev([80.0, 81.0]):.1f}"
    nofit = rows["HKMR (no fits)"]
    assert [nofit[label] for label in paper_tables.FIT_SHARE] == ["–"] * 4  # no fits logged
    assert nofit["2D-only MPJPE"] == "130.0"  # one seed has it
    diff = rows["HKMR_MF − HKMR (no fits) (paired, 95 % CI)"]
    assert diff["MPJPE"] == paper_tables.paired_interval([-2.0, -2.0])
    assert diff["2D-only MPJPE"] == "-10.0"  # seed 0 alone is paired
    assert diff[paper_tables.FIT_SHARE[0]] == "–"
    assert "fits < thr. Qk %" in "\n".join(lines)


def test_table_4_cells_are_also_evaluated_on_the_2d_only_people(tmp_path, monkeypatch):
    commands = []

    def fake_run(cmd, log):
        commands.append(cmd[1:])
        workdir = Path(cmd[cmd.index("--workdir") + 1])
        name = "synthetic_2d" if "synthetic_2d" in cmd else "synthetic"
        if "eval.py" in cmd:  # as eval.py: a later evaluator's key joins the JSON
            path = workdir / "eval" / f"{name}.json"
            path.parent.mkdir(exist_ok=True)
            result = json.loads(path.read_text()) if path.is_file() else {}
            key = "doc_sweep" if "doc_sweep" in cmd else "standard"
            result[key] = {"mpjpe_mm": 1.0, "pa_mpjpe_mm": 1.0}
            path.write_text(json.dumps(result))
        return 10.0

    monkeypatch.setattr(paper_tables, "_run", fake_run)
    row = paper_tables.run_cell("4", "HKMR_MF", 0, tmp_path, None)
    assert [c[0] for c in commands] == ["train.py", "eval.py", "eval.py"]
    assert commands[0][1:3] == ["--config", "configs/hkmr_spin.py:spin_mix"]
    workdir = str(paper_tables.cell_dir(tmp_path, "4", "HKMR_MF", 0))
    people = ["--datasets", "synthetic_2d", "--evaluators", "standard", "--batch_size", "64"]
    assert commands[2] == ["eval.py", "--workdir", workdir, *people, "--limit=1000"]
    assert row["2D-only MPJPE"] == 1.0 and row["train_eval_cpu_s"] == 30.0
    # Rerun: done; a cell evaluated before Table 4 had the 2D-only people gets just that.
    paper_tables.run_cell("4", "HKMR_MF", 0, tmp_path, None)
    assert len(commands) == 3
    (paper_tables.cell_dir(tmp_path, "4", "HKMR_MF", 0) / "eval" / "synthetic_2d.json").unlink()
    paper_tables.run_cell("4", "HKMR_MF", 0, tmp_path, 8)
    assert commands[3][0] == "eval.py" and commands[3][-1] == "--limit=8"
    assert len(commands) == 4
    # Other tables do not evaluate them; Table 1 adds the DoC sweep on 300 people.
    row = paper_tables.run_cell("1", "HMR", 0, tmp_path, None)
    assert [c[0] for c in commands[4:]] == ["train.py", "eval.py", "eval.py"]
    assert not any("synthetic_2d" in c for c in commands[4:])
    assert "doc_sweep" not in commands[5][commands[5].index("--evaluators") + 1]
    assert commands[6][-5:] == ["--evaluators", "doc_sweep", "--batch_size", "64", "--limit=300"]
    assert row["train_eval_cpu_s"] == 30.0
    paper_tables.run_cell("1", "HMR", 0, tmp_path, None)
    assert len(commands) == 7

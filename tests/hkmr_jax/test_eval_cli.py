"""eval.py (`hkmr_jax.eval_cli`) on a run's own config: reproduces training's evaluation,
refuses overrides of what was trained, and reports user errors in one line (exit 2).

One run is shared by the module: `configs/hkmr.py:smoke`'s config.json and a state with
perturbed parameters saved at step 5 with the training code's `Checkpointer` (the layout
`train.py` writes, without compiling a training step).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from hkmr_jax import checkpoint, config_files, eval_cli, inference, train_evals, train_lib
from hkmr_jax import workdir as workdir_lib

ROOT = Path(__file__).resolve().parents[2]
EVALS = [{"name": "standard", "dataset": "synthetic", "split": "test", "limit": 6}]


def _smoke_config():
    config = config_files.get_config(ROOT / "configs" / "hkmr.py", "smoke")
    config.progress_bar = False
    config.evals = EVALS
    config.eval_batch_size = 4  # two batches, the second padded by nothing: 4 + 2
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(workdir, training's own end-of-run evaluation of its step-5 state)."""
    config = _smoke_config()
    workdir = tmp_path_factory.mktemp("eval_cli") / "run"
    workdir_lib.prepare_workdir(config, workdir, overwrite=False)
    trainer = train_lib.Trainer.create(config, train_lib.make_mesh(jax.devices()[:1]))
    state = trainer.init_state()
    leaves, tree = jax.tree.flatten(state["params"])
    rng = np.random.default_rng(0)
    state["params"] = jax.tree.unflatten(
        tree, [x + 0.05 * rng.standard_normal(x.shape).astype(x.dtype) for x in leaves]
    )  # not the initial weights: the restore must bring these back
    state["step"] = state["step"] + 5
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints")
    ckpt.save(5, state)
    ckpt.close()
    # What `train_and_evaluate` runs at the end of training, on that state.
    own = train_evals.run_evals(trainer, state, {})
    return workdir, own


def _main(argv, capsys):
    """Run eval.py's main in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        eval_cli.main(["eval.py", *argv])
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_eval_with_the_workdir_alone_reproduces_training_s_evaluation(run, capsys):
    workdir, own = run
    code, out, err = _main(["--workdir", str(workdir)], capsys)
    assert code == 0, err
    result = json.loads((workdir / "eval" / "synthetic.json").read_text())
    assert result["checkpoint_step"] == 5
    assert (
        result["standard"]["num_examples"] == 6 == own["eval/synthetic_test_standard/num_examples"]
    )
    for key in ("mpjpe_mm", "pa_mpjpe_mm"):  # the same program, weights and batches
        assert result["standard"][key] == own[f"eval/synthetic_test_standard/{key}"], key
    assert "synthetic" in out and f"{result['standard']['mpjpe_mm']:.2f}" in out
    assert err == ""  # no warning: the crops are the run's size
    # Explicit datasets and evaluators: another evaluation, with --limit and --batch_size.
    code, _, err = _main(["--workdir", str(workdir), "--evaluators", "standard", "--limit", "6",
                          "--batch_size", "4"], capsys)  # fmt: skip
    assert code == 0, err
    again = json.loads((workdir / "eval" / "synthetic.json").read_text())
    assert again["standard"]["mpjpe_mm"] == result["standard"]["mpjpe_mm"]


def test_the_2d_only_training_people_are_evaluated_with_their_labels(run, capsys):
    workdir, _ = run
    code, out, err = _main(["--workdir", str(workdir), "--datasets", "synthetic_2d",
                            "--evaluators", "standard", "--limit", "4"], capsys)  # fmt: skip
    assert code == 0, err
    assert eval_cli.DATASETS["synthetic_2d"] == ("synthetic_2d_truth", "train")
    result = json.loads((workdir / "eval" / "synthetic_2d.json").read_text())
    assert result["standard"]["num_examples"] == 4
    assert 0 < result["standard"]["pa_mpjpe_mm"] <= result["standard"]["mpjpe_mm"] < 2000
    assert "synthetic_2d" in out


def test_config_may_change_evaluation_fields_only(run, capsys, tmp_path):
    workdir, _ = run
    before = (workdir / "eval").exists() and sorted((workdir / "eval").iterdir())
    config_file = "--config=" + str(ROOT / "configs" / "hkmr.py") + ":smoke"
    for override, field in (
        ("--config.model.regressor.outer_iters=5", "model.regressor.outer_iters"),
        ("--config.data.image_size=64", "data.image_size"),
        ("--config.seed=3", "seed"),
    ):
        code, _, err = _main(["--workdir", str(workdir), config_file, override], capsys)
        assert code == 2 and field in err and "--config may change only" in err, err
        assert "Traceback" not in err
    assert ((workdir / "eval").exists() and sorted((workdir / "eval").iterdir())) == before

    saved = inference.load_run_config(workdir)
    given = _smoke_config()
    given.evals = [{"name": "occluded", "dataset": "synthetic", "split": "test", "limit": 2}]
    given.eval_batch_size = 2
    given.data.data_dir = str(tmp_path)
    given.body_model_male = "m.pkl"
    given.log_every = 1  # training's bookkeeping: ignored
    merged = eval_cli.merge_eval_config(saved, given)
    assert [dict(e) for e in merged.evals] == [dict(e) for e in given.evals]
    assert merged.eval_batch_size == 2 and merged.data.data_dir == str(tmp_path)
    assert merged.body_model_male == "m.pkl" and merged.log_every == saved.log_every
    assert merged.data.image_size == saved.data.image_size == 32
    # Without a config file: --config.FIELD=VALUE overrides of the run's own config.
    given = eval_cli.apply_overrides(saved, {"data.data_dir": "~/tfds", "eval_batch_size": "3"})
    merged = eval_cli.merge_eval_config(saved, given)
    assert merged.data.data_dir == "~/tfds" and merged.eval_batch_size == 3
    given = eval_cli.apply_overrides(saved, {"data.image_size": "64"})
    with pytest.raises(eval_cli.cli.UserError, match=r"data\.image_size: the run's 32"):
        eval_cli.merge_eval_config(saved, given)
    # A body file that moved: accepted only when the saved path is missing here.
    moved = json.loads(saved.to_json())
    moved["body_model"] = str(tmp_path / "gone.pkl")
    import ml_collections

    given = _smoke_config()
    given.body_model = str(tmp_path / "here.pkl")
    merged = eval_cli.merge_eval_config(ml_collections.ConfigDict(moved), given)
    assert merged.body_model == str(tmp_path / "here.pkl")
    assert "using body_model" in capsys.readouterr().err
    (tmp_path / "gone.pkl").write_bytes(b"x")
    with pytest.raises(eval_cli.cli.UserError, match="body_model"):
        eval_cli.merge_eval_config(ml_collections.ConfigDict(moved), given)


def test_user_errors_are_one_line_with_exit_status_2(run, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(eval_cli.cli, "_verbose", False)  # --verbose below: undone after
    workdir, _ = run
    cases = [
        (["--workdir", str(tmp_path / "typo")], "no run at"),
        (["--workdir", str(workdir), "--limit", "0"], "--limit must be a positive number"),
        (["--workdir", str(workdir), "--limit=-3"], "--limit must be a positive number"),
        (["--workdir", str(workdir), "--batch_size", "0"], "--batch_size must be a positive"),
        (["--workdir", str(workdir), "--step=-1"], "--step must be a saved step"),
        (["--workdir", str(workdir), "--step", "7"], "no checkpoint step 7"),
        (["--workdir", str(workdir), "--datasets", "h36m"], "unknown dataset 'h36m'"),
        (["--workdir", str(workdir), "--datasets", "h36m_p1"], "--config.data.data_dir=DIR"),
        (
            ["--workdir", str(workdir), "--datasets", "3dpw", f"--config.data.data_dir={tmp_path}"],
            "not built",
        ),
        (["--workdir", str(workdir), "--evaluators", "std"], "unknown evaluator 'std'"),
        (["--workdir", str(workdir), "--config.seed=1"], "seed: the run's 0, --config's 1"),
        (["--workdir", str(workdir), "--config.seed", "x"], "expected a int like the run's 0"),
        (["--workdir", str(workdir), "--config.sead=1"], "has no field sead"),
        (["--workdir", str(workdir), "--config.evals=[]"], "put it in a config file"),
        (["--workdir", str(workdir), f"--config={tmp_path / 'none.py'}"], "none.py"),
        ([], "--workdir is required"),
        (["--workdir", str(workdir), "--limit=x"], "--limit=x"),
    ]
    for argv, message in cases:
        code, _, err = _main(argv, capsys)
        assert code == 2 and message in err, (argv, err)
        assert err.startswith("hkmr-eval: error: ") and "Traceback" not in err, err
    assert not (tmp_path / "typo").exists()  # a mistyped workdir is not created
    code, _, err = _main(["--workdir", str(tmp_path / "typo"), "--verbose"], capsys)
    assert code == 2 and "Traceback" in err and "no run at" in err
    assert not (tmp_path / "typo").exists()
    # Saved steps, but not one that fits config.json: says what is wrong, deletes nothing.
    other = tmp_path / "other"
    shutil.copytree(workdir, other, ignore=shutil.ignore_patterns("eval"))
    config = json.loads((other / "config.json").read_text())
    config["model"]["mean_params"]["num_betas"] = 11  # the checkpoint's shape net has 10
    (other / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="could not be restored"):
        code, _, err = _main(["--workdir", str(other)], capsys)
    assert code == 2 and "config.json is not the one training wrote" in err, err
    assert "Nothing was changed" in err and "elete" not in err
    assert sorted(p.name for p in other.iterdir()) == ["checkpoints", "config.json"]
    assert (other / "checkpoints" / "5").is_dir()
    # A run without checkpoints: named, and nothing created.
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(workdir / "config.json", empty / "config.json")
    code, _, err = _main(["--workdir", str(empty)], capsys)
    assert code == 2 and f"no checkpoint in {empty / 'checkpoints'}" in err
    assert [p.name for p in empty.iterdir()] == ["config.json"]


def test_a_dataset_of_another_crop_size_is_evaluated_with_a_warning(capsys):
    source = [{"image": np.zeros((224, 224, 3), np.uint8)}]
    eval_cli._check_crop_size(source, "h36m_p1", 32)
    err = capsys.readouterr().err
    assert "h36m_p1 has 224 px crops" in err and "trained on 32 px" in err
    eval_cli._check_crop_size(source, "h36m_p1", 224)
    assert capsys.readouterr().err == ""


def test_a_later_evaluator_adds_its_key_next_to_earlier_ones_of_the_same_step(tmp_path):
    path = tmp_path / "lsp.json"
    path.write_text(json.dumps({"checkpoint_step": 5, "standard": {"mpjpe_mm": 1.0}}))
    merged = eval_cli._with_earlier(path, {"checkpoint_step": 5, "lsp_seg": {"fb_accuracy": 0.9}})
    assert merged == {"checkpoint_step": 5, "standard": {"mpjpe_mm": 1.0},
                      "lsp_seg": {"fb_accuracy": 0.9}}  # fmt: skip
    # Another checkpoint's results are not mixed in; a damaged file is replaced.
    assert eval_cli._with_earlier(path, {"checkpoint_step": 6, "x": 1}) == {
        "checkpoint_step": 6,
        "x": 1,
    }
    path.write_text("{not json")
    assert eval_cli._with_earlier(path, {"checkpoint_step": 5}) == {"checkpoint_step": 5}

"""Training end to end on the smoke configs: resume, data parallelism, signals, NaNs,
workdir and config checks.

The in-process runs share one compiled step (`train_lib` caches it per model/mesh/step
config), so the resume and NaN tests compile it once between them; the multi-device and
SIGTERM tests run in subprocesses with the HMR smoke config, which compiles fastest.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from hkmr_jax import checkpoint, config_files, prior_train, tb_scalars, train_lib
from hkmr_jax import workdir as workdir_lib
from hkmr_jax.data import pipeline

ROOT = Path(__file__).resolve().parents[2]


def load_config(name: str = "hkmr", variant: str | None = "smoke"):
    return config_files.get_config(ROOT / "configs" / f"{name}.py", variant)


def smoke_config():
    """configs/hkmr.py:smoke, 6 steps, checkpoints at 3 and 6, no progress bar or evals."""
    c = load_config()
    c.progress_bar = False
    c.evals = []
    return c


def restore(workdir, config, step=None):
    abstract = checkpoint.abstract_like(train_lib.Trainer.create(config).init_state())
    ckpt = checkpoint.Checkpointer(Path(workdir) / "checkpoints")
    try:
        return ckpt.restore(abstract, step)
    finally:
        ckpt.close()


def _env(**extra):
    # The subprocesses check plumbing (signals, exit codes, equal steps across device
    # counts), not numbers against references: XLA's optimisations only cost compile time.
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               JAX_DISABLE_MOST_OPTIMIZATIONS="1")  # fmt: skip
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def test_resume_continues_exactly(tmp_path, capsys):
    config = smoke_config()
    with_evals = smoke_config()
    with_evals.evals = [{"name": "standard", "limit": 8}]  # a bookkeeping field
    full = train_lib.train_and_evaluate(with_evals, tmp_path / "full")
    summary = capsys.readouterr().out
    assert re.search(r"steps 0 → 6 in [\d.]+ s", summary), summary
    assert "final: " in summary and "eval: synthetic_test_standard/mpjpe_mm" in summary
    first = train_lib.train_and_evaluate(config, tmp_path / "split", stop_after=3)
    second = train_lib.train_and_evaluate(config, tmp_path / "split")

    assert (full["step"], first["step"], second["step"]) == (6, 3, 6)
    assert first["interrupted"] == 1.0 and second["interrupted"] == 0.0
    # The step compiled once for all three runs: resuming does not retrace it.
    assert full["train/step_traces"] == second["train/step_traces"] == 1
    # Steps 4-6 (the last log) saw the same data from the same state.
    np.testing.assert_allclose(second["train/loss"], full["train/loss"], rtol=1e-6)

    step_a, state_a = restore(tmp_path / "full", config)
    step_b, state_b = restore(tmp_path / "split", config)
    assert step_a == step_b == 6
    for key in ("params", "batch_stats", "opt_state"):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
            state_a[key],
            state_b[key],
        )
    initial = train_lib.Trainer.create(config).initial["params"]
    moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - b).max(), initial, state_a["params"])
    assert max(jax.tree.leaves(moved)) > 1e-4  # training did change the parameters

    # The evaluator hook ran at the end of the uninterrupted run.
    assert 0 < full["eval/synthetic_test_standard/mpjpe_mm"] < 2000
    assert full["eval/synthetic_test_standard/num_examples"] == 8
    assert json.loads((tmp_path / "full" / "config.json").read_text())["num_steps"] == 6
    tags = tb_scalars.read_scalars(tmp_path / "full" / "tb")
    for tag in ("train/loss", "train/smpl_pose", "train/joints_3d", "train/keypoints",
                "train/learning_rate", "train/images_per_sec",
                "eval/synthetic_test_standard/mpjpe_mm"):  # fmt: skip
        assert tag in tags, (tag, sorted(tags))
    assert tags["train/loss"][6] == pytest.approx(full["train/loss"], rel=1e-6)

    # A damaged newest step is skipped with a warning; the previous one is restored.
    for path in (tmp_path / "split" / "checkpoints" / "6").rglob("*"):
        if path.is_file() and path.name != "_CHECKPOINT_METADATA":
            path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="step 6 .* could not be restored"):
        step, _ = restore(tmp_path / "split", config)
    assert step == 3


class _NaNKeypointsAt:
    """The synthetic train stream with NaN keypoints for examples [start, stop)."""

    def __init__(self, source, start, stop):
        self.source, self.start, self.stop = source, start, stop

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        example = dict(self.source[i])
        if self.start <= i < self.stop:
            example["keypoints"] = np.full_like(example["keypoints"], np.nan)
        return example


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = smoke_config()  # batch 8: step 4 reads synthetic examples 32..39
    monkeypatch.setitem(
        pipeline._FACTORIES,
        "nan_at_step_4",
        lambda split, data: _NaNKeypointsAt(pipeline.make_source("synthetic", split, data), 32, 40),
    )
    config.data.datasets = [{"name": "nan_at_step_4", "ratio": 1.0}]
    config.checkpoint_every = 2
    with pytest.raises(
        train_lib.NonFiniteLossError, match=r"at step 4 .*last good checkpoint is step 4"
    ):
        train_lib.train_and_evaluate(config, tmp_path)
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
    assert ckpt.steps() == [2, 4]
    ckpt.close()
    step, state = restore(tmp_path, config)
    assert step == 4 and int(state["bad_step"]) == -1
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"]))


def test_a_workdir_of_another_config_is_refused(tmp_path):
    config = smoke_config()
    workdir_lib.prepare_workdir(config, tmp_path, overwrite=False)
    other = smoke_config()
    other.optimizer.learning_rate = 0.5
    expected = f"optimizer.learning_rate: {config.optimizer.learning_rate!r} → 0.5"
    with pytest.raises(workdir_lib.WorkdirConfigError, match=re.escape(expected)):
        train_lib.train_and_evaluate(other, tmp_path)
    # Bookkeeping fields may change between runs.
    relogged = smoke_config()
    relogged.log_every = 1
    relogged.evals = [{"name": "standard"}]
    workdir_lib.prepare_workdir(relogged, tmp_path, overwrite=False)
    # --overwrite deletes the old run (checkpoints, logs, config.json) and nothing else.
    (tmp_path / "checkpoints" / "3").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine")
    workdir_lib.prepare_workdir(other, tmp_path, overwrite=True)
    assert not (tmp_path / "checkpoints").exists() and (tmp_path / "notes.txt").exists()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["optimizer"]["learning_rate"] == 0.5


def test_unknown_evaluator_and_prior_fail_before_training(tmp_path):
    config = smoke_config()
    config.evals = [{"name": "mpjpe_typo"}]
    with pytest.raises(ValueError, match=r"unknown evaluator 'mpjpe_typo'.*standard"):
        train_lib.train_and_evaluate(config, tmp_path)
    assert not (tmp_path / "config.json").exists()
    config = smoke_config()
    config.prior = "gan"
    with pytest.raises(ValueError, match=r"unknown config.prior 'gan'"):
        prior_train.load_pose_prior(config)


def test_the_discriminator_prior_trains_alongside(tmp_path):
    """prior='discriminator': the step updates HMR's discriminator as well, logs both
    adversarial terms, and the discriminator is part of the checkpointed state."""
    config = smoke_config()
    config.prior = "discriminator"
    config.num_steps = 2
    results = train_lib.train_and_evaluate(config, tmp_path)
    assert np.isfinite(results["train/adversarial"]) and results["train/adversarial"] > 0
    assert np.isfinite(results["train/discriminator"]) and results["train/discriminator"] > 0
    initial = train_lib.Trainer.create(config).initial["discriminator"]["params"]
    step, state = restore(tmp_path, config)
    assert step == 2
    moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - b).max(), initial,
                         state["discriminator"]["params"])  # fmt: skip
    assert max(jax.tree.leaves(moved)) > 1e-5


def test_the_pose_prior_loads_from_a_checkpoint(tmp_path):
    from flax import nnx

    from hkmr_jax.models import pose_prior

    config = smoke_config()
    config.prior = "vae"
    config.prior_vae = {"latent_dim": 4, "hidden_dim": 8}
    vae = pose_prior.PoseVAE(latent_dim=4, hidden_dim=8, rngs=nnx.Rngs(7))
    checkpoint.save_tree(tmp_path / "vae", nnx.to_pure_dict(nnx.state(vae)))
    config.prior_checkpoint = str(tmp_path / "vae")
    _, state = prior_train.load_pose_prior(config)
    np.testing.assert_array_equal(state["enc_mu"]["kernel"], vae.enc_mu.kernel[...])
    config.prior_checkpoint = None
    with pytest.warns(UserWarning, match="UNTRAINED"):
        prior_train.load_pose_prior(config)


def test_the_synthetic_pose_law_reaches_data_mean_pose_and_prior(tmp_path):
    """One override, `data.synthetic_pose_spread` (and `synthetic_yaw_range`), sets the law
    of both synthetic sources, the model's starting mean pose and a VAE trained at the
    start of the run; the run's config itself is not changed."""
    import json

    from hkmr_jax.data import synthetic

    config = smoke_config()
    config.data.synthetic_yaw_range, config.data.synthetic_pose_spread = 360.0, 0.25
    for name in ("synthetic", "synthetic_2d"):
        source = pipeline.make_source(name, "train", config.data)
        law = getattr(source, "source", source).config()  # synthetic_2d wraps the dataset
        assert (law["yaw_range"], law["pose_spread"]) == (360.0, 0.25), name
    model = train_lib.build_model(config)
    np.testing.assert_array_equal(
        model.regressor.init_theta[...][1:], synthetic.mean_body_pose(0.25)
    )
    config.prior, config.prior_vae = "vae", {"latent_dim": 4, "hidden_dim": 8}
    config.prior_training.num_steps = config.prior_training.log_every = 2
    config.prior_training.batch_size = config.prior_training.num_validation = 8
    prior_train.load_pose_prior(config, tmp_path)
    trained = json.loads((tmp_path / "pose_prior" / "config.json").read_text())
    assert trained["data"]["pose_spread"] == 0.25
    assert config.prior_training.data.pose_spread is None


def test_multihost_initialises_jax_distributed_first(tmp_path, monkeypatch):
    """`config.multihost` calls `jax.distributed.initialize()` before anything else (here
    it raises, so nothing is written); the configs leave it off."""
    calls = []

    def initialize():
        calls.append(1)
        raise KeyboardInterrupt("initialize called")  # not a RuntimeError: not swallowed

    monkeypatch.setattr(jax.distributed, "initialize", initialize)
    config = smoke_config()
    config.multihost = True
    with pytest.raises(KeyboardInterrupt, match="initialize called"):
        train_lib.train_and_evaluate(config, tmp_path / "run")
    assert calls == [1] and not (tmp_path / "run").exists()
    assert load_config().multihost is False


def test_config_variants():
    for name in ("hkmr", "hmr"):
        for variant in ("default", "smoke", "paper"):
            c = load_config(name, variant)
            assert c.model.name == name
            assert c.batch_size % 8 == 0 and c.num_steps > 0
    paper = load_config("hkmr", "paper")
    assert paper.model.encoder.name == "resnet50" and paper.data.image_size == 224
    assert paper.optimizer.learning_rate == 5e-5 and paper.batch_size == 64
    regressor = paper.model.regressor
    assert (regressor.embed_dim, regressor.outer_iters, regressor.inner_iters) == (160, 3, 4)
    assert (regressor.history, regressor.passes) == ("all", "forward_backward")
    with pytest.raises(ValueError, match="unknown config variant"):
        load_config("hkmr", "smok")


def test_a_misspelt_override_fails(tmp_path):
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", "configs/hkmr.py:smoke",
           "--config.num_stepz=3", "--workdir", str(tmp_path / "run")]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert 'Did you mean "num_steps"' in result.stderr
    assert not (tmp_path / "run").exists()


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    workdir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", "configs/hmr.py:smoke",
           "--workdir", str(workdir), "--config.num_steps=100000", "--config.checkpoint_every=5",
           "--config.progress_bar=False"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (workdir / "checkpoints" / "5").is_dir():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by SIGTERM" in out
    config = load_config("hmr")
    step, state = restore(workdir, config)
    assert step >= 5 and int(state["step"]) == step


_DEVICES_SCRIPT = """
import json, sys
import jax, numpy as np
from hkmr_jax import config_files, train_lib
from hkmr_jax.data import pipeline

config = config_files.get_config("configs/hmr.py", "smoke")
config.model.encoder.bn_axis_name = "data"  # synchronised BN: statistics of the whole batch
config.model.regressor.dropout = 0.0  # dropout masks differ per device by design
config.prior, config.prior_vae = "vae", {"latent_dim": 4, "hidden_dim": 8}
batch = next(pipeline.train_iterator(config, 0, process_index=0, process_count=1))
results = {}
for n in DEVICE_COUNTS:
    trainer = train_lib.Trainer.create(config, train_lib.make_mesh(jax.devices()[:n]))
    state, metrics = trainer.step(trainer.init_state(), trainer.global_batch(batch))
    results[n] = jax.device_get((state, metrics))
s1, m1 = results[1]
def diff(a, b):
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.abs(x - y).max()), a, b)))

init = trainer.initial["params"]
print(json.dumps({
    "devices": jax.device_count(),
    "metrics": {k: [float(results[n][1][k]) for n in DEVICE_COUNTS] for k in m1},
    "params": {n: diff(s1["params"], results[n][0]["params"]) for n in DEVICE_COUNTS},
    "update": diff(s1["params"], init),
    "batch_stats": {n: diff(s1["batch_stats"], results[n][0]["batch_stats"])
                    for n in DEVICE_COUNTS},
}))
"""
DEVICE_COUNTS = (1, 4, 8)  # 8: one example per device (the smoke batch)


def test_one_four_and_eight_devices_take_the_same_step():
    script = f"DEVICE_COUNTS = {DEVICE_COUNTS}\n" + textwrap.dedent(_DEVICES_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT,
        env=_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={max(DEVICE_COUNTS)}"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == max(DEVICE_COUNTS)
    assert "kl" in out["metrics"]  # the VAE prior is part of the loss
    for name, values in out["metrics"].items():
        for n, value in zip(DEVICE_COUNTS[1:], values[1:]):
            np.testing.assert_allclose(value, values[0], rtol=2e-5, err_msg=f"{name}, {n}")
    # Adam's first update moves parameters by about the learning rate (1e-3).
    assert out["update"] > 1e-4
    for n in DEVICE_COUNTS[1:]:
        assert out["params"][str(n)] < 1e-5, n
        assert out["batch_stats"][str(n)] < 1e-5, n

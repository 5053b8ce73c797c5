"""The workdir and the command line of train.py: config checks before anything is
written, one trainer per workdir, damaged steps set aside and retrained, runs extended,
one-line errors with exit status 2.

Runs that train share one finished run (configs/hmr.py:smoke, 4 steps); the subprocess
tests all fail before training, so each costs only train.py's start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from hkmr_jax import checkpoint, config_checks, config_files, train_lib
from hkmr_jax import workdir as workdir_lib
from tests.hkmr_jax.test_train import restore

ROOT = Path(__file__).resolve().parents[2]


def smoke_config(num_steps: int = 4):
    """configs/hmr.py:smoke (the fastest to compile), `num_steps` steps, checkpoints
    every 2, no bar or evals."""
    c = config_files.get_config(ROOT / "configs" / "hmr.py", "smoke")
    c.progress_bar, c.evals = False, []
    c.num_steps, c.checkpoint_every, c.log_every = num_steps, 2, 2
    return c


def train_py(*args, devices: int = 1, timeout: int = 120):
    """Run train.py (hmr smoke) with `args`; (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               JAX_DISABLE_MOST_OPTIMIZATIONS="1",  # messages and exit codes, not numbers
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")  # fmt: skip
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", "configs/hmr.py:smoke", *args]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def assert_one_message(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 4, err
    assert err.startswith("train.py: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


# ----------------------------------------------------------------------------- the CLI


def test_a_misspelt_field_is_one_line_and_claims_nothing(tmp_path):
    workdir = tmp_path / "run"
    code, _, err = train_py("--workdir", str(workdir), "--config.bogus_field=3")
    assert code == 2
    assert_one_message(err, "'bogus_field'", "--config.bogus_field")
    assert not workdir.exists()


def test_a_bad_value_is_an_error_and_verbose_adds_the_traceback(tmp_path):
    workdir = tmp_path / "run"
    code, _, err = train_py("--workdir", str(workdir), "--config.num_steps=-5",
                            "--config.checkpoint_every=-1", "--verbose")  # fmt: skip
    assert code == 2 and "Traceback" in err
    assert "train.py: error: the config cannot run:\n  config.num_steps=-5: must be a " in err
    assert "config.checkpoint_every=-1" in err
    assert not workdir.exists()


def test_config_values_and_paths_are_checked(tmp_path):
    config = smoke_config()
    config.batch_size, config.log_every, config.keep_checkpoints = 0, -2, 0
    config.body_model, config.h36m_regressor = "/no/such.pkl", None
    config.model.encoder.name, config.prior = "resnet51", "gan"
    config.data.datasets = [{"name": "synthetic+nope", "ratio": 0}]
    config.data.data_dir = str(tmp_path / "missing")
    with pytest.raises(config_checks.ConfigError) as info:
        config_checks.validate_config(config)
    lines = str(info.value).splitlines()[1:]
    for needle in ("config.batch_size=0", "config.log_every=-2", "config.keep_checkpoints=0",
                   "config.body_model='/no/such.pkl': no such file",
                   "config.body_model needs config.h36m_regressor",
                   "config.model.encoder.name='resnet51'", "config.prior='gan'",
                   "unknown dataset 'nope'", "ratio 0 must be > 0",
                   "config.data.data_dir=", "no such directory"):  # fmt: skip
        assert any(needle in line for line in lines), (needle, lines)


def test_an_indivisible_batch_is_refused_before_the_workdir_exists(tmp_path):
    workdir = tmp_path / "run"
    code, _, err = train_py("--workdir", str(workdir), "--config.batch_size=7", devices=2)
    assert code == 2
    assert_one_message(err, "config.batch_size=7 is not divisible by the 2 devices", "8")
    assert not workdir.exists()


def test_paper_variants_need_the_body_and_encoder_weights(tmp_path):
    for name in ("hkmr", "hkmr_spin", "hmr", "spin"):
        config = config_files.get_config(ROOT / "configs" / f"{name}.py", "paper")
        config.data.datasets = [{"name": "synthetic", "ratio": 1.0}]
        config.evals = []
        with pytest.raises(config_checks.ConfigError) as info:
            config_checks.validate_config(config)
        message = str(info.value)
        assert "config.body_model is not set" in message, name
        assert "--config.allow_builtin_body=True" in message
        assert "config.model.encoder_init is not set" in message
        assert "--config.allow_random_encoder=True" in message
    config.allow_builtin_body = config.allow_random_encoder = True
    config.prior_checkpoint = str(tmp_path)  # a directory (contents are checked later)
    config_checks.validate_config(config)  # said explicitly: accepted
    config.data.datasets = [{"name": "h36m", "ratio": 1.0}]
    with pytest.raises(config_checks.ConfigError, match=r"'h36m' needs config\.data\.data_dir"):
        config_checks.validate_config(config)
    # A pose VAE for real data cannot be trained on the built-in poses: it must be given.
    config.data.data_dir, config.prior_checkpoint = str(tmp_path), None
    with pytest.raises(config_checks.ConfigError, match=r"needs config\.prior_checkpoint.*h36m"):
        config_checks.validate_config(config)
    # The other variants use the built-in body and a small CNN without complaint.
    config_checks.validate_config(smoke_config())


# ----------------------------------------------------------------------------- the lock

_HOLDER = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.write(f"PID {os.getpid()} on test"); f.flush()
print("locked", flush=True)
time.sleep(600)
"""


def test_one_trainer_per_workdir_and_a_dead_holder_releases(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    with workdir_lib.WorkdirLock(workdir):
        content = (workdir / ".lock").read_text()
        assert f"PID {os.getpid()}" in content
        code, _, err = train_py("--workdir", str(workdir))
        assert code == 2
        assert_one_message(err, f"is in use by another trainer (PID {os.getpid()}", "wait")
        with pytest.raises(workdir_lib.WorkdirLockedError, match=f"PID {os.getpid()}"):
            workdir_lib.WorkdirLock(workdir).__enter__()
    assert not (workdir / "config.json").exists()
    # A holder killed with SIGKILL (no clean-up at all) leaves the file but not the lock.
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(workdir / ".lock")],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(workdir_lib.WorkdirLockedError, match=f"PID {holder.pid} on test"):
            workdir_lib.WorkdirLock(workdir).__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with workdir_lib.WorkdirLock(workdir):
        assert f"PID {os.getpid()}" in (workdir / ".lock").read_text()


# ----------------------------------------------------------------------------- failed starts


def test_a_failed_start_leaves_no_config_and_no_workdir(tmp_path):
    bad = smoke_config()
    (tmp_path / "smpl.pkl").write_bytes(b"not a pickle")
    np.save(tmp_path / "regressor.npy", np.zeros((17, 6890), np.float32))
    bad.body_model, bad.h36m_regressor = str(tmp_path / "smpl.pkl"), str(tmp_path / "regressor.npy")
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    existing.mkdir()
    for workdir in (fresh, existing):
        with pytest.raises(Exception):  # noqa: B017 (whatever the SMPL loader raises)
            train_lib.train_and_evaluate(bad, workdir)
    assert not fresh.exists()  # created by the failed start, so removed again
    assert sorted(p.name for p in existing.iterdir()) == [".lock"]  # the user's, kept
    # The corrected config is not "a different config" (nothing was recorded).
    assert workdir_lib.check_workdir(smoke_config(), existing) is not None


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 4-step smoke run (checkpoints 2 and 4) and its step-4 state; tests
    work on copies (`copy_run`)."""
    config = smoke_config()
    workdir = tmp_path_factory.mktemp("finished") / "run"
    train_lib.train_and_evaluate(config, workdir)
    return workdir, restore(workdir, config)[1]


def copy_run(finished_run, tmp_path) -> Path:
    workdir = tmp_path / "run"
    shutil.copytree(finished_run[0], workdir)
    return workdir


def test_a_damaged_step_is_set_aside_and_trained_again(finished_run, tmp_path, capfd):
    config = smoke_config()
    workdir = copy_run(finished_run, tmp_path)
    step4 = workdir / "checkpoints" / "4"
    for path in step4.rglob("*"):  # truncate the arrays' data files to half
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    capfd.readouterr()
    with pytest.warns(UserWarning, match="step 4 .* could not be restored"):
        results = train_lib.train_and_evaluate(config, workdir)
    out, err = capfd.readouterr()
    assert results["step"] == 4
    assert "resuming from step 2" in out
    aside = [p for p in (workdir / "checkpoints").iterdir() if p.name.startswith("4.damaged-")]
    assert len(aside) == 1 and str(aside[0]) in err  # named, kept
    assert (aside[0] / "default").is_dir()
    assert "Event loop is closed" not in err
    # Step 4 was saved again, and equals the step the first run saved (same data, state).
    step, state = restore(workdir, config)
    assert step == 4
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 state["params"], finished_run[1]["params"])  # fmt: skip
    # The run released its lock.
    with workdir_lib.WorkdirLock(workdir):
        pass


def test_a_finished_run_is_extended_with_its_schedule_kept(finished_run, tmp_path, capfd):
    config = smoke_config()
    workdir = copy_run(finished_run, tmp_path)
    longer = smoke_config(num_steps=6)
    with pytest.raises(workdir_lib.WorkdirConfigError) as info:
        train_lib.train_and_evaluate(longer, workdir)
    message = str(info.value)
    assert "num_steps: 4 → 6" in message and "add --extend" in message
    assert "--overwrite DELETES" in message
    other = smoke_config(num_steps=6)
    other.optimizer.learning_rate = 0.5
    with pytest.raises(workdir_lib.WorkdirConfigError, match="only a larger num_steps"):
        train_lib.train_and_evaluate(other, workdir, extend=True)
    capfd.readouterr()
    results = train_lib.train_and_evaluate(longer, workdir, extend=True)
    out = capfd.readouterr().out
    assert "extending" in out and "resuming from step 4" in out
    assert results["step"] == 6
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["num_steps"] == 6 and saved["optimizer"]["schedule_steps"] == 4
    # The cosine schedule ended at step 4; steps 5-6 ran at its final rate.
    final = config.optimizer.learning_rate * config.optimizer.final_lr_fraction
    np.testing.assert_allclose(results["train/learning_rate"], final, rtol=1e-6)
    assert restore(workdir, longer)[0] == 6
    # Resuming the extended run later needs no flag; the schedule stays the run's.
    kept = workdir_lib.check_workdir(smoke_config(num_steps=6), workdir)
    assert kept.optimizer.schedule_steps == 4


def test_a_pose_prior_config_is_checked_before_its_workdir_exists(tmp_path):
    from hkmr_jax import prior_train

    config = config_files.get_config(ROOT / "configs" / "pose_prior.py")
    config.num_steps, config.data.source = -5, "amass"
    with pytest.raises(ValueError) as info:
        prior_train.train_pose_prior(config, tmp_path / "vae")
    assert "config.num_steps=-5" in str(info.value)
    assert "config.data.amass_glob is not set" in str(info.value)
    assert not (tmp_path / "vae").exists()


def test_a_failed_checkpoint_write_is_one_message(tmp_path):
    """Under a file-size limit (`ulimit -f`) the error names the OS's cause."""
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(checkpoint.CheckpointWriteError) as info:
            ckpt.save(1, {"x": np.random.default_rng(0).random(1 << 18, np.float32)})
            ckpt.wait()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        with contextlib.suppress(checkpoint.CheckpointWriteError):  # the same failure
            ckpt.close()
    message = str(info.value)
    assert re.search(r"Failed writing: .*File too large", message), message
    assert "ulimit -f" in message and len(message) < 800


def test_a_run_made_before_new_fields_resumes_and_pipeline_settings_may_change(tmp_path):
    """config.json of an older run lacks fields added since (compute_dtype: as before,
    float32); the input pipeline's threads and workers give the same batches."""
    saved = workdir_lib.config_dict(smoke_config())
    del saved["model"]["compute_dtype"], saved["data"]["worker_count"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    resumed = smoke_config()
    with resumed.unlocked():
        resumed.data.worker_count, resumed.data.num_threads = 2, 3
    assert workdir_lib.check_workdir(resumed, tmp_path) is not None
    bf16 = smoke_config()
    with bf16.unlocked():
        bf16.model.compute_dtype = "bfloat16"
    with pytest.raises(
        workdir_lib.WorkdirConfigError, match="compute_dtype: 'float32' → 'bfloat16'"
    ):
        workdir_lib.check_workdir(bf16, tmp_path)

"""A run's directory: one trainer at a time (`WorkdirLock`), its saved `config.json`
compared before resuming (`check_workdir`: bookkeeping fields may change, `extend` lets
`num_steps` grow) and written once the run can start (`write_config`)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path

import jax

from hkmr_jax.cli import UserError
from smpl_jax import atomic_files

#: Config fields that do not change what a step computes (the input pipeline's threads,
#: prefetch and worker processes give the same batches): a run may resume with new values.
BOOKKEEPING_KEYS = frozenset(
    {"log_every", "checkpoint_every", "keep_checkpoints", "eval_every", "evals",
     "eval_batch_size", "progress_bar", "allow_builtin_body", "allow_random_encoder",
     "data.num_threads", "data.prefetch", "data.worker_count"}
)  # fmt: skip
#: Fields added to the configs after runs were made, with the value that behaves as the
#: code did before them: a run whose config.json lacks one resumes with that value.
ADDED_FIELDS = {"model.compute_dtype": "float32", "optimizer.schedule_steps": None}


class WorkdirConfigError(ValueError):
    """The workdir holds a run of a different config."""


class WorkdirLockedError(UserError):
    """Another trainer holds the workdir's lock."""


def config_dict(config) -> dict:
    """`config` (a ConfigDict) as plain JSON data: what `config.json` holds."""
    return json.loads(config.to_json_best_effort(sort_keys=True))


def _differences(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            if f"{prefix}{k}" in BOOKKEEPING_KEYS:
                continue
            # A field added to the configs since the run started: as before, else None.
            before = ADDED_FIELDS.get(f"{prefix}{k}")
            out += _differences(old.get(k, before), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}: {old!r} → {new!r}"]


class WorkdirLock:
    """One trainer per workdir: an exclusive `fcntl.flock` on `WORKDIR/.lock`, which
    holds the holder's PID, host and start time (for the message a second trainer
    gets). The kernel releases the lock when its process dies, however it dies, so a
    lock left by a killed trainer is simply taken over. Only process 0 of a multi-host
    job takes it."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / ".lock"
        self._file = None

    def __enter__(self) -> WorkdirLock:
        if jax.process_index() != 0:
            return self
        handle = open(self.path, "a+")  # held until __exit__
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise WorkdirLockedError(
                f"{self.path.parent} is in use by another trainer ({holder}); wait for it "
                "to finish or stop it, or use another --workdir."
            ) from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        handle.write(f"PID {os.getpid()} on {socket.gethostname()}, since {started}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def check_workdir(config, workdir: Path, *, extend: bool = False):
    """The config to run in `workdir`, after comparing `config` with the run's saved
    `config.json` (nothing is written).

    A run may resume with different bookkeeping fields (`BOOKKEEPING_KEYS`). With
    `extend`, `num_steps` may also grow: the returned config keeps the run's
    learning-rate schedule (`optimizer.schedule_steps` = the length it was planned for)
    so that the extra steps run at the schedule's final rate. Any other difference is
    refused.

    Raises:
      WorkdirConfigError: the differences, and what to do (never deleting silently).
    """
    path = workdir / "config.json"
    if not path.exists():
        return config
    old = json.loads(path.read_text())
    new = config_dict(config)
    old_schedule = (old.get("optimizer") or {}).get("schedule_steps")
    if new["optimizer"].get("schedule_steps") is None and old_schedule is not None:
        new["optimizer"]["schedule_steps"] = old_schedule  # the run's (set by --extend)
    diff = _differences(old, new)
    more = [d for d in diff if d.startswith("num_steps:")]
    grows = more and int(new["num_steps"]) > int(old["num_steps"])
    if extend and grows and len(diff) == len(more):
        schedule = old_schedule or int(old["num_steps"])
        config = config.copy_and_resolve_references()
        with config.unlocked():
            config.optimizer.schedule_steps = schedule
        if jax.process_index() == 0:
            print(f"extending {workdir} from {old['num_steps']} to {config.num_steps} steps; "
                  f"the learning-rate schedule keeps its length ({schedule} steps) and the "
                  "extra steps run at its final rate", flush=True)  # fmt: skip
        return config
    if not diff:
        if old_schedule is not None:  # resuming an extended run
            config = config.copy_and_resolve_references()
            with config.unlocked():
                config.optimizer.schedule_steps = old_schedule
        return config
    hint = "Use another --workdir for a new run"
    if grows and len(diff) == len(more) and not extend:
        hint = (
            "To train this run longer, add --extend (only num_steps may change; the "
            "extra steps run at the schedule's final learning rate). Or use another "
            "--workdir"
        )
    elif extend:
        hint = (
            "--extend allows only a larger num_steps; undo the other changes, or use "
            "another --workdir"
        )
    raise WorkdirConfigError(
        f"{workdir} holds a run of a different config ({path}); differences:\n  "
        + "\n  ".join(diff[:20])
        + f"\n{hint}. (--overwrite DELETES that run's checkpoints and logs and starts afresh.)"
    )


def write_config(config, workdir: Path, overwrite: bool = False) -> None:
    """Write `workdir/config.json` (atomically, process 0); with `overwrite`, first
    delete the old run's `config.json`, `checkpoints/` and `tb/` (nothing else)."""
    path = workdir / "config.json"
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() != 0:
        return
    if overwrite:
        for name in ("checkpoints", "tb"):
            shutil.rmtree(workdir / name, ignore_errors=True)
        path.unlink(missing_ok=True)
    atomic_files.write_text(path, json.dumps(config_dict(config), indent=2, sort_keys=True) + "\n")


def prepare_workdir(config, workdir: Path, overwrite: bool, extend: bool = False):
    """`check_workdir` (skipped with `overwrite`), then `write_config`; the config to run."""
    workdir = Path(workdir)
    if not overwrite:
        config = check_workdir(config, workdir, extend=extend)
    write_config(config, workdir, overwrite)
    return config


__all__ = [
    "ADDED_FIELDS",
    "BOOKKEEPING_KEYS",
    "WorkdirConfigError",
    "WorkdirLock",
    "WorkdirLockedError",
    "check_workdir",
    "config_dict",
    "prepare_workdir",
    "write_config",
]

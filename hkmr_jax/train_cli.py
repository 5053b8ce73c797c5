"""`hkmr-train` / `python train.py`: train and evaluate a config (flax examples style).

    hkmr-train --config configs/hkmr.py:smoke --workdir runs/smoke [--overwrite] \\
        [--extend] [--verbose] [--config.num_steps=100 ...]

The same workdir again resumes from the latest checkpoint; SIGTERM or Ctrl-C saves and
exits 0; a mistake is one message and exit status 2. `task='pose_prior'` configs train the
pose VAE. Details: docs/training.md ("The command").
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from hkmr_jax import cli

FLAGS = flags.FLAGS

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/hkmr.py:smoke.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, config.json.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "DELETE a previous run of another config in --workdir and start afresh."
)
_EXTEND = flags.DEFINE_bool(
    "extend", False,
    "Train the run in --workdir longer: --config.num_steps may exceed the run's (nothing "
    "else may change); the learning-rate schedule keeps its length and the extra steps run "
    "at its final rate.",
)  # fmt: skip
_VERBOSE = flags.DEFINE_bool("verbose", False, "Print tracebacks of errors too.")
flags.mark_flags_as_required(["config", "workdir"])


def _prog() -> str:
    return os.path.basename(sys.argv[0]) or "train.py"


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, with every command-line mistake as one line and exit status 2
    (ml_collections raises AttributeError / KeyError / ValueError for a bad
    `--config.FIELD`, not absl's flags.Error)."""
    try:
        return FLAGS(argv)
    except Exception as error:  # anything raised while reading the command line
        if "--verbose" in argv:
            traceback.print_exc()
        text = cli.message(error)
        if isinstance(error, AttributeError | KeyError):  # ConfigDict: a KeyError inside
            inner = error
            while isinstance(inner, AttributeError | KeyError) and inner.args:
                inner = inner.args[0]
            field, _, hint = str(inner).partition("\n")
            field = field.strip("'\"")
            given = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.") and field in a]
            where = f" in {given[0]}" if given else ""
            text = f"no config field {field!r}{where}. {hint or 'Check the spelling.'}"
        print(f"{_prog()}: error: {text}", file=sys.stderr)
        print("Pass --helpfull to see the flags.", file=sys.stderr)
        raise SystemExit(2) from None


def _quiet_orbax() -> None:
    """Drop orbax's own log lines (with tracebacks) about a failed save: the failure is
    raised to `report_errors`, which says it once."""
    std_logging.getLogger("absl").addFilter(lambda r: "/orbax/" not in r.pathname)


def _main(argv) -> None:
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        # orbax and JAX log every checkpoint step at INFO; progress shows in the bar.
        logging.set_verbosity(logging.WARNING)
    config = _CONFIG.value
    if config.get("task") == "pose_prior":  # configs/pose_prior.py
        from hkmr_jax import prior_train  # after flag parsing (heavy): --help stays fast

        prior_train.train_pose_prior(config, _WORKDIR.value)
        return
    from hkmr_jax import train_lib  # after flag parsing (heavy): --help stays fast

    try:
        train_lib.train_and_evaluate(config, _WORKDIR.value, overwrite=_OVERWRITE.value,
                                     extend=_EXTEND.value)  # fmt: skip
    except train_lib.NonFiniteLossError as error:
        raise cli.UserError(str(error)) from error


def _run(argv) -> None:
    cli.set_verbose(_VERBOSE.value)
    if not _VERBOSE.value:
        _quiet_orbax()
    with cli.report_errors(_prog()):
        _main(argv)


def main() -> None:
    """Console-script entry point."""
    app.run(_run, flags_parser=_parse_flags)


if __name__ == "__main__":
    main()

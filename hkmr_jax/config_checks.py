"""Checking a training config before anything runs or is written (`validate_config`):
every problem found is reported at once, one line each, naming the field and the fix
(`ConfigError`). Where it runs in a training start: docs/training.md ("The workdir")."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import jax

from hkmr_jax import models, prior_train
from hkmr_jax.data import pipeline
from hkmr_jax.models import encoder as encoder_lib
from hkmr_jax.train_evals import check_evals


class ConfigError(ValueError):
    """A config value that cannot work (checked before anything is written)."""


#: What `paper` variants need and where it comes from (`validate_config`).
_PAPER_INPUTS = {
    "allow_builtin_body": (
        "body_model",
        "the SMPL body (SMPL_NEUTRAL.pkl from https://smpl.is.tue.mpg.de, with "
        "--config.h36m_regressor=J_regressor_h36m.npy from SPIN's data)",
        "train on the built-in toy body",
    ),
    "allow_random_encoder": (
        "model.encoder_init",
        "the encoder's ImageNet weights (torchvision's resnet50-0676ba61.pth, "
        "https://download.pytorch.org/models/resnet50-0676ba61.pth)",
        "train the encoder from random weights",
    ),
}


def _get(config, dotted: str):
    value = config
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, Mapping) or hasattr(value, "get") else None
        if value is None:
            return None
    return value


def validate_config(config) -> None:
    """Check `config`'s values and paths before anything runs or is written.

    Positive sizes and step counts, a batch divisible by the devices, known names
    (model, encoder, prior, optimizer, datasets, evaluators), readable files and
    directories for every path field, and, for `paper` variants (`allow_builtin_body`
    / `allow_random_encoder` False), the SMPL body and the encoder's weights.

    Raises:
      ConfigError: every problem found, one line each, naming the field and the fix.
    """
    problems: list[str] = []

    def integer(name, minimum, required=True):
        value = _get(config, name)
        if value is None and not required:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
            problems.append(f"config.{name}={value!r}: must be {what}.")

    def choice(name, valid, default=None):
        value = _get(config, name)
        value = default if value is None else value
        if value not in valid:
            problems.append(f"config.{name}={value!r}: unknown; choose one of {sorted(valid)}.")

    for name in ("batch_size", "num_steps", "checkpoint_every", "data.image_size"):
        integer(name, 1)
    integer("log_every", 1, required=False)  # these have defaults
    integer("eval_batch_size", 1, required=False)
    integer("eval_every", 0, required=False)
    integer("keep_checkpoints", 1, required=False)
    integer("optimizer.warmup_steps", 0, required=False)
    integer("optimizer.schedule_steps", 1, required=False)
    batch = config.get("batch_size")
    if isinstance(batch, int) and batch > 0 and batch % jax.device_count():
        n = jax.device_count()
        problems.append(
            f"config.batch_size={batch} is not divisible by the {n} devices: use a multiple "
            f"of {n}, e.g. {-(-batch // n) * n}."
        )
    lr = _get(config, "optimizer.learning_rate")
    if not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        problems.append(f"config.optimizer.learning_rate={lr!r}: must be a positive number.")
    choice("model.name", models.mesh_regressor.REGRESSORS)
    choice("model.encoder.name", encoder_lib.ENCODER_NAMES)
    choice("prior", ("none", "vae", "discriminator"), default="none")
    choice("optimizer.name", ("adam", "adamw"), default="adam")
    choice("optimizer.schedule", ("constant", "cosine"), default="constant")
    datasets = list(_get(config, "data.datasets") or ())
    if not datasets:
        problems.append("config.data.datasets is empty: give at least one {name, ratio}.")
    names = [(f"config.data.datasets[{i}]", d.get("name"), d.get("ratio"))
             for i, d in enumerate(datasets)]  # fmt: skip
    for i, spec in enumerate(config.get("evals", None) or ()):
        names.append((f"config.evals[{i}]", spec.get("dataset", "synthetic"), 1.0))
    data_dir = _get(config, "data.data_dir")
    for where, name, ratio in names:
        for part in str(name).split("+"):
            if part in pipeline._FACTORIES:
                continue
            if part not in pipeline.dataset_names():
                problems.append(f"{where}: unknown dataset {part!r}; valid names: "
                                f"{', '.join(pipeline.dataset_names())}.")  # fmt: skip
            elif not data_dir:
                problems.append(f"{where}: dataset {part!r} needs config.data.data_dir, the "
                                "TFDS directory it was built into (python -m "
                                f"hkmr_jax.data.build --dataset {part} ...).")  # fmt: skip
        if not isinstance(ratio, int | float) or not ratio > 0:
            problems.append(f"{where}: ratio {ratio!r} must be > 0.")
    try:
        check_evals(config)
    except ValueError as e:
        problems.append(str(e))
    for field in ("body_model", "h36m_regressor", "body_model_male", "body_model_female",
                  "model.encoder_init", "model.mean_params.path", "fitting.gmm_path"):  # fmt: skip
        path = _get(config, field)
        if path and not os.access(os.path.expanduser(path), os.R_OK):
            why = "no such file" if not os.path.exists(os.path.expanduser(path)) else "not readable"
            problems.append(f"config.{field}={path!r}: {why}; give the path of that file.")
    for field in ("prior_checkpoint", "data.data_dir"):
        path = _get(config, field)
        if path and not os.path.isdir(os.path.expanduser(path)):
            problems.append(f"config.{field}={path!r}: no such directory.")
    if config.get("h36m_regressor") and not config.get("body_model"):
        problems.append("config.h36m_regressor is set but config.body_model is not: the "
                        "built-in body has its own regressor; set both.")  # fmt: skip
    if config.get("body_model") and not config.get("h36m_regressor"):
        problems.append("config.body_model needs config.h36m_regressor: the [17, V] "
                        "Human3.6M regressor of that body (SPIN's J_regressor_h36m.npy)."
                        )  # fmt: skip
    if config.get("prior") == "vae" and not config.get("prior_checkpoint"):
        training = config.get("prior_training")
        if training is not None:
            problems += [f"config.prior_training.{p[7:]}"
                         for p in prior_train.config_problems(training)]  # fmt: skip
            real = sorted({n for d in datasets for n in str(d.get("name")).split("+")
                           if not n.startswith("synthetic")})  # fmt: skip
            if training.data.get("source") == "synthetic" and real:
                problems.append(
                    "config.prior='vae' needs config.prior_checkpoint: without one the prior "
                    f"would be trained on the built-in poses, but this run uses real data "
                    f"({', '.join(real)}). Train one on AMASS (configs/pose_prior.py:amass) "
                    "and set --config.prior_checkpoint=WORKDIR/params."
                )
    for flag, (field, what, consequence) in _PAPER_INPUTS.items():
        if config.get(flag, True) is False and not _get(config, field):
            problems.append(
                f"config.{field} is not set: this config needs {what}. Set "
                f"--config.{field}=PATH, or pass --config.{flag}=True to {consequence} "
                "deliberately."
            )
    if problems:
        raise ConfigError("\n  ".join(["the config cannot run:", *problems]))


__all__ = ["ConfigError", "validate_config"]

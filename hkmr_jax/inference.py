"""Restore a trained run and predict: the one path shared by training's evaluation,
`eval.py` and the demo.

    run = inference.restore("runs/hkmr")       # the run's own WORKDIR/config.json
    out = run.predict(images)                   # uint8 [B, S, S, 3] → RegressorOutput

`restore_model` is the model alone; `predict_fn(graphdef)` the jitted program training's
evaluation runs too (same numbers, bit for bit). A failure a user can cause is a
`cli.UserError` naming the thing; nothing in the workdir changes. docs/training.md.
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hkmr_jax import checkpoint as checkpoint_lib
from hkmr_jax.bodies import load_body
from hkmr_jax.cli import UserError
from hkmr_jax.models import encoder as encoder_lib

_MEAN = np.asarray(encoder_lib.IMAGENET_MEAN, np.float32)
_STD = np.asarray(encoder_lib.IMAGENET_STD, np.float32)


def normalize_images(images):
    """uint8 [B, H, W, 3] → float32 RGB normalised with ImageNet's mean and std."""
    return (images.astype(jnp.float32) / 255.0 - _MEAN) / _STD


@functools.lru_cache(maxsize=4)
def predict_fn(graphdef):
    """A jitted (variables, uint8 images [B, S, S, 3]) → RegressorOutput for one
    eval-mode graph (cached: evaluating again does not recompile)."""

    @jax.jit
    def predict(variables, images):
        return nnx.merge(graphdef, variables)(normalize_images(images))

    return predict


def _train_hint(workdir) -> str:
    return f"python train.py --config configs/hkmr.py --workdir {workdir}"


def check_workdir(workdir) -> pathlib.Path:
    """`workdir` as a Path, if it is an existing directory (else a `UserError`)."""
    workdir = pathlib.Path(workdir).expanduser()
    if not workdir.is_dir():
        what = "not a directory" if workdir.exists() else "no such directory"
        raise UserError(
            f"no run at {workdir} ({what}); give the --workdir of a training run, or train "
            f"one: {_train_hint(workdir)}"
        )
    return workdir


def load_run_config(workdir):
    """A run's config (an `ml_collections.ConfigDict`) from ``WORKDIR/config.json``,
    written by training."""
    workdir = check_workdir(workdir)
    path = workdir / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{path} not found: {workdir} is not a training run's directory (training writes "
            f"config.json there); give the --workdir you trained in, or train: "
            f"{_train_hint(workdir)}"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path} ({e}); it is the config training wrote.") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise UserError(f"{path} is not a run's config (no 'model' section).")
    return ml_collections.ConfigDict(data)


def saved_steps(workdir) -> list[int]:
    """The step directories under ``WORKDIR/checkpoints`` (names that are numbers)."""
    directory = pathlib.Path(workdir) / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


class Restored(NamedTuple):
    """A trained run ready to predict.

    Attributes:
      config: the run's config (its config.json).
      model: the restored model, eval mode.
      step: the restored checkpoint's step.
      body: its `smpl_jax.SMPL`.
      h36m_regressor: [17, V] the body's Human3.6M joint regressor.
      variables: the model's state (`nnx.split(model)[1]`).
      graphdef: the model's graph.
    """

    config: Any
    model: Any
    step: int
    body: Any
    h36m_regressor: Any
    variables: Any
    graphdef: Any

    def predict(self, images):
        """uint8 [B, S, S, 3] → `RegressorOutput` (every iteration; `.final` the last)."""
        return predict_fn(self.graphdef)(self.variables, images)

    def predictor(self):
        """`predict` as a plain function (what `eval_lib.EvalContext` takes)."""
        return functools.partial(predict_fn(self.graphdef), self.variables)


def _saved_structure(ckpt: checkpoint_lib.Checkpointer, step: int | None) -> dict:
    """The saved state's structure from `step`, or from the newest step whose metadata
    reads (a run's steps share it); {} if none does (restoring then reports why)."""
    for candidate in [step] if step is not None else ckpt.steps()[::-1]:
        try:
            return ckpt.saved_structure(candidate)
        except Exception:  # a damaged or missing step: restore() says so, with the fix
            continue
    return {}


def restore_model(config, workdir, step: int | None = None) -> tuple[nnx.Module, int]:
    """The model of a run's checkpoint (latest readable one, or `step`), in eval mode.

    For evaluation programs: `model(normalize_images(images))` → RegressorOutput. Needs
    neither the pose prior nor, for a run with SMPLify in the loop, its training data: the
    fit store's layout is read from the checkpoint.
    """
    from hkmr_jax import train_lib  # not at the top: train_lib imports predict_fn from here

    fitting = bool((config.get("fitting") or {}).get("enabled"))
    if fitting:  # without fitting, Trainer.create does not size the store from the data
        config = config.copy_and_resolve_references()
        config.fitting.enabled = False
    mesh = train_lib.make_mesh(jax.devices()[:1])
    trainer = train_lib.Trainer.create(config, mesh, with_prior=False)
    directory = pathlib.Path(workdir).expanduser().absolute() / "checkpoints"
    ckpt = checkpoint_lib.Checkpointer(directory)
    try:
        target = checkpoint_lib.abstract_like(trainer.init_state())
        if fitting and ckpt.latest_step() is not None:
            saved = _saved_structure(ckpt, step)
            replicated = NamedSharding(mesh, P())
            target["fits"] = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                saved.get("fits", {}),
            )
        restored = ckpt.restore(target, step)
    finally:
        ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {ckpt.directory}; train first.")
    step, state = restored
    model = nnx.merge(trainer.graphdef, state["params"], state["batch_stats"], state["rest"])
    model.eval()
    return model, step


def restore(workdir, config=None, step: int | None = None) -> Restored:
    """Restore a run's latest readable checkpoint (or `step`) with its own config.

    Args:
      workdir: the training run's directory.
      config: the config to build the model with (default: ``WORKDIR/config.json``); a
        caller that lets the user change evaluation fields passes the changed one.
      step: a saved step (default: the newest that restores).
    """
    workdir = check_workdir(workdir)
    config = load_run_config(workdir) if config is None else config
    steps = saved_steps(workdir)
    where = workdir / "checkpoints"
    if not steps:  # checked before building the model, which takes a while
        raise UserError(
            f"no checkpoint in {where}: the run in {workdir} has not saved one yet; train it "
            f"further (python train.py --workdir {workdir} ...) or give another --workdir."
        )
    if step is not None and int(step) not in steps:
        raise UserError(
            f"no checkpoint step {step} in {where}; saved steps: "
            f"{', '.join(map(str, steps))}. Give one of them to --step, or leave --step out "
            "for the newest."
        )
    # The checkpoint replaces the ImageNet initialisation: skip reading its file, which
    # an evaluation machine need not have. (`config.prior` stays: it shapes the state.)
    config = config.copy_and_resolve_references()
    if config.model.get("encoder_init"):
        config.model.encoder_init = None
    try:
        model, restored = restore_model(config, workdir, step)
    except checkpoint_lib.CheckpointError as e:
        lines = str(e).splitlines()
        first = (lines[1] if len(lines) > 1 else str(e))[:400]
        which = f"step {step}" if step is not None else "no saved step"
        raise UserError(
            f"{which} in {where} could be restored with the model that "
            f"{workdir / 'config.json'} describes (model {config.model.name!r}, encoder "
            f"{config.model.encoder.get('name')!r}): either the checkpoint files are damaged "
            "or config.json is not the one training wrote beside them. Nothing was changed; "
            f"first error: {first}"
        ) from None
    except (OSError, ValueError) as e:  # e.g. config.body_model is not on this machine
        raise UserError(f"cannot load the run in {workdir}: {e}") from None
    try:
        body, regressor = load_body(config)
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot load the run's body (config.body_model / config.h36m_regressor of "
            f"{workdir / 'config.json'}): {e}"
        ) from None
    graphdef, variables = nnx.split(model)
    return Restored(config, model, int(restored), body, regressor, variables, graphdef)

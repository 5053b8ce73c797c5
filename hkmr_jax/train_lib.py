"""Training: `train_and_evaluate(config, workdir)` — state, the data-parallel step,
checkpoints, logging and the evaluator hook.

The model is split once, functionally: `graphdef, params, batch_stats, rest =
nnx.split(model, nnx.Param, nnx.BatchStat, ...)`. The training state is a plain pytree
(dict) of arrays — `step`, `params`, `batch_stats` (BatchNorm running statistics),
`rest` (other model state: constants, dropout RNG counters), `opt_state` (optax) and
`bad_step` — that one jitted step maps to the next state. It is what checkpoints hold.

The step is data-parallel over every device: `jax.shard_map` over a 1-D mesh `('data',)`;
the global batch is sharded `P('data')` (placed before the call: the mesh's axes are
Explicit), the state is replicated `P()`. Each device computes the loss and gradients
of its shard; gradients, loss terms and BatchNorm running statistics are averaged with
`jax.lax.pmean`, so every replica applies the same update and stays identical. Within
the forward pass, BatchNorm normalises with per-device batch statistics unless the
encoder is built with `bn_axis_name='data'` (`config.model.encoder.bn_axis_name`), which
averages them over the mesh (synchronised BN: the step's result then does not depend on
the number of devices). Dropout keys (HMR) are folded with the device index, so devices
draw different masks.

A non-finite loss or gradient never reaches the parameters: the step keeps the previous
state and records the first such step on the device (`bad_step`); the host reads it at
the next log or checkpoint (no per-step host round-trip) and stops with
`NonFiniteLossError` naming the step; no checkpoint is written after it.

Evaluators (`config.evals`, a list of `{name, dataset='synthetic', split='test', ...}`)
run every `config.eval_every` steps (if > 0) and at the end. `name` is looked up in
`hkmr_jax.eval_lib.EVALUATORS`;
each is called as `evaluator(ctx, source, **other_fields)` with `ctx` holding `predict`
(uint8 images [B, S, S, 3] → `RegressorOutput`, eval mode), `body`, `h36m_regressor` and
`batch_size`, and returns a (nested) dict of numbers, logged as `eval/<label>/...`.

The workdir (`train_and_evaluate`): the config is checked first (`validate_config`),
then `WORKDIR/.lock` is taken (`WorkdirLock`), the saved `config.json` compared
(`check_workdir`; `extend` lets `num_steps` grow), the model built, and only then is
`config.json` written. Damaged newest steps are renamed aside and trained again.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import fcntl
import functools
import json
import math
import os
import shutil
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import smpl_jax
from hkmr_jax import checkpoint as checkpoint_lib
from hkmr_jax import eval_lib, losses, models, prior_train
from hkmr_jax.cli import UserError
from hkmr_jax.data import pipeline
from hkmr_jax.fitting import fit_store, smplify
from hkmr_jax.inference import normalize_images, predict_fn
from hkmr_jax.models import encoder as encoder_lib
from hkmr_jax.models import pose_prior
from hkmr_jax.models.params import RegressorOutput

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


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; training stopped."""


class WorkdirConfigError(ValueError):
    """The workdir holds a run of a different config."""


class ConfigError(ValueError):
    """A config value that cannot work (checked before anything is written)."""


class WorkdirLockedError(UserError):
    """Another trainer holds the workdir's lock."""


# ----------------------------------------------------------------------------- pieces


def load_body(config):
    """(SMPL body, Human3.6M regressor [17, V]) from `config.body_model` and
    `config.h36m_regressor` (paths; None: the built-in body and its regressor)."""
    from smpl_jax import synthetic

    body_path, regressor_path = config.get("body_model"), config.get("h36m_regressor")
    if not body_path:
        if regressor_path:
            raise ValueError(
                "config.h36m_regressor is set but config.body_model is not: the built-in "
                "body has its own regressor; set both (SMPL + SPIN's J_regressor_h36m.npy)."
            )
        return synthetic.load_builtin(), jnp.asarray(synthetic.h36m_regressor())
    body = smpl_jax.load(body_path)
    if not regressor_path:
        raise ValueError(
            f"config.body_model = {body_path!r} needs config.h36m_regressor: the [17, V] "
            "Human3.6M regressor of that body (SPIN's data/J_regressor_h36m.npy for SMPL)."
        )
    # A .npy (SPIN's file), or an .npz holding that one array; numbers only, no pickle.
    from smpl_jax import array_files

    source = f"config.h36m_regressor {regressor_path}"
    regressor = array_files.load_array(regressor_path, what="[17, V] H36M regressor")
    regressor = array_files.numeric(regressor, source).astype(np.float32)
    if regressor.shape != (17, body.num_vertices):
        raise ValueError(
            f"{regressor_path}: expected a [17, {body.num_vertices}] regressor, got "
            f"{list(regressor.shape)}."
        )
    return body, jnp.asarray(regressor)


def build_model(config) -> nnx.Module:
    """`models.create(config.model)` with seed `config.seed`, in training mode; ImageNet
    weights from `config.model.encoder_init` (a torchvision `.pth`) when given. A mean
    pose of `body_pose='synthetic'` is that of `config.data.synthetic_pose_spread`."""
    model_config = dict(config.model)
    mean = dict(model_config.get("mean_params") or {})
    if mean.get("body_pose") == "synthetic" and mean.get("pose_spread") is None:
        mean["pose_spread"] = config.data.get("synthetic_pose_spread")
        model_config["mean_params"] = mean
    model = models.create(model_config, nnx.Rngs(int(config.seed)))
    init = config.model.get("encoder_init")
    if init:
        from hkmr_jax.models.torchvision_import import load_torchvision_resnet

        load_torchvision_resnet(init, model.encoder)
    return model


def make_optimizer(config) -> tuple[optax.GradientTransformation, Callable]:
    """(optax transformation, learning-rate schedule) from `config.optimizer`.

    Fields: `name` ('adam' | 'adamw'), `learning_rate` (peak), `schedule` ('constant' |
    'cosine': to `final_lr_fraction`·peak at `schedule_steps`, that rate after),
    `schedule_steps` (None: `num_steps`; a run extended with `--extend` keeps its
    original length here), `warmup_steps` (linear from 0), `b1`, `b2`, `eps`,
    `weight_decay` (adamw), `clip_norm` (global-norm clipping; None: off).
    """
    opt = config.optimizer
    peak, warmup = float(opt.learning_rate), int(opt.get("warmup_steps", 0))
    kind = opt.get("schedule", "constant")
    if kind == "cosine":
        end = peak * float(opt.get("final_lr_fraction", 0.0))
        decay = max(int(opt.get("schedule_steps") or config.num_steps), warmup + 1)
        schedule = optax.warmup_cosine_decay_schedule(0.0, peak, warmup, decay, end)
    elif kind == "constant":
        schedule = optax.constant_schedule(peak)
        if warmup > 0:
            ramp = optax.linear_schedule(0.0, peak, warmup)
            schedule = optax.join_schedules([ramp, schedule], [warmup])
    else:
        raise ValueError(f"unknown optimizer.schedule {kind!r}; choose 'constant' or 'cosine'.")
    adam = dict(b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999), eps=opt.get("eps", 1e-8))
    name = opt.get("name", "adam")
    if name == "adam":
        tx = optax.adam(schedule, **adam)
    elif name == "adamw":
        tx = optax.adamw(schedule, weight_decay=float(opt.get("weight_decay", 0.0)), **adam)
    else:
        raise ValueError(f"unknown optimizer.name {name!r}; choose 'adam' or 'adamw'.")
    clip = opt.get("clip_norm")
    if clip:
        tx = optax.chain(optax.clip_by_global_norm(float(clip)), tx)
    return tx, schedule


#: Datasets with more examples than this get no stored fits (e.g. the synthetic train
#: stream): their fits are used in the step that makes them and not kept.
MAX_STORED_FITS = 4_000_000


def _fitter(config, body, regressor, prior) -> smplify.SMPLify:
    """The SMPLify fitter of `config.fitting`, for `Trainer`. Works with
    `config.data.augment`: the step moves stored fits to and from each batch's
    augmentation (`_fit_targets`)."""
    fitting = config.fitting
    settings = smplify.SMPLifyConfig(**dict(fitting.smplify))
    vae = prior if settings.pose_prior == "vae" else None
    if settings.pose_prior == "vae" and vae is None:
        raise ValueError(
            "config.fitting.smplify.pose_prior='vae' needs config.prior='vae' (the frozen "
            "VAE is SMPLify's pose prior); or set fitting.smplify.pose_prior to 'gmm' "
            "(with fitting.gmm_path) or 'none'."
        )
    return smplify.SMPLify.create(body, regressor, settings, vae=vae,
                                  gmm=fitting.get("gmm_path"))  # fmt: skip


def _initial_fits(config) -> dict:
    """The empty fit store (`fit_store.to_arrays` layout) of the training datasets."""
    sizes = {str(k): n for k, n in enumerate(pipeline.dataset_sizes(config))
             if n <= MAX_STORED_FITS}  # fmt: skip
    if not sizes:
        return {}
    num_betas = int(config.model.mean_params.get("num_betas", 10))
    return fit_store.to_arrays(fit_store.create(sizes, num_betas))


def discriminator_optimizer(config: Mapping) -> optax.GradientTransformation:
    """The discriminator's optimizer (`config['discriminator']`): HMR's Adam with learning
    rate 1e-3 and weight decay 1e-4 (HMR adds it to the loss as L2; here it is decoupled,
    optax.adamw), at a constant rate (the regressor's schedule does not apply)."""
    d = config.get("discriminator") or {}
    return optax.adamw(float(d.get("learning_rate", 1e-3)),
                       weight_decay=float(d.get("weight_decay", 1e-4)))  # fmt: skip


def load_pose_prior(config, workdir=None):
    """The frozen pose prior as (graphdef, state), or None for `config.prior` 'none' or
    'discriminator' (HMR's adversarial prior is trained in the step: `Trainer`).

    'vae': a `PoseVAE(**config.prior_vae)` whose parameters come from
    `config.prior_checkpoint` (a directory written by `prior_train.train_pose_prior`,
    `WORKDIR/params`). Without one, the VAE is trained first with
    `config.prior_training` (`configs/pose_prior.py`'s fields; the built-in pose
    distribution by default) into `workdir/pose_prior/` and reused from there on resume;
    without a workdir either, it is untrained, with a warning.
    """
    kind = config.get("prior", "none")
    if kind in (None, "none", "discriminator"):  # the discriminator trains with the model
        return None
    if kind != "vae":
        raise ValueError(f"unknown config.prior {kind!r}; choose 'vae', 'none' or 'discriminator'.")
    vae = pose_prior.PoseVAE(**dict(config.get("prior_vae", {})), rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(vae)
    state = nnx.to_pure_dict(state)
    path = config.get("prior_checkpoint")
    if not path and workdir is not None and config.get("prior_training") is not None:
        training = config.prior_training
        names = {n for d in config.data.datasets for n in d["name"].split("+")}
        if training.data.source == "synthetic" and not all(
            n.startswith("synthetic") for n in names
        ):
            raise ValueError(
                "config.prior='vae' without config.prior_checkpoint would train the prior on "
                "the built-in synthetic poses, but this run trains on real data "
                f"({sorted(names)}). Train one on AMASS (python train.py --config "
                "configs/pose_prior.py:amass ...) and set config.prior_checkpoint."
            )
        # The run's own architecture and pose law, passed one way into a copy (the run's
        # config stays as given).
        training = copy.deepcopy(training)
        with training.unlocked():
            training.prior_vae = dict(config.get("prior_vae", {}))
        if training.data.source == "synthetic" and training.data.get("pose_spread") is None:
            training.data.pose_spread = config.data.get("synthetic_pose_spread")
        directory = Path(workdir) / "pose_prior"
        if jax.process_index() == 0:
            prior_train.train_pose_prior(training, directory)
        if jax.process_count() > 1:  # the others wait for process 0's file
            multihost_utils.sync_global_devices("pose_prior")
        path = directory / "params"
    if path:
        try:
            state = checkpoint_lib.restore_tree(path, checkpoint_lib.abstract_like(state))
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"the pose prior at {path} does not match config.prior_vae "
                f"{dict(config.get('prior_vae', {}))}: {e}"
            ) from e
    else:
        warnings.warn(
            "config.prior='vae' without config.prior_checkpoint: using an UNTRAINED pose "
            "VAE as the prior. Train one (configs/pose_prior.py) and set "
            "config.prior_checkpoint.",
            stacklevel=2,
        )
    return graphdef, state


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D mesh `('data',)` over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), ("data",), devices=devices)


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


# ----------------------------------------------------------------------------- the step


@dataclasses.dataclass(frozen=True)
class _StepSpec:
    """The static parts of the step program (hashable: it keys `_STEP_CACHE`)."""

    graphdef: Any
    prior_graphdef: Any
    discriminator_graphdef: Any
    mesh: jax.sharding.Mesh
    config_json: str  # the step-relevant config fields

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)


def _per_device(spec: _StepSpec, tx, traces: list, state, batch, constants):
    """One step on one device's shard; collectives over 'data' make it global."""
    traces[0] += 1  # a Python side effect: runs once per trace (compilation)
    weights = losses.LossWeights(**(spec.config.get("loss_weights") or {}))
    device = jax.lax.axis_index("data")
    # Different dropout masks per device; the stored key itself never changes.
    rest = jax.tree.map(lambda x: jax.random.fold_in(x, device) if _is_key(x) else x,
                        state["rest"])  # fmt: skip
    prior_kl = None
    if constants["prior"] is not None:
        prior_kl = nnx.merge(spec.prior_graphdef, constants["prior"]).kl
    images = normalize_images(batch["image"])
    discriminator = spec.discriminator_graphdef is not None

    fitting = spec.config.get("fitting") or {}

    def loss_fn(params):
        model = nnx.merge(spec.graphdef, params, state["batch_stats"], rest)
        out = model(images)
        targets, fit_aux = batch, None
        if fitting.get("enabled"):  # SPIN: fits of this step's estimates supervise it
            targets, fit_aux = _fit_targets(constants["fitter"], state["fits"],
                                            jax.lax.stop_gradient(out).final, batch,
                                            float(fitting["threshold"]))  # fmt: skip
        loss, terms = losses.regressor_loss(
            out, targets, constants["body"], constants["h36m_regressor"], weights, prior_kl,
            axis_name="data",
        )  # fmt: skip
        if discriminator:  # HMR's adversarial prior: the regressor's term
            critic = nnx.merge(spec.discriminator_graphdef, state["discriminator"]["params"])
            terms["adversarial"] = losses.adversarial_loss(critic, out)
            loss = loss + weights.adversarial * terms["adversarial"]
        _, _, batch_stats, new_rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
        aux = (terms, nnx.to_pure_dict(batch_stats), nnx.to_pure_dict(new_rest), fit_aux)
        return loss, (aux, jax.lax.stop_gradient(out))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, ((terms, batch_stats, new_rest, fit_aux), out)), grads = grad_fn(state["params"])
    # Every shard has the same size and each loss term is a mean over its entries (the
    # terms over valid examples only divide by global counts), so the mean over devices
    # is the loss (and the gradient) of the global batch.
    loss, terms, grads, batch_stats = jax.lax.pmean((loss, terms, grads, batch_stats), "data")
    new_rest = jax.tree.map(lambda new, old: old if _is_key(old) else new,
                            new_rest, state["rest"])  # fmt: skip
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_state = {"params": params, "batch_stats": batch_stats, "rest": new_rest,
                 "opt_state": opt_state}  # fmt: skip
    checked = (loss, grads)
    if fit_aux is not None:
        new_state["fits"], fit_metrics = fit_aux  # the store is identical on every device
        terms = {**terms, **jax.lax.pmean(fit_metrics, "data")}
    if discriminator:  # ... and the discriminator's update, on the same batch
        d_state = state["discriminator"]

        def d_loss_fn(d_params):
            critic = nnx.merge(spec.discriminator_graphdef, d_params)
            return losses.discriminator_loss(critic, out, batch, axis_name="data")

        d_loss, d_grads = jax.value_and_grad(d_loss_fn)(d_state["params"])
        d_loss, d_grads = jax.lax.pmean((d_loss, d_grads), "data")
        d_tx = discriminator_optimizer(spec.config)
        d_updates, d_opt_state = d_tx.update(d_grads, d_state["opt_state"], d_state["params"])
        new_state["discriminator"] = {
            "params": optax.apply_updates(d_state["params"], d_updates),
            "opt_state": d_opt_state,
        }
        terms = {**terms, "discriminator": d_loss}
        checked = (loss, grads, d_loss, d_grads)
    finite = losses.is_finite(checked)

    def keep_if_finite(new, old):
        return jax.tree.map(lambda n, o: o if _is_key(o) else jnp.where(finite, n, o), new, old)

    step = state["step"]
    new_state = {k: keep_if_finite(v, state[k]) for k, v in new_state.items()}
    new_state["step"] = step + 1
    new_state["bad_step"] = jnp.where(finite | (state["bad_step"] >= 0), state["bad_step"], step)
    return new_state, {"loss": loss, **terms, "grad_norm": optax.tree.norm(grads)}


def _fit_targets(fitter, fits, final: RegressorOutput, batch, threshold: float):
    """SPIN's in-the-loop fitting for one device's batch (SPIN's trainer.py, ported).

    SMPLify starts from the regressor's final estimate (`final`, gradient stopped); the
    stored best fit of each example (`fits`, `fit_store.to_arrays` layout, replicated)
    is re-scored on this batch's keypoints with its own least-squares camera; the better
    of the two is kept in the store and, where its error is below `threshold`, is the
    pose/shape target (the ground truth where `has_smpl`).

    Frames (SPIN's `FitsDict`): the store holds poses in the examples' original frame,
    while this batch's keypoints, labels and new fits are in its augmented frame (the
    batch's `augment_rotation` / `augment_flip`; taken as 0 when absent). Stored poses
    are moved into the batch's frame (`fit_store.to_batch_frame`) before they are
    re-scored and used as targets, and new fits back (`fit_store.to_original_frame`)
    before they are stored.

    Returns:
      (batch with `pose`, `betas`, `has_smpl` replaced by the targets and their validity,
      (the updated store, metrics)).
    """
    ids, indices, keypoints = batch["dataset_id"], batch["example_id"], batch["keypoints"]
    no_augment = jnp.zeros(ids.shape, keypoints.dtype)
    rot = batch.get(pipeline.AUGMENT_ROTATION, no_augment)
    flip = batch.get(pipeline.AUGMENT_FLIP, no_augment)
    new = fitter.fit_from_regressor(final, keypoints)
    if fits:
        # Datasets without stored fits (streams) have no arrays (orbax cannot save empty
        # ones): give them empty blocks so that dataset ids stay positions.
        empty = fit_store.to_arrays(fit_store.create(
            {str(k): 0 for k in range(1 + max(map(int, fits)))}, new.betas.shape[-1]
        ))  # fmt: skip
        store = fit_store.from_arrays({**empty, **fits}, tuple(empty))
        old_pose, old_betas, _, fitted = fit_store.lookup(store, ids, indices)
        old_pose = fit_store.to_batch_frame(old_pose, rot, flip)
        old_error = fitter.refit_error(old_pose, old_betas, keypoints)
        old_error = jnp.where(fitted, old_error, jnp.inf)
        store = fit_store.update(store, ids, indices,
                                 fit_store.to_original_frame(new.pose, rot, flip), new.betas,
                                 new.reprojection_error, current_error=old_error,
                                 axis_name="data")  # fmt: skip
        fits = {k: v for k, v in fit_store.to_arrays(store).items() if k in fits}
    else:
        old_pose, old_betas = jnp.zeros_like(new.pose), jnp.zeros_like(new.betas)
        old_error = jnp.full_like(new.reprojection_error, jnp.inf)
    better = new.reprojection_error < old_error
    pose = jnp.where(better[:, None], new.pose, old_pose)
    betas = jnp.where(better[:, None], new.betas, old_betas)
    error = jnp.where(better, new.reprojection_error, old_error)
    pose, betas, valid = fit_store.select_targets(
        pose, betas, error, batch["pose"], batch["betas"], batch["has_smpl"], threshold
    )
    targets = dict(batch, pose=pose, betas=betas, has_smpl=valid.astype(batch["betas"].dtype))
    no_smpl = batch["has_smpl"] <= 0
    count = jnp.maximum(jnp.sum(no_smpl), 1)
    metrics = {
        # Over the examples without SMPL ground truth (the ones fits supervise).
        "fit/valid_fraction": jnp.sum(valid & no_smpl) / count,
        "fit/improved_fraction": jnp.sum(better & no_smpl) / count,
        "fit/pixel_error": jnp.mean(new.pixel_error),
    }
    return targets, (fits, metrics)


#: `_StepSpec` → (jitted step, its trace counter): every `Trainer` with the same spec in
#: this process shares one compiled step (tests, notebooks). The newest few are kept.
_STEP_CACHE: collections.OrderedDict[_StepSpec, tuple[Callable, list]] = collections.OrderedDict()
_STEP_CACHE_SIZE = 4

#: Config fields the step program depends on.
_STEP_FIELDS = ("model", "optimizer", "num_steps", "loss_weights", "prior", "prior_vae",
                "discriminator", "fitting")  # fmt: skip


def _compiled_step(spec: _StepSpec, tx) -> tuple[Callable, list]:
    if spec in _STEP_CACHE:
        _STEP_CACHE.move_to_end(spec)
        return _STEP_CACHE[spec]
    traces = [0]
    sharded = jax.shard_map(
        functools.partial(_per_device, spec, tx, traces),
        mesh=spec.mesh,
        in_specs=(P(), P("data"), P()),
        out_specs=(P(), P()),
        # pmap semantics: per-device gradients, averaged explicitly with pmean. (With vma
        # checks, JAX would psum the gradients of replicated inputs itself, and the
        # models' scans, whose zero carries are unvarying, would need pcast.)
        check_vma=False,
    )
    _STEP_CACHE[spec] = (jax.jit(sharded, donate_argnums=0), traces)
    while len(_STEP_CACHE) > _STEP_CACHE_SIZE:
        _STEP_CACHE.popitem(last=False)
    return _STEP_CACHE[spec]


@dataclasses.dataclass
class Trainer:
    """Everything a run needs besides its data: the model's graph, the optimizer, the
    jitted step, and the replicated constants it takes.

    Build with `Trainer.create(config, mesh)`; `init_state()` gives the initial state,
    `step(state, batch)` runs one training step, `traces[0]` counts its compilations.
    """

    config: Any
    mesh: jax.sharding.Mesh
    graphdef: Any
    tx: optax.GradientTransformation
    schedule: Callable
    constants: dict  # body, h36m_regressor, prior state: replicated step inputs
    initial: dict  # the initial state (host arrays)
    prior_graphdef: Any = None
    discriminator_graphdef: Any = None  # config.prior = 'discriminator'

    @classmethod
    def create(cls, config, mesh: jax.sharding.Mesh | None = None, *, workdir=None,
               with_prior: bool = True) -> Trainer:  # fmt: skip
        """`workdir`: where a pose prior without `prior_checkpoint` is trained (see
        `load_pose_prior`); `with_prior=False` skips the prior (evaluation only)."""
        mesh = make_mesh() if mesh is None else mesh
        if int(config.batch_size) % mesh.size:
            raise ValueError(
                f"batch_size {config.batch_size} is not divisible by the {mesh.size} devices."
            )
        body, regressor = load_body(config)  # first: reading files fails faster than models
        model = build_model(config)
        graphdef, params, batch_stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
        params = nnx.to_pure_dict(params)
        tx, schedule = make_optimizer(config)
        prior = load_pose_prior(config, workdir) if with_prior else None
        constants = {"body": body, "h36m_regressor": regressor,
                     "prior": None if prior is None else prior[1]}  # fmt: skip
        initial = {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "batch_stats": nnx.to_pure_dict(batch_stats),
            "rest": nnx.to_pure_dict(rest),
            "opt_state": tx.init(params),
            "bad_step": jnp.full((), -1, jnp.int32),  # first non-finite step, -1: none
        }
        fitting = config.get("fitting") or {}
        if fitting.get("enabled"):
            initial["fits"] = _initial_fits(config)
            if with_prior:  # (not for evaluation, which needs only the state's layout)
                constants["fitter"] = _fitter(config, body, regressor, prior)
        discriminator_graphdef = None
        if config.get("prior") == "discriminator":
            critic = pose_prior.PoseDiscriminator(rngs=nnx.Rngs(int(config.seed) + 1))
            discriminator_graphdef, d_params = nnx.split(critic)
            d_params = nnx.to_pure_dict(d_params)
            d_opt_state = discriminator_optimizer(_config_dict(config)).init(d_params)
            initial["discriminator"] = {"params": d_params, "opt_state": d_opt_state}
        trainer = cls(config, mesh, graphdef, tx, schedule, constants, initial,
                      None if prior is None else prior[0], discriminator_graphdef)  # fmt: skip
        trainer.constants = trainer.replicate(constants)
        return trainer

    # Placement -------------------------------------------------------------------------

    def replicate(self, tree):
        return jax.device_put(tree, NamedSharding(self.mesh, P()))

    def init_state(self):
        """A fresh copy of the initial training state, replicated over the mesh."""
        # Explicit copies: the step donates its state, and device_put may alias a
        # device array (even with may_alias=False, for a replicated multi-device target).
        fresh = jax.tree.map(lambda x: jnp.array(x, copy=True), self.initial)
        return self.replicate(fresh)

    def global_batch(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's slice of the global batch → global arrays sharded `P('data')`."""
        sharding = NamedSharding(self.mesh, P("data"))
        return {
            k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local_batch.items()
        }

    # The step --------------------------------------------------------------------------

    @functools.cached_property
    def _spec(self) -> _StepSpec:
        config = _config_dict(self.config)
        relevant = json.dumps({k: config.get(k) for k in _STEP_FIELDS}, sort_keys=True)
        return _StepSpec(self.graphdef, self.prior_graphdef, self.discriminator_graphdef,
                         self.mesh, relevant)  # fmt: skip

    @property
    def traces(self) -> list:
        """[number of times the step was traced (≈ compiled) in this process]."""
        return _compiled_step(self._spec, self.tx)[1]

    def step(self, state, batch):
        """One training step: (state, global batch) → (state, metrics); the state is
        donated. Jitted and shared by every trainer of the same model, mesh and step
        config in this process, so running several trainings in one process (tests,
        notebooks) compiles it once."""
        jitted, _ = _compiled_step(self._spec, self.tx)
        return jitted(state, batch, self.constants)

    # Evaluation ------------------------------------------------------------------------

    def predictor(self, state) -> Callable:
        """uint8 images [B, S, S, 3] → RegressorOutput with the model in eval mode
        (BatchNorm running statistics, no dropout); jitted, on the default device."""
        host = jax.device_get({k: state[k] for k in ("params", "batch_stats", "rest")})
        model = nnx.merge(self.graphdef, host["params"], host["batch_stats"], host["rest"])
        model.eval()
        graphdef, variables = nnx.split(model)
        # The program eval.py and the demo run too (`hkmr_jax.inference`): the same numbers.
        return functools.partial(predict_fn(graphdef), variables)


# ----------------------------------------------------------------------------- evaluators


def evaluators() -> dict[str, Callable]:
    """Evaluator name → function (`hkmr_jax.eval_lib.EVALUATORS`)."""
    return dict(eval_lib.EVALUATORS)


def check_evals(config) -> None:
    """Fail early (before training) on unknown evaluator names."""
    known = evaluators()
    for spec in config.get("evals", None) or ():
        if spec.get("name") not in known:
            raise ValueError(
                f"unknown evaluator {spec.get('name')!r} in config.evals; valid: "
                f"{', '.join(sorted(known))}."
            )


def run_evals(trainer: Trainer, state, sources: dict) -> dict[str, float]:
    """Every `config.evals` entry on the current state → flat {'eval/<label>/<key>': x}."""
    config = trainer.config
    specs = list(config.get("evals", None) or ())
    if not specs:
        return {}
    known = evaluators()
    batch_size = int(config.get("eval_batch_size", 32))
    body = jax.device_get(trainer.constants["body"])
    regressor = jax.device_get(trainer.constants["h36m_regressor"])
    ctx = eval_lib.EvalContext(trainer.predictor(state), body, regressor, batch_size)
    results = {}
    for spec in specs:
        spec = dict(spec)
        name = spec.pop("name")
        dataset, split = spec.pop("dataset", "synthetic"), spec.pop("split", "test")
        label = spec.pop("label", f"{dataset}_{split}_{name}")
        if (dataset, split) not in sources:
            sources[dataset, split] = pipeline.make_source(dataset, split, config.data)
        result = known[name](ctx, sources[dataset, split], **spec)
        results.update(_flatten(result, f"eval/{label}"))
    return results


def _flatten(tree, prefix) -> dict[str, float]:
    out = {}
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
    elif isinstance(tree, int | float | np.number) and not isinstance(tree, bool):
        out[prefix] = float(tree)
    return out


# ----------------------------------------------------------------------------- the config

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


# ----------------------------------------------------------------------------- the workdir


def _config_dict(config) -> dict:
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
    new = _config_dict(config)
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
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_config_dict(config), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def prepare_workdir(config, workdir: Path, overwrite: bool, extend: bool = False):
    """`check_workdir` (skipped with `overwrite`), then `write_config`; the config to run."""
    workdir = Path(workdir)
    if not overwrite:
        config = check_workdir(config, workdir, extend=extend)
    write_config(config, workdir, overwrite)
    return config


# ----------------------------------------------------------------------------- signals


class _StopRequest:
    """SIGTERM / SIGINT set a flag that the loop checks between steps (a second SIGINT
    interrupts at once). Handlers are installed only in the main thread."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------------------- the loop


def _writer(workdir: Path, start_step: int):
    if jax.process_index() != 0:
        return None
    from tensorboardX import SummaryWriter

    # purge_step drops events a previous, interrupted run wrote after its last checkpoint.
    return SummaryWriter(str(workdir / "tb"), purge_step=start_step or None)


def _progress(config, start, total):
    import tqdm

    disable = not config.get("progress_bar", True) or jax.process_index() != 0
    return tqdm.tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=disable)


def train_and_evaluate(config, workdir, *, overwrite: bool = False, extend: bool = False,
                       stop_after: int | None = None) -> dict[str, float]:  # fmt: skip
    """Train `config` in `workdir`, resuming from its latest checkpoint; then evaluate.

    Nothing is written before the config and its paths are checked (`validate_config`)
    and the model is built: a failed start leaves no `config.json` (and no workdir, if
    it did not exist). One trainer at a time holds `WORKDIR/.lock` (`WorkdirLock`). A
    newest step that fails to restore is renamed `<step>.damaged-<time>` and trained
    again (`Checkpointer.restore(set_aside=True)`).

    Args:
      config: an ml_collections.ConfigDict (see `configs/hkmr.py`).
      workdir: output directory: `config.json`, `checkpoints/<step>/`, `tb/` (TensorBoard).
      overwrite: start afresh even if `workdir` holds a run of another config (its
        checkpoints and logs are deleted).
      extend: allow a larger `num_steps` than the run's (nothing else may differ): it
        continues from its last checkpoint; the learning-rate schedule keeps its
        original length and the extra steps run at its final rate (`check_workdir`).
      stop_after: stop (checkpointed, without the final evaluation) once this many steps
        are done in total, as a preempted job would; the run resumes later unchanged.

    Returns:
      Final metrics: `step`, `train/<term>` (the last logged values), `eval/...`,
      `seconds`, `train/step_traces` (compilations of the step; 1 unless shapes change),
      and `interrupted` (1.0 when stopped by a signal or `stop_after`).

    Raises:
      ConfigError: a config value or path that cannot work.
      WorkdirConfigError: `workdir` holds a run of another config.
      WorkdirLockedError: another trainer is using `workdir`.
      NonFiniteLossError: the loss or a gradient was not finite at some step.
    """
    if config.get("multihost", False):
        with contextlib.suppress(RuntimeError):  # already initialised
            jax.distributed.initialize()
    workdir = Path(workdir).expanduser().absolute()
    validate_config(config)
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file, not a directory.")
    created = not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    with WorkdirLock(workdir) as lock:
        try:
            if not overwrite:
                config = check_workdir(config, workdir, extend=extend)
            trainer = Trainer.create(config, workdir=workdir)
        except BaseException:
            if created and jax.process_index() == 0:  # leave no trace of a failed start
                lock.path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # not empty: something else wrote
                    workdir.rmdir()
            raise
        write_config(config, workdir, overwrite)
        return _run(trainer, config, workdir, stop_after)


def _run(trainer, config, workdir, stop_after):
    num_steps = int(config.num_steps)
    checkpoint_every = int(config.checkpoint_every)
    ckpt = checkpoint_lib.Checkpointer(workdir / "checkpoints",
                                       keep=config.get("keep_checkpoints", None))  # fmt: skip
    try:
        state = trainer.init_state()
        restored = ckpt.restore(checkpoint_lib.abstract_like(state), set_aside=True)
        start = 0
        if restored is not None:
            start, state = restored
            if start > num_steps:
                raise ConfigError(
                    f"config.num_steps={num_steps} is below the run's checkpoint step {start} "
                    f"({ckpt.directory}); give num_steps ≥ {start}."
                )
            if jax.process_index() == 0:
                print(f"resuming from step {start} ({ckpt.directory})", flush=True)
        return _train_loop(trainer, state, start, num_steps, checkpoint_every, ckpt, workdir,
                           stop_after)  # fmt: skip
    finally:
        ckpt.close()


def _train_loop(trainer, state, start, num_steps, checkpoint_every, ckpt, workdir, stop_after):
    config = trainer.config
    log_every = max(int(config.get("log_every", 50)), 1)
    eval_every = int(config.get("eval_every", 0))
    global_batch = int(config.batch_size)
    end = num_steps if stop_after is None else min(num_steps, int(stop_after))
    eval_sources: dict = {}
    last: dict[str, float] = {}
    pending: list[dict] = []  # device metrics since the last log: no host sync per step
    saved = start if ckpt.latest_step() == start else None
    t_run = time.perf_counter()
    t_log, timed_steps = None, 0  # images/s excludes the first step (compilation)
    step = start
    data = pipeline.train_iterator(config, start) if start < end else iter(())
    writer = _writer(workdir, start)
    bar = _progress(config, start, num_steps)

    def check_finite():
        bad = int(jax.device_get(state["bad_step"]))
        if bad >= 0:
            raise NonFiniteLossError(
                f"non-finite loss or gradients at step {bad} (0-based; its update was "
                f"skipped); training stopped at step {step}. The last good checkpoint is "
                f"step {ckpt.latest_step()} in {ckpt.directory}. Lower "
                "optimizer.learning_rate, set optimizer.clip_norm, or check that step's data."
            )

    def save():
        nonlocal saved
        if saved != step:
            check_finite()  # never checkpoint a state that saw a non-finite step
            ckpt.save(step, state)
            saved = step

    def emit(scalars):
        if writer is not None:
            for k, v in scalars.items():
                writer.add_scalar(k, v, step)
            writer.flush()

    try:
        with _StopRequest() as stop:
            while step < end and stop.signal is None:
                batch = trainer.global_batch(next(data))
                state, step_metrics = trainer.step(state, batch)
                pending.append(step_metrics)
                step += 1
                bar.update(1)
                if t_log is None:
                    t_log = time.perf_counter()  # the first call returns once compiled
                else:
                    timed_steps += 1
                if step % log_every == 0 or step == end:
                    check_finite()
                    fetched = jax.device_get(pending)
                    now = time.perf_counter()
                    last = {
                        f"train/{k}": float(np.mean([m[k] for m in fetched])) for k in fetched[0]
                    }
                    last["train/learning_rate"] = float(trainer.schedule(step - 1))
                    if timed_steps:
                        last["train/images_per_sec"] = timed_steps * global_batch / (now - t_log)
                    emit(last)
                    bar.set_postfix(loss=f"{last['train/loss']:.4g}")
                    pending, t_log, timed_steps = [], now, 0
                if step % checkpoint_every == 0 or step == num_steps:
                    save()
                if eval_every > 0 and step % eval_every == 0 and step < num_steps:
                    emit(run_evals(trainer, state, eval_sources))
            interrupted = step < num_steps
            if interrupted and step > start:
                save()  # a signal or stop_after: keep what was done
        ckpt.wait()
        bar.close()
        results = {"step": float(step), **last}
        if not interrupted:
            evals = run_evals(trainer, state, eval_sources)
            emit(evals)
            results.update(evals)
    finally:
        bar.close()
        if hasattr(data, "close"):
            data.close()  # stops grain's reader threads
        if writer is not None:
            writer.close()
    results["seconds"] = time.perf_counter() - t_run
    results["train/step_traces"] = float(trainer.traces[0])
    results["interrupted"] = float(interrupted)
    _summary(results, start, stop.signal, workdir)
    return results


def _summary(results, start, signum, workdir):
    if jax.process_index() != 0:
        return
    lines = [f"steps {start} → {int(results['step'])} in {results['seconds']:.1f} s ({workdir})"]
    if signum is not None:
        lines.append(f"stopped by {signal.Signals(signum).name}; checkpoint saved, resume with "
                     "the same command")  # fmt: skip
    elif results["interrupted"]:
        lines.append("stopped early (stop_after); checkpoint saved")
    terms = [f"{k[6:]} {v:.4g}" for k, v in results.items()
             if k.startswith("train/") and k != "train/step_traces"]  # fmt: skip
    if terms:
        lines.append("final: " + ", ".join(terms))
    evals = [f"{k[5:]} {v:.2f}" for k, v in results.items() if k.startswith("eval/")]
    if evals:
        lines.append("eval: " + ", ".join(evals))
    print("\n".join(lines), flush=True)


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
    fitting = bool((config.get("fitting") or {}).get("enabled"))
    if fitting:  # without fitting, Trainer.create does not size the store from the data
        config = config.copy_and_resolve_references()
        config.fitting.enabled = False
    mesh = make_mesh(jax.devices()[:1])
    trainer = Trainer.create(config, mesh, with_prior=False)
    ckpt = checkpoint_lib.Checkpointer(Path(workdir).expanduser().absolute() / "checkpoints")
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


__all__ = [
    "BOOKKEEPING_KEYS",
    "NonFiniteLossError",
    "Trainer",
    "WorkdirConfigError",
    "build_model",
    "evaluators",
    "load_body",
    "load_pose_prior",
    "make_mesh",
    "make_optimizer",
    "normalize_images",
    "restore_model",
    "run_evals",
    "train_and_evaluate",
]

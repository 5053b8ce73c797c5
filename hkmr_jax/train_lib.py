"""Training: `train_and_evaluate(config, workdir)`, top to bottom: the model
(`build_model`), the optimizer and its learning-rate schedule (`make_optimizer`), the
data-parallel step (`_per_device`, one `jax.shard_map` over the mesh `('data',)`), the
state and its placement (`Trainer`), then the loop (checkpoints, logs, evaluators).

The state is a plain pytree (dict) that one jitted step maps to the next; how it is
sharded, how a non-finite step is caught and what the workdir holds: docs/training.md.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tensorboardX import SummaryWriter

from hkmr_jax import checkpoint as checkpoint_lib
from hkmr_jax import losses, models
from hkmr_jax import workdir as workdir_lib
from hkmr_jax.bodies import load_body
from hkmr_jax.config_checks import ConfigError, validate_config
from hkmr_jax.data import pipeline
from hkmr_jax.fitting import targets as fit_targets_lib
from hkmr_jax.inference import normalize_images, predict_fn
from hkmr_jax.models import pose_prior
from hkmr_jax.models.torchvision_import import load_torchvision_resnet
from hkmr_jax.prior_train import load_pose_prior
from hkmr_jax.signals import StopRequest
from hkmr_jax.train_evals import run_evals


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; training stopped."""


# ----------------------------------------------------------------------------- the pieces


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


def discriminator_optimizer(config: Mapping) -> optax.GradientTransformation:
    """The discriminator's optimizer (`config['discriminator']`): HMR's Adam with learning
    rate 1e-3 and weight decay 1e-4 (HMR adds it to the loss as L2; here it is decoupled,
    optax.adamw), at a constant rate (the regressor's schedule does not apply)."""
    d = config.get("discriminator") or {}
    return optax.adamw(float(d.get("learning_rate", 1e-3)),
                       weight_decay=float(d.get("weight_decay", 1e-4)))  # fmt: skip


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
            targets, fit_aux = fit_targets_lib.fit_targets(
                constants["fitter"],
                state["fits"],
                jax.lax.stop_gradient(out).final,
                batch,
                float(fitting["threshold"]),
            )
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
        new_state["discriminator"], d_loss, d_grads = _discriminator_update(
            spec, state["discriminator"], out, batch
        )
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


def _discriminator_update(spec: _StepSpec, d_state, out, batch):
    """HMR's discriminator step on this batch, with its own optimizer
    (`discriminator_optimizer`): (new {params, opt_state}, loss, gradients), averaged
    over 'data'."""

    def d_loss_fn(d_params):
        critic = nnx.merge(spec.discriminator_graphdef, d_params)
        return losses.discriminator_loss(critic, out, batch, axis_name="data")

    d_loss, d_grads = jax.value_and_grad(d_loss_fn)(d_state["params"])
    d_loss, d_grads = jax.lax.pmean((d_loss, d_grads), "data")
    d_tx = discriminator_optimizer(spec.config)
    d_updates, d_opt_state = d_tx.update(d_grads, d_state["opt_state"], d_state["params"])
    new = {"params": optax.apply_updates(d_state["params"], d_updates), "opt_state": d_opt_state}
    return new, d_loss, d_grads


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
            initial["fits"] = fit_targets_lib.initial_fits(config)
            if with_prior:  # (not for evaluation, which needs only the state's layout)
                constants["fitter"] = fit_targets_lib.make_fitter(config, body, regressor, prior)
        discriminator_graphdef = None
        if config.get("prior") == "discriminator":
            critic = pose_prior.PoseDiscriminator(rngs=nnx.Rngs(int(config.seed) + 1))
            discriminator_graphdef, d_params = nnx.split(critic)
            d_params = nnx.to_pure_dict(d_params)
            d_opt_state = discriminator_optimizer(workdir_lib.config_dict(config)).init(d_params)
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
        config = workdir_lib.config_dict(self.config)
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


# ----------------------------------------------------------------------------- the loop


def _writer(workdir: Path, start_step: int):
    if jax.process_index() != 0:
        return None
    # purge_step drops events a previous, interrupted run wrote after its last checkpoint
    # (this run logs from start_step + 1 on; the values at start_step stay).
    return SummaryWriter(str(workdir / "tb"), purge_step=start_step + 1 if start_step else None)


def _progress(config, start, total):
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
    with workdir_lib.WorkdirLock(workdir) as lock:
        try:
            if not overwrite:
                config = workdir_lib.check_workdir(config, workdir, extend=extend)
            trainer = Trainer.create(config, workdir=workdir)
        except BaseException:
            if created and jax.process_index() == 0:  # leave no trace of a failed start
                lock.path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # not empty: something else wrote
                    workdir.rmdir()
            raise
        workdir_lib.write_config(config, workdir, overwrite)
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
        with StopRequest() as stop:
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


__all__ = [
    "NonFiniteLossError",
    "Trainer",
    "build_model",
    "discriminator_optimizer",
    "make_mesh",
    "make_optimizer",
    "train_and_evaluate",
]

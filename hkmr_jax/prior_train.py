"""Training the pose VAE (paper §3.2 "Pose Prior") that HKMR's L_KL uses, frozen.

    python train.py --config configs/pose_prior.py --workdir runs/pose_vae

`train_pose_prior` draws poses from the built-in law or reads AMASS, trains
`PoseVAE.elbo_loss` with Adam and writes `WORKDIR/params` (what HKMR's
`config.prior_checkpoint` points to). `load_pose_prior` gives a run its frozen VAE:
restored from `config.prior_checkpoint`, or trained here first into
`WORKDIR/pose_prior/`. Data, outputs and the loop: docs/pose_prior.md.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils

from hkmr_jax import checkpoint as checkpoint_lib
from hkmr_jax.data import synthetic
from hkmr_jax.models import pose_prior
from smpl_jax import atomic_files

SOURCES = ("synthetic", "amass")


def config_problems(config) -> list[str]:
    """What is wrong with a pose-prior config, one 'config.FIELD=...: fix' line each."""
    problems = []
    for name in ("batch_size", "num_steps", "log_every", "num_validation"):
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"config.{name}={value!r}: must be a positive integer.")
    for name in ("learning_rate", "kl_weight"):
        value = config.get(name)
        if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
            problems.append(f"config.{name}={value!r}: must be a number ≥ 0.")
    source = config.data.get("source")
    if source not in SOURCES:
        problems.append(f"config.data.source: unknown data.source {source!r}; choose one of "
                        f"{SOURCES}.")  # fmt: skip
    elif source == "amass" and not config.data.get("amass_glob"):
        problems.append("config.data.amass_glob is not set: data.source='amass' needs it, "
                        "e.g. --config.data.amass_glob='~/amass/**/*_poses.npz'.")  # fmt: skip
    stride = config.data.get("stride")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        problems.append(f"config.data.stride={stride!r}: must be a positive integer.")
    holdout = config.data.get("holdout")
    if not isinstance(holdout, int | float) or not 0 <= holdout < 1:
        problems.append(f"config.data.holdout={holdout!r}: must be in [0, 1).")
    return problems


class _Poses:
    """Training batches and a validation set of [N, 69] body poses."""

    def __init__(self, config):
        source = config.data.source
        if source not in SOURCES:
            raise ValueError(f"unknown data.source {source!r}; choose one of {SOURCES}.")
        self.rng = np.random.default_rng([int(config.seed), 1])
        self.batch_size = int(config.batch_size)
        if source == "synthetic":
            self.train = None
            self.pose_spread = config.data.get("pose_spread")  # None: the dataset's default
            self.validation = synthetic.sample_body_poses(
                np.random.default_rng([int(config.seed), 2]),
                int(config.num_validation),
                self.pose_spread,
            )
            return
        pattern = config.data.amass_glob
        if not pattern:
            raise ValueError(
                "data.source='amass' needs data.amass_glob, e.g. "
                "--config.data.amass_glob='~/amass/**/*_poses.npz'."
            )
        files = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not files:
            raise FileNotFoundError(f"no AMASS files match data.amass_glob={pattern!r}.")
        held = max(1, round(len(files) * float(config.data.holdout))) if len(files) > 1 else 0
        stride = int(config.data.stride)
        self.train = pose_prior.load_amass_poses(files[: len(files) - held], stride)
        self.validation = (
            pose_prior.load_amass_poses(files[len(files) - held :], stride)
            if held
            else self.train[: int(config.num_validation)]
        )

    def chunk(self, steps: int) -> np.ndarray:
        """[steps, batch, 69] training poses for `steps` consecutive steps."""
        if self.train is None:
            poses = synthetic.sample_body_poses(self.rng, steps * self.batch_size, self.pose_spread)
        else:
            poses = self.train[self.rng.integers(0, len(self.train), steps * self.batch_size)]
        return poses.reshape(steps, self.batch_size, -1)


def _validation_metrics(vae: pose_prior.PoseVAE, poses: np.ndarray) -> dict[str, float]:
    """Mean reconstruction geodesic (from μ, no sampling) and KL on `poses`."""
    mu, logvar = vae.encode(jnp.asarray(poses))
    matrices = vae.decode_matrices(mu)
    target = pose_prior.rotation.axis_angle_to_matrix(
        jnp.asarray(poses).reshape(len(poses), pose_prior.NUM_BODY_JOINTS, 3)
    )
    angle = jnp.degrees(pose_prior.geodesic_angle(matrices, target))
    return {
        "validation/geodesic_deg": float(jnp.mean(angle)),
        "validation/kl": float(jnp.mean(pose_prior.kl_divergence(mu, logvar))),
    }


def train_pose_prior(config, workdir) -> dict[str, float]:
    """Train the VAE of `config` (`configs/pose_prior.py`) and write it to `workdir/params`.

    An existing `workdir/params` is kept and nothing is trained (delete it to retrain).

    Returns:
      The final metrics (`train/...` of the last chunk, `validation/...`, `seconds`).
    """
    problems = config_problems(config)
    if problems:
        raise ValueError("\n  ".join(["the pose-prior config cannot run:", *problems]))
    workdir = Path(workdir).expanduser().absolute()
    target = workdir / "params"
    if target.exists():
        print(f"pose prior already trained: {target} (delete it to retrain)", flush=True)
        metrics = workdir / "metrics.json"
        return json.loads(metrics.read_text()) if metrics.exists() else {}
    t0 = time.perf_counter()
    data = _Poses(config)  # reads the AMASS files: fails before anything is written
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_files.write_text(workdir / "config.json",
                            config.to_json_best_effort(indent=2, sort_keys=True))  # fmt: skip
    vae = pose_prior.PoseVAE(**dict(config.prior_vae), rngs=nnx.Rngs(int(config.seed)))
    graphdef, params, rest = nnx.split(vae, nnx.Param, ...)
    tx = optax.adam(float(config.learning_rate))
    opt_state = tx.init(params)
    kl_weight = float(config.kl_weight)

    @jax.jit
    def run_chunk(params, opt_state, key, poses):
        def step(carry, batch):
            params, opt_state, key = carry
            key, sub = jax.random.split(key)

            def loss_fn(p):
                return nnx.merge(graphdef, p, rest).elbo_loss(batch, sub, kl_weight, train=True)

            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, key), metrics

        (params, opt_state, key), metrics = jax.lax.scan(step, (params, opt_state, key), poses)
        return params, opt_state, key, jax.tree.map(jnp.mean, metrics)

    key = jax.random.key(int(config.seed))
    num_steps, log_every = int(config.num_steps), max(int(config.log_every), 1)
    results: dict[str, float] = {}
    done = 0
    while done < num_steps:
        n = min(log_every, num_steps - done)
        params, opt_state, key, metrics = run_chunk(params, opt_state, key, data.chunk(n))
        done += n
        results = {f"train/{k}": float(v) for k, v in metrics.items()}
        if not all(np.isfinite(list(results.values()))):
            raise FloatingPointError(
                f"pose VAE training diverged by step {done}: {results}. Lower learning_rate."
            )
        print(f"pose prior step {done}/{num_steps}: loss {results['train/loss']:.4f}, "
              f"geodesic {results['train/geodesic_deg']:.2f}°", flush=True)  # fmt: skip
    vae = nnx.merge(graphdef, params, rest)
    results.update(_validation_metrics(vae, data.validation))
    results["seconds"] = time.perf_counter() - t0
    metrics = json.dumps(results, indent=2, sort_keys=True) + "\n"
    atomic_files.write_text(workdir / "metrics.json", metrics)  # before params: its marker
    with atomic_files.writing_folder(target) as tmp:
        checkpoint_lib.save_tree(tmp, nnx.to_pure_dict(nnx.state(vae)))
    print(f"pose prior written to {target}: validation geodesic "
          f"{results['validation/geodesic_deg']:.2f}°", flush=True)  # fmt: skip
    return results


def load_pose_prior(config, workdir=None):
    """The frozen pose prior as (graphdef, state), or None for `config.prior` 'none' or
    'discriminator' (HMR's adversarial prior is trained in the step: `train_lib.Trainer`).

    'vae': a `PoseVAE(**config.prior_vae)` whose parameters come from
    `config.prior_checkpoint` (a directory written by `train_pose_prior`,
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
            train_pose_prior(training, directory)
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


__all__ = ["SOURCES", "config_problems", "load_pose_prior", "train_pose_prior"]

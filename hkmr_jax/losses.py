"""The training objective of HKMR (paper Eq. 3), summed over the T outer iterations.

L = Σ_t λ_smpl L_smpl^t + λ_3D L_3D^t + λ_2D L_2D^t + λ_KL L_KL^t (`regressor_loss`),
each term a mean over its entries as in SPIN; and HMR's least-squares adversarial terms
(`adversarial_loss`, `discriminator_loss`, `generator_loss`,
`lsgan_discriminator_loss`). What each term compares and over which examples:
docs/hkmr.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from hkmr_jax import geometry
from hkmr_jax.models.params import RegressorOutput
from smpl_jax import rotation


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """λs of Eq. 3. Defaults from SPIN (pose 1, betas 0.001, keypoints 5) where the paper
    is silent; `kl` is ours (the paper gives no value)."""

    smpl_pose: float = 1.0
    smpl_betas: float = 0.001
    joints_3d: float = 5.0
    keypoints: float = 5.0
    kl: float = 0.01
    # HMR weighs its adversarial loss 1 against 60 on the 2D keypoints: 5/60 here.
    adversarial: float = 5.0 / 60.0


def _weighted_mean(error, weight):
    """Mean over all entries of error · weight (SPIN's normalisation)."""
    return jnp.mean(error * weight)


def _mean_over_valid(error, weight, valid, axis_name=None):
    """Mean of error · weight over the entries of the examples with `valid` = 1 only, as
    SPIN's L_smpl and L_3D (which select those examples first) and the discriminator's
    real term; 0 without any.

    error, weight: [T, B, ...] or [B, ...]; valid: [B] of 0/1. Written as the mean over
    all entries times (examples / valid examples), a factor of exactly 1 when every
    example is valid.
    Inside a `shard_map` over `axis_name` both counts are global, so the mean over
    devices of the shards' values is the global batch's value however unevenly the
    valid examples fall on the shards.
    """
    size, count = jnp.asarray(valid.size, valid.dtype), jnp.sum(valid)
    if axis_name is not None:
        size, count = jax.lax.psum((size, count), axis_name)
    return _weighted_mean(error, weight) * (size / jnp.maximum(count, 1))


def regressor_loss(
    out: RegressorOutput, batch, body, h36m_regressor, weights: LossWeights,
    prior_kl: Callable | None = None, axis_name: str | None = None,
):  # fmt: skip
    """Eq. 3 for a batch.

    Args:
      out: the regressor's output, T iterations × B examples.
      batch: dict with the contract's keys (docs/CONTRACT_data.md): keypoints [B,24,3],
        joints_3d [B,24,4], pose [B,72], betas [B,10], has_smpl [B], has_3d [B].
      body: a `smpl_jax.SMPL`.
      h36m_regressor: [17, V].
      weights: `LossWeights`.
      prior_kl: pose [N, 69] → [N] KL of the frozen VAE encoder, or None.
      axis_name: the data-parallel axis when called per shard inside `shard_map`: the
        counts of valid examples that L_smpl and L_3D divide by are then global.

    Returns:
      (loss scalar, metrics: dict of per-term scalars summed over T).
    """
    t, b = out.betas.shape[:2]
    flat = lambda x: x.reshape(t * b, *x.shape[2:])
    smpl = body(betas=flat(out.betas), body_pose=flat(out.rotmat)[:, 1:],
                global_orient=flat(out.rotmat)[:, :1], pose2rot=False)  # fmt: skip
    joints, mask = geometry.j24_joints(smpl.vertices, h36m_regressor)
    joints = joints.reshape(t, b, *joints.shape[1:])  # [T, B, 24, 3]

    has_smpl = batch["has_smpl"].astype(out.betas.dtype)
    gt_rotmat = body_rotmat(batch["pose"])
    pose_err = jnp.square(out.rotmat - gt_rotmat[None])  # [T, B, 24, 3, 3]
    l_pose = _mean_over_valid(pose_err, has_smpl[None, :, None, None, None], has_smpl,
                              axis_name) * t  # fmt: skip
    betas_err = jnp.square(out.betas - batch["betas"][None])
    l_betas = _mean_over_valid(betas_err, has_smpl[None, :, None], has_smpl, axis_name) * t

    has_3d = batch["has_3d"].astype(out.betas.dtype)
    conf3d = batch["joints_3d"][..., 3] * has_3d[:, None] * mask  # [B, 24]
    gt3d = geometry.root_centred(batch["joints_3d"][..., :3])
    err3d = jnp.abs(geometry.root_centred(joints) - gt3d[None])
    l_3d = _mean_over_valid(err3d, conf3d[None, :, :, None], has_3d, axis_name) * t

    keypoints = geometry.weak_perspective(joints, out.camera)  # [T, B, 24, 2]
    conf2d = batch["keypoints"][..., 2] * mask
    err2d = jnp.abs(keypoints - batch["keypoints"][None, ..., :2])
    l_2d = _weighted_mean(err2d, conf2d[None, :, :, None]) * t

    terms = {"smpl_pose": l_pose, "smpl_betas": l_betas, "joints_3d": l_3d, "keypoints": l_2d}
    if prior_kl is not None:
        terms["kl"] = jnp.mean(prior_kl(flat(out.pose)[:, 1:].reshape(t * b, 69))) * t
    loss = sum(getattr(weights, name) * value for name, value in terms.items())
    return loss, terms


def generator_loss(fake_scores):
    """HMR's least-squares adversarial loss for the regressor (Mao et al. 2017):
    mean_B Σ_k (D_k(fake) − 1)², unweighted.

    Args:
      fake_scores: [B, K] discriminator outputs for the regressor's predictions.

    Returns:
      [] scalar.
    """
    return jnp.mean(jnp.sum((fake_scores - 1.0) ** 2, axis=-1))


def lsgan_discriminator_loss(real_scores, fake_scores, real_valid=None, axis_name=None):
    """HMR's least-squares discriminator loss (Mao et al. 2017), unweighted:
    mean_real Σ_k (D_k(real) − 1)² + mean_B Σ_k D_k(fake)², each batch averaged separately
    (they may differ in size).

    Args:
      real_scores: [B_real, K] outputs for real samples; fake_scores: [B_fake, K] outputs
        for predictions (stop their gradient into the regressor).
      real_valid: optional [B_real] 0/1: the real term averages over these rows only
        (global counts inside a `shard_map` over `axis_name`, see `_mean_over_valid`).

    Returns:
      [] scalar.
    """
    real_err = jnp.sum((real_scores - 1.0) ** 2, -1)
    if real_valid is None:
        real_term = jnp.mean(real_err)
    else:
        real_term = _mean_over_valid(real_err, real_valid, real_valid, axis_name)
    return real_term + jnp.mean(jnp.sum(fake_scores**2, -1))


def adversarial_loss(critic, out: RegressorOutput):
    """HMR's least-squares adversarial term for the regressor, summed over the T outer
    iterations (like every term of Eq. 3): the discriminator `critic`
    (`pose_prior.PoseDiscriminator`, held fixed) scores every iteration's body pose and
    shape."""
    t, b = out.betas.shape[:2]
    scores = critic(out.rotmat[:, :, 1:].reshape(t * b, 23, 3, 3), out.betas.reshape(t * b, -1))
    return generator_loss(scores) * t


def discriminator_loss(critic, out: RegressorOutput, batch, axis_name: str | None = None):
    """The discriminator's least-squares loss (`lsgan_discriminator_loss`): ground-truth
    SMPL parameters of the batch (where `has_smpl`; HMR uses a separate mocap set) are
    real, every iteration's prediction (`out`, gradient stopped) is fake.

    The real term is a mean over the `has_smpl` examples of the whole batch. Inside a
    `shard_map` over `axis_name`, a shard's share is normalised by the global count, so
    that the mean over devices (`pmean`, as the step does) is that global mean, however
    unevenly the `has_smpl` examples fall on the shards; `axis_name=None`: one shard.
    """
    t, b = out.betas.shape[:2]
    fake = critic(out.rotmat[:, :, 1:].reshape(t * b, 23, 3, 3), out.betas.reshape(t * b, -1))
    real = critic(body_rotmat(batch["pose"])[:, 1:], batch["betas"])
    has_smpl = batch["has_smpl"].astype(real.dtype)
    return lsgan_discriminator_loss(real, fake, has_smpl, axis_name)


def body_rotmat(pose):
    """[B, 72] axis-angle → [B, 24, 3, 3]."""
    return rotation.axis_angle_to_matrix(pose.reshape(*pose.shape[:-1], 24, 3))


def is_finite(tree) -> jax.Array:
    """A scalar bool: every leaf of `tree` is finite (checked on device, no host sync)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)

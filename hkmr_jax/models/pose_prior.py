"""Pose priors for HKMR (paper §3.2 "Pose Prior", Table 2): a VAE and HMR's discriminator.

Both see the 69-D SMPL body pose (23 joints × axis-angle, global orientation excluded).
`PoseVAE` (after VPoser v1) gives ``kl(pose)`` [B], HKMR's L_KL, with the prior frozen;
`PoseDiscriminator` scores [B, 23, 3, 3] rotations and β as HMR does ([B, 25]; its
least-squares losses are in `hkmr_jax.losses`). `load_amass_poses` reads AMASS ``*.npz``
into [N, 69] training poses. Architecture, decisions and how to keep the prior frozen:
docs/pose_prior.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from smpl_jax import array_files, rotation

__all__ = [
    "LOGVAR_BOUND",
    "NUM_BODY_JOINTS",
    "POSE_DIM",
    "PoseDiscriminator",
    "PoseVAE",
    "geodesic_angle",
    "kl_divergence",
    "load_amass_poses",
]

#: SMPL body joints without the root (pelvis): joints 1…23.
NUM_BODY_JOINTS = 23
#: Size of the body pose Θ: 23 joints × axis-angle.
POSE_DIM = 3 * NUM_BODY_JOINTS
#: log σ² is squashed into [−LOGVAR_BOUND, LOGVAR_BOUND]: σ² ∈ [4.5e-5, 2.2e4].
LOGVAR_BOUND = 10.0

# The identity's 6D vector (first two matrix columns), the decoder's starting output.
_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
# VPoser's LeakyReLU slope.
_LEAKY_SLOPE = 0.2


def _check_last_dim(x, size: int, name: str, what: str):
    """Raise a ValueError naming ``name`` unless ``x`` is ``[B, size]``."""
    if x.ndim != 2 or x.shape[-1] != size:
        raise ValueError(
            f"{name} must have shape [B, {size}] ({what}); got shape {tuple(x.shape)}. "
            f"Add a batch axis or reshape, e.g. x.reshape(-1, {size})."
        )


def kl_divergence(mu, logvar):
    """KL(N(μ, diag σ²) ‖ N(0, I)) in closed form, summed over the latent axis.

    KL = ½ Σ_k (μ_k² + σ_k² − 1 − log σ_k²). ``expm1(log σ²) − log σ²`` replaces
    ``σ² − 1 − log σ²`` so that the value stays accurate (and exactly 0) near σ = 1.

    Args:
      mu: [..., Z] means.
      logvar: [..., Z] log variances, log σ².

    Returns:
      [...] non-negative KL divergences (nats).
    """
    return 0.5 * jnp.sum(mu * mu + jnp.expm1(logvar) - logvar, axis=-1)


def geodesic_angle(r1, r2):
    """Angle (radians) of R1ᵀR2, [..., 3, 3] × 2 → [...]; for metrics only (not smooth at 0)."""
    cos = 0.5 * (jnp.sum(r1 * r2, axis=(-2, -1)) - 1.0)  # tr(R1ᵀR2) = Σ_ij R1_ij R2_ij
    return jnp.arccos(jnp.clip(cos, -1.0, 1.0))


class PoseVAE(nnx.Module):
    """VAE over the 69-D SMPL body pose (VPoser-style); see docs/pose_prior.md.

    Args:
      latent_dim: Z, the latent size (32 in VPoser and here).
      hidden_dim: width of the two hidden layers of the encoder and of the decoder (512).
      dropout_rate: dropout after the first hidden layer of the encoder and of the
        decoder, applied only when a dropout key is given (``train=True``). 0 disables it.
      param_dtype: dtype of the parameters.
      rngs: parameter initialisation keys.

    With the defaults the model has 681,674 parameters: encoder 331,328 (its μ and
    log σ² heads 16,416 each), decoder 350,346.
    """

    def __init__(
        self,
        *,
        latent_dim: int = 32,
        hidden_dim: int = 512,
        dropout_rate: float = 0.0,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1); got {dropout_rate}.")
        self.latent_dim = latent_dim
        self.hidden_dim = hidden_dim
        dense = lambda i, o, **kw: nnx.Linear(i, o, param_dtype=param_dtype, rngs=rngs, **kw)
        self.enc_fc1 = dense(POSE_DIM, hidden_dim)
        self.enc_fc2 = dense(hidden_dim, hidden_dim)
        self.enc_mu = dense(hidden_dim, latent_dim)
        self.enc_logvar = dense(hidden_dim, latent_dim)
        self.dec_fc1 = dense(latent_dim, hidden_dim)
        self.dec_fc2 = dense(hidden_dim, hidden_dim)
        # Start at the rest pose: small weights around the identity's 6D vector.
        identity_6d = jnp.tile(jnp.asarray(_IDENTITY_6D, param_dtype), NUM_BODY_JOINTS)
        self.dec_out = dense(
            hidden_dim,
            6 * NUM_BODY_JOINTS,
            kernel_init=nnx.initializers.variance_scaling(0.01, "fan_avg", "uniform"),
            bias_init=lambda key, shape, dtype: identity_6d.astype(dtype),
        )
        # rngs=None: masks come only from keys passed at call time.
        self.enc_dropout = nnx.Dropout(dropout_rate, rngs=None)
        self.dec_dropout = nnx.Dropout(dropout_rate, rngs=None)

    def encode(self, pose, dropout_key=None):
        """q(z | Θ): the encoder's Gaussian.

        Args:
          pose: [B, 69] body poses (axis-angle, radians).
          dropout_key: a PRNG key for dropout, or None (no dropout).

        Returns:
          (mu [B, Z], logvar [B, Z]): mean and log variance, log σ² ∈ [−10, 10].
        """
        pose = jnp.asarray(pose)
        _check_last_dim(pose, POSE_DIM, "pose", "23 body joints × axis-angle, no root")
        h = nnx.leaky_relu(self.enc_fc1(pose), _LEAKY_SLOPE)
        h = self.enc_dropout(h, deterministic=dropout_key is None, rngs=dropout_key)
        h = nnx.leaky_relu(self.enc_fc2(h), _LEAKY_SLOPE)
        logvar = LOGVAR_BOUND * jnp.tanh(self.enc_logvar(h) / LOGVAR_BOUND)
        return self.enc_mu(h), logvar

    def decode_matrices(self, z, dropout_key=None):
        """Decode latents to rotation matrices, [B, Z] → [B, 23, 3, 3] (exact rotations)."""
        z = jnp.asarray(z)
        _check_last_dim(z, self.latent_dim, "z", "latent codes")
        h = nnx.leaky_relu(self.dec_fc1(z), _LEAKY_SLOPE)
        h = self.dec_dropout(h, deterministic=dropout_key is None, rngs=dropout_key)
        h = nnx.leaky_relu(self.dec_fc2(h), _LEAKY_SLOPE)
        rot6d = self.dec_out(h).reshape(z.shape[0], NUM_BODY_JOINTS, 6)
        return rotation.rotation_6d_to_matrix(rot6d)

    def decode(self, z, dropout_key=None):
        """Decode latents to body poses.

        Args:
          z: [B, Z] latent codes.
          dropout_key: a PRNG key for dropout, or None (no dropout).

        Returns:
          [B, 69] axis-angle body poses, every joint's angle in [0, π].
        """
        matrices = self.decode_matrices(z, dropout_key)
        return rotation.matrix_to_axis_angle(matrices).reshape(z.shape[0], POSE_DIM)

    @staticmethod
    def reparameterize(mu, logvar, key):
        """z = μ + σ·ε, ε ~ N(0, I) drawn from ``key``: [B, Z] × 2 → [B, Z]."""
        eps = jax.random.normal(key, mu.shape, mu.dtype)
        return mu + jnp.exp(0.5 * logvar) * eps

    def _forward(self, pose, key, train: bool):
        """Shared by `__call__` and `elbo_loss`: (matrices [B,23,3,3], mu, logvar)."""
        if train:
            key, enc_key, dec_key = jax.random.split(key, 3)
        else:
            enc_key = dec_key = None
        mu, logvar = self.encode(pose, enc_key)
        z = self.reparameterize(mu, logvar, key)
        return self.decode_matrices(z, dec_key), mu, logvar

    def __call__(self, pose, key, *, train: bool = False):
        """Encode, sample z with the reparameterisation trick, decode.

        Args:
          pose: [B, 69] body poses (axis-angle, radians).
          key: PRNG key for ε (and, with ``train=True``, for the dropout masks). The
            result is a deterministic function of ``pose``, the parameters and ``key``.
          train: apply dropout (only matters when ``dropout_rate > 0``).

        Returns:
          (recon [B, 69] axis-angle, mu [B, Z], logvar [B, Z]).
        """
        matrices, mu, logvar = self._forward(pose, key, train)
        recon = rotation.matrix_to_axis_angle(matrices).reshape(pose.shape[0], POSE_DIM)
        return recon, mu, logvar

    def elbo_loss(self, pose, key, kl_weight=1.0, *, train: bool = False):
        """Negative ELBO (β-weighted), the VAE's training objective.

        loss = mean_B [Σ_joints ‖R̂ − R‖²_F + kl_weight · KL(q(z|Θ) ‖ N(0, I))], with R the
        rotation matrices of ``pose`` and R̂ those decoded from one reparameterised sample.

        Args:
          pose: [B, 69] body poses (axis-angle, radians).
          key: PRNG key (ε and dropout masks).
          kl_weight: weight of the KL term (a float or a traced scalar, for annealing).
          train: apply dropout (only matters when ``dropout_rate > 0``).

        Returns:
          (loss [], metrics): ``metrics`` maps ``loss``, ``reconstruction`` (mean Σ_joints
          ‖R̂ − R‖²_F), ``kl`` (mean KL, nats) and ``geodesic_deg`` (mean angle between R̂
          and R over joints and batch, degrees) to scalars.
        """
        matrices, mu, logvar = self._forward(pose, key, train)
        target = rotation.axis_angle_to_matrix(pose.reshape(pose.shape[0], NUM_BODY_JOINTS, 3))
        reconstruction = jnp.mean(jnp.sum((matrices - target) ** 2, axis=(-3, -2, -1)))
        kl = jnp.mean(kl_divergence(mu, logvar))
        loss = reconstruction + kl_weight * kl
        geodesic = geodesic_angle(jax.lax.stop_gradient(matrices), target)
        metrics = {
            "loss": loss,
            "reconstruction": reconstruction,
            "kl": kl,
            "geodesic_deg": jnp.degrees(jnp.mean(geodesic)),
        }
        return loss, metrics

    def kl(self, pose, *, frozen: bool = True):
        """Per-sample KL(q(z|Θ) ‖ N(0, I)): HKMR's L_KL (Eq. 3) for predicted poses.

        Args:
          pose: [B, 69] body poses (axis-angle, radians), e.g. the regressor's Θ̂ᵗ.
          frozen: evaluate the encoder on ``jax.lax.stop_gradient`` of the parameters:
            gradients flow to ``pose`` only. Keep the prior out of the optimizer's ``wrt``
            filter as well (docs/pose_prior.md).

        Returns:
          [B] KL divergences (nats), no dropout.
        """
        module = self
        if frozen:
            # A detached copy: the same parameter values, cut off from differentiation.
            graphdef, params, rest = nnx.split(self, nnx.Param, ...)
            module = nnx.merge(graphdef, jax.lax.stop_gradient(params), rest)
        return kl_divergence(*module.encode(pose))


class PoseDiscriminator(nnx.Module):
    """HMR's factorised adversarial prior over body pose and shape; see docs/pose_prior.md.

    Args:
      num_betas: size of β (10).
      joint_features: width of the shared per-joint embedding (32).
      pose_hidden: width of the whole-pose head's hidden layers (1024).
      param_dtype: dtype of the parameters.
      rngs: parameter initialisation keys.

    With the defaults the model has 1,807,619 parameters: shared per-joint embedding 1,376,
    23 joint heads 759, whole-pose head 1,805,313, shape head 171.
    """

    def __init__(
        self,
        *,
        num_betas: int = 10,
        joint_features: int = 32,
        pose_hidden: int = 1024,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.num_betas = num_betas
        dense = lambda i, o: nnx.Linear(i, o, param_dtype=param_dtype, rngs=rngs)
        # 1x1 convolutions over the 23 × 1 "image" of joints are dense layers per joint.
        self.joint_fc1 = dense(9, joint_features)
        self.joint_fc2 = dense(joint_features, joint_features)
        # 23 independent linear heads, stored stacked so that one einsum applies them all.
        # Each head's kernel row is initialised as a Linear(joint_features, 1) would be.
        init = nnx.initializers.lecun_normal(in_axis=-1, out_axis=-2)
        self.joint_head_kernel = nnx.Param(
            init(rngs.params(), (NUM_BODY_JOINTS, joint_features), param_dtype)
        )
        self.joint_head_bias = nnx.Param(jnp.zeros((NUM_BODY_JOINTS,), param_dtype))
        self.pose_fc1 = dense(NUM_BODY_JOINTS * joint_features, pose_hidden)
        self.pose_fc2 = dense(pose_hidden, pose_hidden)
        self.pose_out = dense(pose_hidden, 1)
        self.shape_fc1 = dense(num_betas, 10)
        self.shape_fc2 = dense(10, 5)
        self.shape_out = dense(5, 1)

    def __call__(self, rotmats, betas):
        """Score poses and shapes (high = real under the least-squares objective).

        Args:
          rotmats: [B, 23, 3, 3] (or [B, 23, 9], row-major) body-joint rotation matrices,
            global orientation excluded; e.g. ``smpl_jax.rotation.axis_angle_to_matrix(
            body_pose.reshape(B, 23, 3))``.
          betas: [B, num_betas] shape coefficients.

        Returns:
          [B, 25] scores: columns 0-22 the joints (SMPL joints 1-23), 23 the whole pose,
          24 the shape.
        """
        rotmats, betas = jnp.asarray(rotmats), jnp.asarray(betas)
        if rotmats.shape[1:] not in ((NUM_BODY_JOINTS, 3, 3), (NUM_BODY_JOINTS, 9)):
            raise ValueError(
                "rotmats must have shape [B, 23, 3, 3] or [B, 23, 9] (body-joint rotation "
                f"matrices without the root); got {tuple(rotmats.shape)}."
            )
        _check_last_dim(betas, self.num_betas, "betas", "SMPL shape coefficients")
        if betas.shape[0] != rotmats.shape[0]:
            raise ValueError(
                f"rotmats and betas disagree on the batch size: {rotmats.shape[0]} vs "
                f"{betas.shape[0]}."
            )
        batch = rotmats.shape[0]
        x = rotmats.reshape(batch, NUM_BODY_JOINTS, 9)
        x = nnx.relu(self.joint_fc1(x))
        x = nnx.relu(self.joint_fc2(x))  # [B, 23, F]
        joint_scores = jnp.einsum("bjf,jf->bj", x, self.joint_head_kernel[...])
        joint_scores = joint_scores + self.joint_head_bias[...]
        h = nnx.relu(self.pose_fc1(x.reshape(batch, -1)))
        h = nnx.relu(self.pose_fc2(h))
        pose_score = self.pose_out(h)
        s = nnx.relu(self.shape_fc1(betas))
        s = nnx.relu(self.shape_fc2(s))
        shape_score = self.shape_out(s)
        return jnp.concatenate([joint_scores, pose_score, shape_score], axis=-1)


# Widths of AMASS `poses` rows whose first 66 values are SMPL joints 0-21.
_AMASS_WIDTHS = {156: "SMPL-H (52 joints)", 165: "SMPL-X (55 joints)"}


def load_amass_poses(
    paths: Sequence[str | os.PathLike], stride: int = 1, dtype=np.float32
) -> np.ndarray:
    """Read AMASS sequences into body poses for the VAE.

    Each file's ``poses`` (N, 156) holds SMPL-H axis-angle (SMPL-X releases, (N, 165), are
    accepted too): its first 66 values are SMPL's joints 0-21. The root (first 3 values)
    is dropped and SMPL's hand joints 22 and 23, which have no AMASS counterpart, are
    set to zero: row = [poses[3:66], 0, 0, 0, 0, 0, 0].

    Args:
      paths: ``*.npz`` files (one sequence each).
      stride: keep every ``stride``-th frame of each sequence (AMASS is captured at
        60-250 fps; neighbouring frames are near duplicates).
      dtype: output dtype.

    Returns:
      [N, 69] body poses (axis-angle, radians), the sequences concatenated in order.

    Raises:
      FileNotFoundError: a path does not exist.
      KeyError: a file has no ``poses`` array.
      ValueError: bad ``stride`` / empty ``paths``, a ``poses`` array of another shape,
        or non-finite values.
    """
    if isinstance(paths, str | os.PathLike):
        raise TypeError(f"paths must be a list of files, not a single path: [{paths!r}].")
    if not paths:
        raise ValueError("paths is empty: pass at least one AMASS *.npz file.")
    if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride < 1:
        raise ValueError(f"stride must be a positive integer; got {stride!r}.")
    chunks = []
    for path in paths:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"AMASS file not found: {path!r}. Check the path (AMASS ships one *.npz "
                "per sequence, e.g. CMU/01/01_01_poses.npz)."
            )
        # Never unpickle from a downloaded file; headers checked before reading.
        data = array_files.load_npz(path)
        if "poses" not in data:
            raise KeyError(
                f"{path!r} has no 'poses' array (keys: {sorted(data)}); expected "
                "an AMASS sequence file with 'poses' (N, 156)."
            )
        poses = array_files.numeric(data["poses"], f"{path!r} 'poses'", finite=False)
        if poses.ndim != 2 or poses.shape[1] not in _AMASS_WIDTHS:
            raise ValueError(
                f"{path!r}: 'poses' has shape {poses.shape}; expected (N, 156) SMPL-H "
                "(or (N, 165) SMPL-X) axis-angle as in AMASS."
            )
        poses = poses[::stride, 3:66]
        if not np.all(np.isfinite(poses)):
            raise ValueError(f"{path!r}: 'poses' contains NaN or infinite values.")
        chunks.append(poses.astype(dtype, copy=False))
    body = np.concatenate(chunks, axis=0)
    hands = np.zeros((body.shape[0], 6), dtype)  # SMPL joints 22, 23
    return np.concatenate([body, hands], axis=1)

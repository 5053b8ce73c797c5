"""SPIN's SMPLify in JAX: fit SMPL pose, shape and camera translation to 2D keypoints.

A batched, `jit`-compiled port of SPIN's in-the-loop optimiser (Kolotouros et al. 2019)::

    fitter = SMPLify.create(body, h36m_regressor, vae=prior)   # once, outside jit
    result = fitter(keypoints, init_pose, init_betas, init_cam_t)   # jitted, batched
    result = fitter.fit_from_regressor(out.final, keypoints)   # from HKMR/HMR's output

Keypoints: [B, 24, 3] J24, x, y in [-1, 1], confidence. Two Adam stages (camera, then
body) in `lax.scan`; camera, units, priors and the error are in docs/smplify.md.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import smpl_jax
from hkmr_jax import geometry
from hkmr_jax.fitting import gmm as gmm_lib
from hkmr_jax.models.pose_prior import PoseVAE
from smpl_jax import rotation, skeleton

__all__ = [
    "ANGLE_PRIOR_INDICES",
    "ANGLE_PRIOR_SIGNS",
    "CAMERA_JOINTS",
    "IGNORED_JOINTS",
    "SMPLify",
    "SMPLifyConfig",
    "SMPLifyResult",
    "angle_prior",
    "body_fitting_loss",
    "gmof",
]

_J24 = {name: i for i, name in enumerate(skeleton.J24_NAMES)}
#: J24 slots of step 1 (SPIN's camera fit: hips and shoulders).
CAMERA_JOINTS: tuple[int, ...] = tuple(
    _J24[n] for n in ("right_hip", "left_hip", "right_shoulder", "left_shoulder")
)
#: J24 slots SPIN leaves out of step 2 and of the fit's error (its 'Right Hip', 'Left Hip').
IGNORED_JOINTS: tuple[int, ...] = (_J24["right_hip"], _J24["left_hip"])
#: Entries of the 69-D body pose the angle prior sees: left elbow y, right elbow y, left
#: knee x, right knee x (SPIN's indices 55, 58, 12, 15 of the 72-D pose, minus 3).
ANGLE_PRIOR_INDICES: tuple[int, ...] = (52, 55, 9, 12)
#: Signs that make the unnatural bending direction of each positive (SPIN's).
ANGLE_PRIOR_SIGNS: tuple[float, ...] = (1.0, -1.0, -1.0, -1.0)

_POSE_PRIORS = ("vae", "gmm", "none")


@dataclasses.dataclass(frozen=True)
class SMPLifyConfig:
    """Settings of the fit. Defaults are SPIN's except `vae_prior_weight` (ours).

    Every ``*_weight`` is squared before it multiplies its term, as in SPIN's losses.

    Attributes:
      num_iters: Adam steps of each of the two stages (SPIN: 100).
      step_size: Adam's learning rate (SPIN: 1e-2; β = (0.9, 0.999), ε = 1e-8).
      focal_length: pixels of the virtual crop (SPIN: 5000).
      img_res: side of the virtual crop in pixels (SPIN: 224): the units of the
        reprojection terms, `sigma` and the fit threshold.
      sigma: Geman–McClure scale in pixels (SPIN: 100).
      pose_prior: 'vae' (the frozen `PoseVAE`, default), 'gmm' (SMPLify's mixture) or
        'none'.
      pose_prior_weight: GMM prior weight (SPIN: 4.78).
      vae_prior_weight: VAE prior weight. Ours: 4.78, SPIN's GMM weight, since both terms
        are in nats (the GMM's −log density, the VAE encoder's KL); not tuned.
      shape_prior_weight: weight of ‖β‖² (SPIN: 5).
      angle_prior_weight: weight of the elbow/knee prior (SPIN: 15.2).
      depth_loss_weight: weight of (t_z − t_z⁰)² in step 1 (SPIN: 100).
    """

    num_iters: int = 100
    step_size: float = 1e-2
    focal_length: float = 5000.0
    img_res: int = 224
    sigma: float = 100.0
    pose_prior: str = "vae"
    pose_prior_weight: float = 4.78
    vae_prior_weight: float = 4.78
    shape_prior_weight: float = 5.0
    angle_prior_weight: float = 15.2
    depth_loss_weight: float = 100.0

    def __post_init__(self):
        if self.pose_prior not in _POSE_PRIORS:
            raise ValueError(
                f"SMPLifyConfig.pose_prior={self.pose_prior!r}; choose one of {_POSE_PRIORS}."
            )
        if isinstance(self.num_iters, bool) or not isinstance(self.num_iters, int):
            raise ValueError(f"SMPLifyConfig.num_iters must be an int, got {self.num_iters!r}.")
        if self.num_iters < 0:
            raise ValueError(f"SMPLifyConfig.num_iters must be ≥ 0, got {self.num_iters}.")
        for name in ("step_size", "focal_length", "img_res", "sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SMPLifyConfig.{name} must be > 0, got {getattr(self, name)}.")


# --------------------------------------------------------------------------------------
# Robust error and priors


def gmof(x, sigma):
    """Geman–McClure ρ(x) = σ²x² / (σ² + x²), elementwise (SPIN's ``gmof``)."""
    x_sq = x * x
    sigma_sq = sigma * sigma
    return sigma_sq * x_sq / (sigma_sq + x_sq)


def angle_prior(body_pose):
    """SPIN's angle prior: exp(±θ)² for the elbows (y) and knees (x), bending the wrong way.

    Args:
      body_pose: [B, 69] axis-angle of SMPL joints 1…23.

    Returns:
      [B, 4] (left elbow, right elbow, left knee, right knee); sum it for the loss.
    """
    idx = np.asarray(ANGLE_PRIOR_INDICES)
    signs = jnp.asarray(ANGLE_PRIOR_SIGNS, body_pose.dtype)
    return jnp.exp(body_pose[:, idx] * signs) ** 2


# --------------------------------------------------------------------------------------
# The fit


class SMPLifyResult(NamedTuple):
    """What a fit returns, batch axis first.

    Attributes:
      pose: [B, 72] axis-angle, global orientation first (the data contract's ``pose``).
      rotmat: [B, 24, 3, 3] the same rotations (`RegressorOutput.rotmat`'s convention).
      betas: [B, NB].
      camera_translation: [B, 3] metres.
      reprojection_error: [B] SPIN's per-example fitting error: mean over the 24 J24 slots
        of c² · Σ_xy ρ_σ(residual) (pixels² of the virtual crop, hips excluded); +inf
        where the fit is not finite.
      joint_errors: [B, 24] the per-slot terms of that mean.
      pixel_error: [B] mean distance in pixels between the projected and the given
        keypoints over the slots with confidence > 0 and a model joint (hips included);
        0 where there is none.
    """

    pose: jax.Array
    rotmat: jax.Array
    betas: jax.Array
    camera_translation: jax.Array
    reprojection_error: jax.Array
    joint_errors: jax.Array
    pixel_error: jax.Array


def _subset_body(body: smpl_jax.SMPL, regressor):
    """Keep only the vertices the regressor reads (exact: joints come from
    `joint_template`/`joint_shapedirs`, and a vertex's skinning needs only its own rows)."""
    leaves = [*jax.tree.leaves(body), regressor]
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return body, regressor  # traced: the index set is not known; use everything
    keep = np.flatnonzero(np.any(np.asarray(regressor) != 0, axis=0))
    if keep.size == body.num_vertices:
        return body, regressor
    nv = body.num_vertices

    def planar(a):  # [K, 3·V] → [K, 3·V']
        a = np.asarray(a)
        return jnp.asarray(a.reshape(a.shape[0], 3, nv)[:, :, keep].reshape(a.shape[0], -1))

    sub = smpl_jax.SMPL(
        v_template=jnp.asarray(np.asarray(body.v_template)[keep]),
        shapedirs=planar(body.shapedirs),
        posedirs=planar(body.posedirs),
        J_regressor=jnp.asarray(np.asarray(body.J_regressor)[:, keep]),
        weights=jnp.asarray(np.asarray(body.weights)[keep]),
        faces=jnp.zeros((0, 3), jnp.int32),
        joint_template=body.joint_template,
        joint_shapedirs=body.joint_shapedirs,
        parents=body.parents,
    )
    return sub, jnp.asarray(np.asarray(regressor)[:, keep])


def _as_pose72(pose, name: str):
    pose = jnp.asarray(pose)
    if pose.ndim == 3 and pose.shape[1:] == (24, 3):
        pose = pose.reshape(pose.shape[0], 72)
    if pose.ndim != 2 or pose.shape[1] != 72:
        raise ValueError(
            f"{name} must be SMPL axis-angle [B, 72] or [B, 24, 3] (global orientation "
            f"first), got shape {tuple(pose.shape)}."
        )
    return pose


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SMPLify:
    """A prepared fitter: a pytree (arrays are leaves, settings static), so it can be
    passed into a jitted training step as data. Build it with `SMPLify.create`.

    Attributes:
      body: the SMPL body, restricted to the vertices the regressor reads.
      regressor: [17, V'] its Human3.6M regressor on those vertices.
      regressor_rowsum: [24] J24 slots of the regressor's row sums (0 in empty slots).
      joint_mask: [24] 1 where a J24 slot has a model joint.
      vae_state: the frozen `PoseVAE`'s state (a pure dict), or None.
      gmm: the `GMMPrior`, or None.
      config: `SMPLifyConfig` (static).
      vae_graphdef: the VAE's `nnx.GraphDef` (static), or None.
      root_shortcut: whether the skinning weights sum to 1 per vertex (static). Then a
        global rotation R about the root joint j₀ moves the mesh rigidly,
        v(R) = R(v(I) − j₀) + j₀, and step 1 needs no SMPL pass per iteration.
    """

    body: smpl_jax.SMPL
    regressor: jax.Array
    regressor_rowsum: jax.Array
    joint_mask: jax.Array
    vae_state: Any
    gmm: gmm_lib.GMMPrior | None
    config: SMPLifyConfig = dataclasses.field(metadata=dict(static=True))
    vae_graphdef: Any = dataclasses.field(metadata=dict(static=True))
    root_shortcut: bool = dataclasses.field(metadata=dict(static=True))

    @classmethod
    def create(
        cls,
        body: smpl_jax.SMPL,
        h36m_regressor,
        config: SMPLifyConfig | None = None,
        *,
        vae=None,
        gmm: gmm_lib.GMMPrior | str | os.PathLike | None = None,
    ) -> SMPLify:
        """Prepare a fitter (call outside jit: it inspects the arrays once).

        Args:
          body: a `smpl_jax.SMPL` (e.g. from `bodies.load_body`).
          h36m_regressor: [17, V] its Human3.6M regressor.
          config: `SMPLifyConfig()` by default (pose_prior='vae').
          vae: the frozen pose prior: a `PoseVAE`, or ``(graphdef, state)`` as
            `prior_train.load_pose_prior` returns it. Needed for pose_prior='vae'.
          gmm: a `GMMPrior` or the path of ``gmm_08.pkl``. Needed for pose_prior='gmm'.
        """
        config = SMPLifyConfig() if config is None else config
        regressor = jnp.asarray(h36m_regressor, body.dtype)
        if regressor.ndim != 2 or regressor.shape != (17, body.num_vertices):
            raise ValueError(
                f"h36m_regressor has shape {tuple(regressor.shape)}, expected "
                f"(17, {body.num_vertices}) for this body."
            )
        vae_graphdef = vae_state = None
        if config.pose_prior == "vae":
            if vae is None:
                raise ValueError(
                    "SMPLifyConfig.pose_prior='vae' needs the frozen pose VAE: pass "
                    "vae=PoseVAE(...) or vae=prior_train.load_pose_prior(config); or choose "
                    "pose_prior='gmm' (with gmm=path of gmm_08.pkl) or 'none'."
                )
            if isinstance(vae, PoseVAE):
                vae_graphdef, state = nnx.split(vae)
                vae_state = nnx.to_pure_dict(state)
            elif isinstance(vae, tuple) and len(vae) == 2:
                vae_graphdef, vae_state = vae
            else:
                raise TypeError(
                    f"vae must be a PoseVAE or a (graphdef, state) pair, got {type(vae).__name__}."
                )
        if config.pose_prior == "gmm":
            if gmm is None:
                raise ValueError(
                    "SMPLifyConfig.pose_prior='gmm' needs gmm=GMMPrior or the path of "
                    "SMPLify's gmm_08.pkl (see load_gmm_prior)."
                )
            if not isinstance(gmm, gmm_lib.GMMPrior):
                gmm = gmm_lib.load_gmm_prior(gmm, dtype=body.dtype)
            if gmm.means.shape[-1] != 69:
                raise ValueError(
                    f"the GMM prior has dimension {gmm.means.shape[-1]}; SMPLify's is over "
                    "the 69-D body pose."
                )
        else:
            gmm = None
        weights = body.weights
        root_shortcut = not isinstance(weights, jax.core.Tracer) and bool(
            np.allclose(np.asarray(weights).sum(axis=1), 1.0, atol=1e-5)
        )
        rowsum, mask = geometry.j24_from_h36m(jnp.sum(regressor, axis=1)[:, None])
        sub_body, sub_regressor = _subset_body(body, regressor)
        return cls(
            body=sub_body,
            regressor=sub_regressor,
            regressor_rowsum=rowsum[:, 0],
            joint_mask=jnp.asarray(mask, body.dtype),
            vae_state=vae_state,
            gmm=gmm,
            config=config,
            vae_graphdef=vae_graphdef,
            root_shortcut=root_shortcut,
        )

    def __call__(self, keypoints, init_pose, init_betas, init_cam_t) -> SMPLifyResult:
        """Fit a batch (SPIN's ``SMPLify.__call__``), one compiled program.

        Args:
          keypoints: [B, 24, 3] J24 keypoints, x, y normalised to [-1, 1], confidence.
          init_pose: [B, 72] or [B, 24, 3] axis-angle, global orientation first.
          init_betas: [B, NB] (NB ≤ the body's num_betas).
          init_cam_t: [B, 3] camera translation (`weak_perspective_to_translation`).

        Returns:
          `SMPLifyResult`.
        """
        keypoints, pose, betas, cam_t = self._check(keypoints, init_pose, init_betas, init_cam_t)
        return _fit(self, keypoints, pose, betas, cam_t)

    def fit_from_regressor(self, out, keypoints) -> SMPLifyResult:
        """Fit starting from a regressor's estimate (e.g. ``RegressorOutput.final``):
        pose [B, 24, 3], betas [B, NB], weak-perspective camera [B, 3]."""
        cfg = self.config
        cam_t = geometry.weak_perspective_to_translation(out.camera, cfg.focal_length, cfg.img_res)
        return self(keypoints, jnp.asarray(out.pose).reshape(-1, 72), out.betas, cam_t)

    def fitting_error(self, pose, betas, cam_t, keypoints):
        """SPIN's ``get_fitting_loss``: the errors of given parameters, without fitting.

        Args: as `__call__` (pose, betas, camera translation, keypoints).

        Returns:
          (reprojection_error [B], joint_errors [B, 24], pixel_error [B]), as in
          `SMPLifyResult`.
        """
        keypoints, pose, betas, cam_t = self._check(keypoints, pose, betas, cam_t)
        return _errors(self, keypoints, pose, betas, cam_t)

    def refit_error(self, pose, betas, keypoints, *, return_translation: bool = False):
        """SPIN's error of a stored fit on this batch's keypoints (its trainer's
        ``opt_joint_loss``): the camera translation that best projects the fit's J24
        joints onto the keypoints (`estimate_translation`, confidence-weighted, hips
        included as in SPIN), then `fitting_error`'s reprojection error.

        Args:
          pose: [B, 72] or [B, 24, 3]; betas: [B, NB]; keypoints: [B, 24, 3] as
            `__call__`.
          return_translation: also return the estimated translation.

        Returns:
          [B] errors (+inf where not finite, e.g. with fewer than two usable keypoints
          the camera is undetermined), and [B, 3] translations when asked.
        """
        batch = jnp.shape(keypoints)[0]
        keypoints, pose, betas, _ = self._check(
            keypoints, pose, betas, jnp.zeros((batch, 3), self.body.dtype)
        )
        error, cam_t = _refit_error(self, keypoints, pose, betas)
        return (error, cam_t) if return_translation else error

    def _check(self, keypoints, pose, betas, cam_t):
        dtype = self.body.dtype
        keypoints = jnp.asarray(keypoints, dtype)
        if keypoints.ndim != 3 or keypoints.shape[1:] != (24, 3):
            raise ValueError(
                "keypoints must have shape [B, 24, 3] (SPIN's J24 order; x, y in [-1, 1], "
                f"confidence), got {tuple(keypoints.shape)}."
            )
        batch = keypoints.shape[0]
        pose = _as_pose72(pose, "init_pose").astype(dtype)
        betas = jnp.asarray(betas, dtype)
        if betas.ndim != 2 or betas.shape[1] > self.body.num_betas:
            raise ValueError(
                f"init_betas must have shape [B, NB] with NB ≤ {self.body.num_betas}, got "
                f"{tuple(betas.shape)}."
            )
        cam_t = jnp.asarray(cam_t, dtype)
        if cam_t.shape != (batch, 3):
            raise ValueError(f"init_cam_t must have shape [{batch}, 3], got {tuple(cam_t.shape)}.")
        if pose.shape[0] != batch or betas.shape[0] != batch:
            raise ValueError(
                f"batch sizes disagree: keypoints {batch}, pose {pose.shape[0]}, betas "
                f"{betas.shape[0]}."
            )
        return keypoints, pose, betas, cam_t


def _j24(fitter: SMPLify, betas, body_pose, global_orient):
    vertices = fitter.body(betas=betas, body_pose=body_pose, global_orient=global_orient).vertices
    return geometry.j24_joints(vertices, fitter.regressor)[0]


def _camera_step_joints(fitter: SMPLify, betas, body_pose):
    """A function global_orient [B, 3] → J24 joints [B, 24, 3] for fixed pose and shape."""
    if not fitter.root_shortcut:
        return lambda orient: _j24(fitter, betas, body_pose, orient)
    out = fitter.body(betas=betas, body_pose=body_pose, global_orient=jnp.zeros_like(betas[:, :3]))
    root = out.rest_joints[:, 0]  # [B, 3]: the root joint does not move with R
    centred = geometry.j24_joints(out.vertices - root[:, None], fitter.regressor)[0]
    offset = fitter.regressor_rowsum[None, :, None] * root[:, None, :]

    def joints(orient):
        r = rotation.axis_angle_to_matrix(orient)
        return jnp.einsum("bij,bkj->bki", r, centred, precision=jax.lax.Precision.HIGHEST) + offset

    return joints


def _pose_prior(fitter: SMPLify, body_pose):
    """[B, 69] → [B], weighted (0 for pose_prior='none')."""
    cfg = fitter.config
    if cfg.pose_prior == "gmm":
        return cfg.pose_prior_weight**2 * fitter.gmm(body_pose)
    if cfg.pose_prior == "vae":
        vae = nnx.merge(fitter.vae_graphdef, fitter.vae_state)
        return cfg.vae_prior_weight**2 * vae.kl(body_pose, frozen=True)
    return jnp.zeros(body_pose.shape[:1], body_pose.dtype)


def _reprojection_terms(fitter: SMPLify, joints, cam_t, kp_px, conf):
    """[B, 24] c² · Σ_xy ρ_σ(projected − keypoint)."""
    cfg = fitter.config
    projected = geometry.perspective_projection(joints, cam_t, cfg.focal_length, cfg.img_res)
    return conf**2 * jnp.sum(gmof(projected - kp_px, cfg.sigma), axis=-1)


def _adam_scan(loss_fn, params, num_iters: int, step_size: float):
    """``num_iters`` Adam steps on Σ loss_fn(params) in a `lax.scan`."""
    tx = optax.adam(step_size, b1=0.9, b2=0.999)

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(lambda p: jnp.sum(loss_fn(p)))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=num_iters)
    return params


def _body_loss(fitter: SMPLify, body_pose, betas, global_orient, cam_t, kp_px, body_conf):
    cfg = fitter.config
    joints = _j24(fitter, betas, body_pose, global_orient)
    reprojection = jnp.sum(_reprojection_terms(fitter, joints, cam_t, kp_px, body_conf), -1)
    prior = _pose_prior(fitter, body_pose)
    angle = cfg.angle_prior_weight**2 * jnp.sum(angle_prior(body_pose), axis=-1)
    shape = cfg.shape_prior_weight**2 * jnp.sum(betas**2, axis=-1)
    return reprojection + prior + angle + shape


def body_fitting_loss(fitter: SMPLify, pose, betas, cam_t, keypoints):
    """SPIN's ``body_fitting_loss`` per example (step 2's objective), for inspection and
    tests: ``Σ_j c_j² Σ_xy ρ_σ`` (hips ignored) + pose prior + angle prior + shape prior.

    Args:
      fitter: a `SMPLify`.
      pose: [B, 72] axis-angle; betas: [B, NB]; cam_t: [B, 3].
      keypoints: [B, 24, 3] normalised [-1, 1] x, y and confidence.

    Returns:
      [B] (SPIN sums it over the batch).
    """
    keypoints, pose, betas, cam_t = fitter._check(keypoints, pose, betas, cam_t)
    kp_px = geometry.keypoints_to_pixels(keypoints[..., :2], fitter.config.img_res)
    _, body_conf = _fit_weights(fitter, keypoints)
    return _body_loss(fitter, pose[:, 3:], betas, pose[:, :3], cam_t, kp_px, body_conf)


def _fit_weights(fitter: SMPLify, keypoints):
    conf = keypoints[..., 2] * fitter.joint_mask
    body_conf = conf.at[:, np.asarray(IGNORED_JOINTS)].set(0.0)
    return conf, body_conf


@jax.jit
def _fit(fitter: SMPLify, keypoints, pose, betas, cam_t) -> SMPLifyResult:
    cfg = fitter.config
    kp_px = geometry.keypoints_to_pixels(keypoints[..., :2], cfg.img_res)
    conf, body_conf = _fit_weights(fitter, keypoints)
    body_pose, global_orient = pose[:, 3:], pose[:, :3]

    # Step 1: global orientation and camera translation (SPIN's camera_fitting_loss).
    cam_idx = np.asarray(CAMERA_JOINTS)
    joints_of = _camera_step_joints(fitter, betas, body_pose)
    tz_init = cam_t[:, 2]

    def camera_loss(p):
        joints = joints_of(p["global_orient"])[:, cam_idx]
        projected = geometry.perspective_projection(
            joints, p["cam_t"], cfg.focal_length, cfg.img_res
        )
        sq = jnp.sum((projected - kp_px[:, cam_idx]) ** 2, axis=-1)
        depth = cfg.depth_loss_weight**2 * (p["cam_t"][:, 2] - tz_init) ** 2
        return jnp.sum(conf[:, cam_idx] * sq, axis=-1) + depth

    p = _adam_scan(
        camera_loss, {"global_orient": global_orient, "cam_t": cam_t}, cfg.num_iters, cfg.step_size
    )
    global_orient, cam_t = p["global_orient"], p["cam_t"]

    # Step 2: body pose, betas, global orientation; camera fixed (SPIN's body_fitting_loss).
    def body_loss(p):
        return _body_loss(
            fitter, p["body_pose"], p["betas"], p["global_orient"], cam_t, kp_px, body_conf
        )

    p = _adam_scan(
        body_loss,
        {"body_pose": body_pose, "betas": betas, "global_orient": global_orient},
        cfg.num_iters,
        cfg.step_size,
    )
    pose = jnp.concatenate([p["global_orient"], p["body_pose"]], axis=-1)
    betas = p["betas"]
    error, joint_errors, pixel_error = _errors(fitter, keypoints, pose, betas, cam_t)
    rotmat = rotation.axis_angle_to_matrix(pose.reshape(-1, 24, 3))
    return SMPLifyResult(pose, rotmat, betas, cam_t, error, joint_errors, pixel_error)


@jax.jit
def _errors(fitter: SMPLify, keypoints, pose, betas, cam_t):
    joints = _j24(fitter, betas, pose[:, 3:], pose[:, :3])
    finite = jnp.all(jnp.isfinite(pose), -1) & jnp.all(jnp.isfinite(betas), -1)
    return _errors_of_joints(fitter, keypoints, joints, cam_t, finite)


@jax.jit
def _refit_error(fitter: SMPLify, keypoints, pose, betas):
    cfg = fitter.config
    joints = _j24(fitter, betas, pose[:, 3:], pose[:, :3])
    cam_t = geometry.estimate_translation(
        joints, keypoints, cfg.focal_length, cfg.img_res, weights=fitter.joint_mask
    )
    finite = jnp.all(jnp.isfinite(pose), -1) & jnp.all(jnp.isfinite(betas), -1)
    return _errors_of_joints(fitter, keypoints, joints, cam_t, finite)[0], cam_t


def _errors_of_joints(fitter: SMPLify, keypoints, joints, cam_t, finite):
    """(error [B], joint_errors [B, 24], pixel_error [B]) of J24 joints under cam_t."""
    cfg = fitter.config
    kp_px = geometry.keypoints_to_pixels(keypoints[..., :2], cfg.img_res)
    conf, body_conf = _fit_weights(fitter, keypoints)
    joint_errors = _reprojection_terms(fitter, joints, cam_t, kp_px, body_conf)
    error = jnp.mean(joint_errors, axis=-1)
    finite = finite & jnp.all(jnp.isfinite(cam_t), -1) & jnp.isfinite(error)
    error = jnp.where(finite, error, jnp.inf)
    projected = geometry.perspective_projection(joints, cam_t, cfg.focal_length, cfg.img_res)
    seen = (conf > 0).astype(joints.dtype)
    dist = jnp.where(seen > 0, jnp.linalg.norm(projected - kp_px, axis=-1), 0.0)
    count = jnp.sum(seen, -1)
    pixel_error = jnp.where(count > 0, jnp.sum(dist, -1) / jnp.maximum(count, 1), 0.0)
    return error, joint_errors, pixel_error

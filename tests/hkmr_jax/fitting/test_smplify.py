"""Tests for hkmr_jax.fitting.smplify (SPIN's SMPLify in JAX).

Reference values and their origin:
* Geman–McClure and the angle prior are written out by hand from SPIN's
  ``smplify/losses.py`` (``gmof``: σ²x²/(σ² + x²); ``angle_prior``: exp(±θ)² at the 72-D
  pose indices 55, 58, 12, 15 with signs +, −, −, −).
* The GMM prior is compared with a float64 NumPy transcription of SMPLify-X's
  ``MaxMixturePrior.merged_log_likelihood`` (as SPIN uses it).
* The fit is checked on noiseless keypoints of the built-in body under the module's own
  perspective camera: the ground truth reprojects with zero error, and fitting from a
  perturbed start must recover most of the 3D error.
"""

from __future__ import annotations

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hkmr_jax import geometry, metrics
from hkmr_jax.data import synthetic as synthetic_data
from hkmr_jax.fitting import gmm as gmm_lib
from hkmr_jax.fitting import smplify
from hkmr_jax.models.params import RegressorOutput
from hkmr_jax.models.pose_prior import PoseVAE
from smpl_jax import rotation, synthetic
from tests.pickle_payloads import Payload

B = 5  # four people + one with no visible keypoint


@pytest.fixture(scope="module")
def body():
    return synthetic.load_builtin(), jnp.asarray(synthetic.h36m_regressor())


def _j24(body, pose, betas):
    model, regressor = body
    v = model(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    return geometry.j24_joints(v, regressor)


@pytest.fixture(scope="module")
def problem(body):
    """Ground truth, noiseless keypoints and a perturbed start."""
    params = [synthetic_data.sample_parameters(np.random.default_rng(i)) for i in range(B)]
    pose = jnp.asarray(np.stack([p["pose"] for p in params]))
    betas = jnp.asarray(np.stack([p["betas"] for p in params]))
    rng = np.random.default_rng(7)
    camera = np.stack([[0.9, *rng.uniform(-0.1, 0.1, 2)] for _ in range(B)]).astype(np.float32)
    cam_t = geometry.weak_perspective_to_translation(camera)
    joints, mask = _j24(body, pose, betas)
    xy = geometry.keypoints_to_normalised(geometry.perspective_projection(joints, cam_t))
    conf = np.broadcast_to(mask, (B, 24)).copy()
    conf[-1] = 0.0  # the last example has no visible keypoint
    keypoints = jnp.concatenate([xy, jnp.asarray(conf)[..., None]], axis=-1)
    k1, k2 = jax.random.split(jax.random.key(1))
    noise = 0.3 * jax.random.normal(k1, pose.shape)
    init_pose = (pose + noise.at[:, :3].multiply(0.5)).at[-1].set(0.0)  # rest pose: ∇ finite?
    init_betas = betas + 0.5 * jax.random.normal(k2, betas.shape)
    # SPIN's depth term keeps t_z near its start: a 2% error there, 5 cm in x and y.
    init_cam_t = cam_t * jnp.array([1.0, 1.0, 1.02]) + jnp.array([0.05, -0.05, 0.0])
    return dict(pose=pose, betas=betas, cam_t=cam_t, camera=camera, keypoints=keypoints,
                joints=joints, mask=mask, init=(init_pose, init_betas, init_cam_t))  # fmt: skip


@pytest.fixture(scope="module")
def vae():
    return PoseVAE(rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def fitter(body, vae):
    """The default configuration (VAE prior, SPIN's weights, 100 iterations); the VAE is
    untrained (the fit must work whatever prior it is given)."""
    return smplify.SMPLify.create(*body, vae=vae)


@pytest.fixture(scope="module")
def fitted(fitter, problem):
    return fitter(problem["keypoints"], *problem["init"])


def _mpjpe(body, problem, pose, betas):
    joints = geometry.root_centred(_j24(body, pose, betas)[0])
    gt = geometry.root_centred(problem["joints"])
    valid = jnp.broadcast_to(jnp.asarray(problem["mask"]), (B, 24))
    return np.asarray(metrics.mpjpe(joints, gt, valid))


# --------------------------------------------------------------------------------------
# The fit


def test_fit_recovers_pose_from_perturbed_start(body, problem, fitter, fitted):
    init_pose, init_betas, init_cam_t = problem["init"]
    people = slice(0, B - 1)
    before = _mpjpe(body, problem, init_pose, init_betas)[people]
    after = _mpjpe(body, problem, fitted.pose, fitted.betas)[people]
    # Measured: before 150-194 mm (mean 176), after 64-98 mm (mean 78). What remains is
    # mostly 2D-to-3D ambiguity: noiseless keypoints are matched to ~2 px.
    assert np.all(after < 0.6 * before), (before, after)
    assert after.mean() < 0.5 * before.mean(), (before, after)
    err0, _, px0 = fitter.fitting_error(*problem["init"][:2], init_cam_t, problem["keypoints"])
    err0, px0 = np.asarray(err0)[people], np.asarray(px0)[people]
    err, px = np.asarray(fitted.reprojection_error)[people], np.asarray(fitted.pixel_error)[people]
    assert np.all(px0 > 8) and np.all(px < 3), (px0, px)  # measured: 10-17 px → 1.5-1.9 px
    assert np.all(err < 0.1 * err0), (err0, err)


def test_fit_outputs(fitted, problem):
    assert fitted.pose.shape == (B, 72) and fitted.betas.shape == (B, 10)
    assert fitted.rotmat.shape == (B, 24, 3, 3) and fitted.camera_translation.shape == (B, 3)
    assert fitted.reprojection_error.shape == fitted.pixel_error.shape == (B,)
    assert fitted.joint_errors.shape == (B, 24)
    for leaf in jax.tree.leaves(fitted):
        assert np.all(np.isfinite(leaf))
    np.testing.assert_allclose(
        fitted.rotmat, rotation.axis_angle_to_matrix(fitted.pose.reshape(B, 24, 3)),
        atol=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(fitted.reprojection_error, fitted.joint_errors.mean(-1), rtol=1e-6)
    # Hips are left out of the error (SPIN's ignored joints); nothing visible → error 0.
    assert np.all(np.asarray(fitted.joint_errors)[:, list(smplify.IGNORED_JOINTS)] == 0)
    assert fitted.reprojection_error[-1] == 0 and fitted.pixel_error[-1] == 0
    # Step 2 keeps the camera of step 1: its depth stays near the start (depth loss).
    np.testing.assert_allclose(fitted.camera_translation[:, 2], problem["init"][2][:, 2], rtol=0.02)


def test_fit_from_regressor_output(fitter, problem, fitted):
    """A regressor's output (weak-perspective camera) starts the same fit."""
    init_pose, init_betas, init_cam_t = problem["init"]
    out = RegressorOutput(
        pose=init_pose.reshape(B, 24, 3), rotmat=None, betas=init_betas,
        camera=geometry.translation_to_weak_perspective(init_cam_t),
    )  # fmt: skip
    again = fitter.fit_from_regressor(out, problem["keypoints"])
    np.testing.assert_allclose(again.pose, fitted.pose, atol=1e-3)
    np.testing.assert_allclose(again.camera_translation, fitted.camera_translation, rtol=1e-4)


def test_ground_truth_reprojects_exactly(fitter, problem):
    err, joint_err, px = fitter.fitting_error(
        problem["pose"], problem["betas"], problem["cam_t"], problem["keypoints"]
    )
    assert np.all(np.asarray(px) < 1e-3) and np.all(np.asarray(err) < 1e-6)
    assert np.asarray(joint_err).shape == (B, 24)
    # SPIN's re-scoring of a stored fit: its own least-squares camera, then the error.
    refit, cam_t = fitter.refit_error(
        problem["pose"], problem["betas"], problem["keypoints"], return_translation=True
    )
    np.testing.assert_allclose(cam_t[:-1], problem["cam_t"][:-1], rtol=1e-3, atol=1e-4)
    assert np.all(np.asarray(refit)[:-1] < 1e-3)
    init_refit = fitter.refit_error(*problem["init"][:2], problem["keypoints"])
    assert np.all(np.asarray(init_refit)[:-1] > 10)


def test_camera_step_shortcut_matches_full_forward(body, fitter, problem):
    """Step 1 rotates the mesh about the root instead of re-running SMPL: exact."""
    assert fitter.root_shortcut
    pose, betas = problem["pose"], problem["betas"]
    orient = jnp.asarray(np.random.default_rng(3).normal(size=(B, 3)), jnp.float32)
    fast = smplify._camera_step_joints(fitter, betas, pose[:, 3:])(orient)
    full = _j24(body, jnp.concatenate([orient, pose[:, 3:]], -1), betas)[0]
    np.testing.assert_allclose(fast, full, atol=2e-6)
    # The fitter keeps only the vertices the regressor reads; the joints agree.
    assert fitter.body.num_vertices < body[0].num_vertices
    np.testing.assert_allclose(smplify._j24(fitter, betas, pose[:, 3:], orient), full, atol=2e-6)


def test_estimate_translation_recovers_camera(fitter, problem):
    t = geometry.estimate_translation(
        problem["joints"][:-1], problem["keypoints"][:-1], weights=problem["mask"]
    )
    np.testing.assert_allclose(t, problem["cam_t"][:-1], rtol=1e-3, atol=1e-4)


def test_camera_conversion_round_trip(problem):
    camera = jnp.asarray(problem["camera"])
    cam_t = geometry.weak_perspective_to_translation(camera)
    np.testing.assert_allclose(geometry.translation_to_weak_perspective(cam_t), camera, rtol=1e-5)
    # t_z = 2f/(img_res·s) as in SPIN; t_xy = (tx, ty)/s for the project's s·X + ρ.
    np.testing.assert_allclose(cam_t[:, 2], 2 * 5000 / (224 * camera[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(cam_t[:, :2], camera[:, 1:] / camera[:, :1], rtol=1e-5)
    # The perspective projection agrees with the weak perspective to ~1 px at 224 px.
    xy = problem["keypoints"][..., :2]
    weak = geometry.weak_perspective(problem["joints"], camera)
    visible = np.asarray(problem["mask"]) > 0
    assert np.abs(np.asarray(xy - weak)[:, visible]).max() * 112 < 2.0


# --------------------------------------------------------------------------------------
# Robust error and priors


def test_gmof_hand_values():
    x = jnp.array([0.0, 3.0, -3.0, 1e6])
    # σ = 2: 4·9/(4 + 9) = 36/13; at 1e6 → σ² (saturates).
    np.testing.assert_allclose(smplify.gmof(x, 2.0), [0.0, 36 / 13, 36 / 13, 4.0], rtol=1e-6)
    np.testing.assert_allclose(smplify.gmof(jnp.array(100.0), 100.0), 5000.0, rtol=1e-6)


def test_angle_prior_hand_values():
    pose = np.zeros((1, 69), np.float32)
    pose[0, 52], pose[0, 55], pose[0, 9], pose[0, 12] = 0.5, 0.5, -1.0, 2.0
    np.testing.assert_allclose(
        smplify.angle_prior(jnp.asarray(pose)),
        [[np.exp(1.0), np.exp(-1.0), np.exp(2.0), np.exp(-4.0)]],
        rtol=1e-6,
    )


def _random_gmm(rng, m=3, d=69):
    a = rng.normal(size=(m, d, d)) * 0.1
    covars = a @ a.transpose(0, 2, 1) + 0.05 * np.eye(d)
    return {"means": rng.normal(size=(m, d)) * 0.2, "covars": covars,
            "weights": rng.dirichlet(np.ones(m))}  # fmt: skip


def _reference_gmm_nll(pose, means, covars, weights):
    """SMPLify-X's merged_log_likelihood in float64 NumPy."""
    d = means.shape[1]
    sqrdets = np.sqrt(np.linalg.det(covars))
    nll_weights = weights / ((2 * np.pi) ** (d / 2) * (sqrdets / sqrdets.min()))
    diff = pose[:, None, :] - means
    quad = np.einsum("bmi,mij,bmj->bm", diff, np.linalg.inv(covars), diff)
    return np.min(0.5 * quad - np.log(nll_weights), axis=1)


def test_gmm_prior_loads_protocol2_pickle_and_matches_reference(tmp_path):
    rng = np.random.default_rng(0)
    gmm = _random_gmm(rng)
    path = tmp_path / "gmm_08.pkl"
    path.write_bytes(pickle.dumps(gmm, protocol=2))
    prior = gmm_lib.load_gmm_prior(path)
    pose = rng.normal(size=(4, 69)) * 0.3
    pose[0] = gmm["means"][1]  # at a component's mean
    expected = _reference_gmm_nll(pose, gmm["means"], gmm["covars"], gmm["weights"])
    np.testing.assert_allclose(prior(jnp.asarray(pose, jnp.float32)), expected, rtol=2e-4)


def test_gmm_prior_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gmm_08\.pkl"):
        gmm_lib.load_gmm_prior(tmp_path / "missing.pkl")
    good = pickle.dumps(_random_gmm(np.random.default_rng(1), m=2, d=4), protocol=2)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        gmm_lib.load_gmm_prior(truncated)
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(pickle.dumps({"means": np.zeros((2, 4))}, protocol=2))
    with pytest.raises(ValueError, match="missing key"):
        gmm_lib.load_gmm_prior(wrong)
    not_pd = tmp_path / "not_pd.pkl"
    gmm = _random_gmm(np.random.default_rng(2), m=2, d=4)
    gmm["covars"][1] = -np.eye(4)
    not_pd.write_bytes(pickle.dumps(gmm, protocol=2))
    with pytest.raises(ValueError, match="positive definite"):
        gmm_lib.load_gmm_prior(not_pd)


@pytest.mark.parametrize("protocol", [2, 5])
def test_malicious_gmm_pickle_is_refused(tmp_path, protocol):
    marker = tmp_path / "pwned"
    content = dict(_random_gmm(np.random.default_rng(3), m=2, d=4),
                   extra=Payload(os.system, f"touch {marker}"))  # fmt: skip
    path = tmp_path / "gmm_08.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    with pytest.raises(pickle.UnpicklingError, match="refusing") as info:
        gmm_lib.load_gmm_prior(path)
    assert "system" in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


def test_vae_prior_term_is_weighted_kl(body, fitter, vae):
    pose = jnp.asarray(np.random.default_rng(4).normal(size=(3, 69)) * 0.3, jnp.float32)
    expected = 4.78**2 * vae.kl(pose)
    np.testing.assert_allclose(smplify._pose_prior(fitter, pose), expected, rtol=1e-5)
    # The VAE as prior_train.load_pose_prior returns it: (graphdef, pure-dict state).
    graphdef, state = nnx.split(vae)
    other = smplify.SMPLify.create(*body, vae=(graphdef, nnx.to_pure_dict(state)))
    np.testing.assert_allclose(smplify._pose_prior(other, pose), expected, rtol=1e-5)


def test_prior_gradients_finite(body):
    """The priors' gradients, at the rest pose and elsewhere. (SMPL's own are finite at
    the rest pose, tested in smpl_jax; the fit above starts one example there.)"""
    gmm = gmm_lib.gmm_from_arrays(**_random_gmm(np.random.default_rng(5)))
    fitter = smplify.SMPLify.create(*body, smplify.SMPLifyConfig(pose_prior="gmm"), gmm=gmm)
    pose = jnp.asarray(np.random.default_rng(6).normal(size=(2, 69)) * 0.3, jnp.float32)
    np.testing.assert_allclose(smplify._pose_prior(fitter, pose), 4.78**2 * gmm(pose), rtol=1e-6)

    def priors(pose):
        return jnp.sum(smplify._pose_prior(fitter, pose) + smplify.angle_prior(pose).sum(-1))

    for p in (jnp.zeros((2, 69)), pose):
        g = jax.grad(priors)(p)
        assert np.all(np.isfinite(g)) and np.any(g != 0)


# --------------------------------------------------------------------------------------
# Bad input


def test_bad_input(body, fitter, problem, vae):
    with pytest.raises(ValueError, match="pose_prior='vae' needs"):
        smplify.SMPLify.create(*body)
    with pytest.raises(ValueError, match="pose_prior='gmm' needs"):
        smplify.SMPLify.create(*body, smplify.SMPLifyConfig(pose_prior="gmm"))
    with pytest.raises(ValueError, match="pose_prior"):
        smplify.SMPLifyConfig(pose_prior="discriminator")
    with pytest.raises(ValueError, match="17, 6786"):
        smplify.SMPLify.create(body[0], body[1][:, :10], vae=vae)
    init_pose, init_betas, init_cam_t = problem["init"]
    with pytest.raises(ValueError, match=r"keypoints must have shape \[B, 24, 3\]"):
        fitter(problem["keypoints"][:, :17], init_pose, init_betas, init_cam_t)
    with pytest.raises(ValueError, match="init_pose"):
        fitter(problem["keypoints"], init_pose[:, :69], init_betas, init_cam_t)
    with pytest.raises(ValueError, match="init_cam_t"):
        fitter(problem["keypoints"], init_pose, init_betas, init_cam_t[:, :2])

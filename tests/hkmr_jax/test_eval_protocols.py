"""The 3DPW and invisible-joint evaluators against hand computations.

Small random SMPL-format bodies (`conftest.make_smpl_arrays`, 400 vertices) and a random
17-joint regressor keep this fast; a predictor whose output is chosen per image stands in
for a trained model.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import smpl_jax
from hkmr_jax import eval_lib, eval_report
from hkmr_jax.models.params import RegressorOutput
from smpl_jax import rotation, skeleton

SIZE = 32
NV = 400
K = 1.1  # the "male" body is the neutral one scaled by K


def _regressor(seed=5):
    r = np.random.default_rng(seed).uniform(0.0, 1.0, (17, NV)) ** 4
    return jnp.asarray(r / r.sum(1, keepdims=True), jnp.float32)


def _scaled(arrays, k):
    out = dict(arrays)
    for key in ("v_template", "shapedirs", "posedirs"):
        out[key] = arrays[key] * k
    return out


@pytest.fixture
def bodies(smpl_arrays):
    arrays = smpl_arrays(seed=0, num_vertices=NV)
    neutral = smpl_jax.model_from_arrays(arrays)
    scaled = smpl_jax.model_from_arrays(_scaled(arrays, K))
    return neutral, scaled, _regressor(), arrays


def _params(n, seed=1):
    rng = np.random.default_rng(seed)
    pose = rng.normal(0.0, 0.3, (n, 72)).astype(np.float32)
    pose[:, :3] += [np.pi, 0, 0]
    betas = rng.normal(0.0, 1.0, (n, 10)).astype(np.float32)
    return pose, betas


def _table_predictor(pose, betas, camera=(0.9, 0.0, 0.0)):
    """Predicts row i of the tables for an image whose pixel [0, 0, 0] is i."""
    rotmat = rotation.axis_angle_to_matrix(jnp.asarray(pose).reshape(-1, 24, 3))
    cam = jnp.broadcast_to(jnp.asarray(camera, jnp.float32), (len(pose), 3))

    def predict(images):
        idx = np.asarray(images)[:, 0, 0, 0].astype(np.int64)
        rows = lambda x: jnp.asarray(x)[idx][None]
        return RegressorOutput(rows(jnp.asarray(pose).reshape(-1, 24, 3)), rows(rotmat),
                               rows(betas), rows(cam))  # fmt: skip

    return predict


def _image(i):
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[0, 0, 0] = i
    return image


def _pw3d_source(genders, pose, betas):
    return [
        {
            "image": _image(i),
            "keypoints": np.zeros((24, 3), np.float32),
            "joints_3d": np.zeros((24, 4), np.float32),
            "pose": pose[i],
            "betas": betas[i],
            "has_smpl": np.float32(1.0),
            "has_3d": np.float32(0.0),
            "gender": np.asarray(g),
            "example_id": np.int64(i),
        }
        for i, g in enumerate(genders)
    ]


def _hand_errors(body, regressor, pose, betas):
    """(MPJPE, PVE) in mm of the K-scaled mesh against `body`'s, per example (numpy)."""
    verts = np.asarray(body(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices)
    h36m = np.einsum("jv,bvc->bjc", np.asarray(regressor), verts)
    pelvis = h36m[:, :1]  # H36M joint 0
    j14 = h36m[:, list(skeleton.H36M_TO_J14)] - pelvis
    # Scaling the mesh by K scales the centred joints and vertices by K: error (K − 1)·|x|.
    mpjpe = (K - 1) * np.linalg.norm(j14, axis=-1).mean(-1) * 1000
    pve = (K - 1) * np.linalg.norm(verts - pelvis, axis=-1).mean(-1) * 1000
    return mpjpe, pve


def test_3dpw_truth_is_zero_and_gender_picks_the_model(bodies, tmp_path, capsys):
    neutral, scaled, reg, arrays = bodies
    genders = ["f", "m", "f", "m", "m"]
    pose, betas = _params(len(genders))
    source = _pw3d_source(genders, pose, betas)
    ctx = eval_lib.EvalContext(_table_predictor(pose, betas), neutral, reg, batch_size=2)

    # No gendered models: the run's body for both, with a note; the truth scores ~0.
    result = eval_lib.run_evaluator("3dpw", ctx, source)
    assert "no body_model_male / body_model_female" in capsys.readouterr().out
    assert result["num_examples"] == 5
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm"):
        assert result[key] < 1e-2, key

    # Male = the neutral body scaled by K (given as a file), female = the neutral body:
    # female examples score 0, male ones (K − 1)·|x|, PA-MPJPE (scale-aligned) 0.
    path = smpl_jax.save_npz(_scaled(arrays, K), tmp_path / "male.npz")
    result = eval_lib.run_evaluator(
        "3dpw", ctx, source, body_model_male=str(path), body_model_female=neutral
    )
    mpjpe, pve = _hand_errors(neutral, reg, pose, betas)
    male = np.array([g == "m" for g in genders])
    np.testing.assert_allclose(result["mpjpe_mm"], np.where(male, mpjpe, 0).mean(), rtol=1e-3)
    np.testing.assert_allclose(result["pve_mm"], np.where(male, pve, 0).mean(), rtol=1e-3)
    assert result["pa_mpjpe_mm"] < 1e-2
    # Swapped: now the female examples carry the error.
    swapped = eval_lib.pw3d(ctx, source, body_model_male=neutral, body_model_female=scaled)
    np.testing.assert_allclose(swapped["mpjpe_mm"], np.where(male, 0, mpjpe).mean(), rtol=1e-3)
    np.testing.assert_allclose(swapped["pve_mm"], np.where(male, 0, pve).mean(), rtol=1e-3)


def test_3dpw_refuses_what_it_cannot_score(bodies, smpl_arrays):
    neutral, scaled, reg, _ = bodies
    pose, betas = _params(2)
    ctx = eval_lib.EvalContext(_table_predictor(pose, betas), neutral, reg, batch_size=2)
    source = _pw3d_source(["m", "x"], pose, betas)
    with pytest.raises(ValueError, match="example 1: unknown gender 'x'"):
        eval_lib.pw3d(ctx, source, body_model_male=scaled, body_model_female=neutral)
    source = _pw3d_source(["m", "f"], pose, betas)
    with pytest.raises(ValueError, match="give both"):
        eval_lib.pw3d(ctx, source, body_model_male=scaled)
    small = smpl_jax.model_from_arrays(smpl_arrays(seed=3, num_vertices=50))
    with pytest.raises(ValueError, match="has 50 vertices"):
        eval_lib.pw3d(ctx, source, body_model_male=small, body_model_female=neutral)
    # The joint evaluators need 3D joints, which 3DPW's file lacks.
    with pytest.raises(ValueError, match=r"example 0 has no 3D joints.*'3dpw' evaluator"):
        eval_lib.standard(ctx, source)
    source[1]["has_smpl"] = np.float32(0.0)
    with pytest.raises(ValueError, match="example 1 has no SMPL ground truth"):
        eval_lib.pw3d(ctx, source)


# ------------------------------------------------------------------------ invisible joints

CAMERA = (0.9, 0.05, -0.1)
PX = SIZE / 2  # pixels per normalised unit


def _predicted_keypoints(body, reg):
    """Hand computation: J24 keypoints of the rest-pose mesh under CAMERA (numpy)."""
    verts = np.asarray(body(betas=np.zeros((1, 10), np.float32)).vertices)[0]
    h36m = np.asarray(reg) @ verts
    j24 = np.zeros((24, 3))
    j24[list(skeleton.H36M_TO_J24)] = h36m
    return j24[:, :2] * CAMERA[0] + CAMERA[1:]


def _keypoint_source(keypoints, n=3, **extra):
    keypoints = keypoints.astype(np.float32)
    return [
        {"image": _image(0), "keypoints": keypoints, "example_id": np.int64(i), **extra}
        for i in range(n)
    ]


def _ctx(body, reg):
    pose, betas = np.zeros((1, 72), np.float32), np.zeros((1, 10), np.float32)
    return eval_lib.EvalContext(_table_predictor(pose, betas, CAMERA), body, reg, batch_size=2)


def test_invisible_joints_without_a_visibility_key(bodies):
    """Synthetic-style labels: hidden keypoints have confidence 0 and their position."""
    body, _, reg, _ = bodies
    pred = _predicted_keypoints(body, reg)
    mask = np.zeros(24)
    mask[list(skeleton.H36M_TO_J24)] = 1.0
    keypoints = np.concatenate([pred, mask[:, None]], -1)
    keypoints[0, :2] += np.array([3.0, 4.0]) / PX  # hidden, 5 px off: a PCK miss
    keypoints[1, :2] += np.array([1.0, 0.0]) / PX  # hidden, 1 px off: a hit (< 1.6 px)
    keypoints[2, :2] = [1.5, 0.0]  # hidden outside the crop: not counted
    keypoints[[0, 1, 2], 2] = 0.0
    keypoints[3, :2] += np.array([0.0, 2.0]) / PX  # visible, 2 px off
    assert mask[13] == 0  # head top: no 3D joint, not counted although confidence is 0
    joints_3d = np.concatenate([np.zeros((24, 3)), mask[:, None]], -1).astype(np.float32)
    source = _keypoint_source(keypoints, joints_3d=joints_3d)

    result = eval_lib.run_evaluator("invisible", _ctx(body, reg), source)
    assert result["num_examples"] == 3  # batches of 2: the padded row is not counted
    assert result["num_joints"] == 2 * 3
    np.testing.assert_allclose(result["mpjpe_px"], (5 + 1) / 2, rtol=1e-4)
    np.testing.assert_allclose(result["pck"], 50.0)
    np.testing.assert_allclose(result["pck_threshold_px"], 0.05 * SIZE)
    visible = result["visible"]
    assert visible["num_joints"] == (17 - 3) * 3
    np.testing.assert_allclose(visible["mpjpe_px"], 2 / 14, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(visible["pck"], 100 * 13 / 14)
    # A wider PCK threshold takes in the 5 px joint.
    wide = eval_lib.invisible(_ctx(body, reg), source, pck_fraction=0.2)
    assert wide["pck"] == 100.0 and wide["pck_threshold_px"] == pytest.approx(6.4)


def test_invisible_joints_with_a_visibility_key(bodies):
    """MPII-style labels: annotated joints (confidence 1) with a `visible` flag."""
    body, _, reg, _ = bodies
    keypoints = np.concatenate([_predicted_keypoints(body, reg), np.zeros((24, 1))], -1)
    keypoints[list(skeleton.H36M_TO_J24), 2] = 1.0
    keypoints[13, 2] = 1.0  # head top: annotated, but a mesh does not predict it
    keypoints[6, 2] = 0.0  # not annotated: counted nowhere
    visible = (keypoints[:, 2] > 0).astype(np.float32)
    visible[[4, 5, 13]] = 0.0
    keypoints[4, :2] += np.array([0.0, 1.0]) / PX  # 1 px: a hit
    keypoints[5, :2] += np.array([6.0, 8.0]) / PX  # 10 px: a miss
    source = _keypoint_source(keypoints, n=2, visible=visible)

    result = eval_lib.invisible(_ctx(body, reg), source)
    assert result["num_joints"] == 2 * 2
    np.testing.assert_allclose(result["mpjpe_px"], (1 + 10) / 2, rtol=1e-4)
    np.testing.assert_allclose(result["pck"], 50.0)
    assert result["visible"]["num_joints"] == (17 - 3) * 2
    assert result["visible"]["mpjpe_px"] < 1e-3 and result["visible"]["pck"] == 100.0
    line = eval_report.format_table({"mpii": {"invisible": result}})
    assert "mpii: invisible 4 joints, 5.50 px, PCK 50.0 %" in line
    # No invisible joint at all: no error to report (None, not NaN, in the JSON).
    source = _keypoint_source(keypoints, n=2, visible=(keypoints[:, 2] > 0).astype(np.float32))
    empty = eval_lib.invisible(_ctx(body, reg), source)
    assert empty["num_joints"] == 0 and empty["mpjpe_px"] is None and empty["pck"] is None


def test_3dpw_from_a_built_spin_format_split(bodies, tmp_path):
    """A mock `3dpw_test.npz` (pose, shape, gender; no 2D/3D joints, as SPIN's file),
    built with TFDS and read through `pipeline.make_source`, as `eval.py` does."""
    import imageio.v3 as iio

    from hkmr_jax.data import pipeline, spin_format

    neutral, scaled, reg, _ = bodies
    genders = ["m", "f", "m"]
    pose, betas = _params(1)
    n = len(genders)
    manual = tmp_path / "manual"
    (manual / "dataset_extras").mkdir(parents=True)
    names = [f"imageFiles/downtown_walking_00/image_{i:05d}.jpg" for i in range(n)]
    for name in names:
        (manual / "3DPW" / name).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(manual / "3DPW" / name, np.full((40, 30, 3), 128, np.uint8), quality=95)
    np.savez(manual / "dataset_extras" / "3dpw_test.npz", imgname=names,
             center=np.full((n, 2), 15.0), scale=np.full(n, 0.2), pose=np.repeat(pose, n, 0),
             shape=np.repeat(betas, n, 0), gender=genders)  # fmt: skip
    spin_format.build("3dpw", manual, tmp_path / "tfds", splits=["test"], num_workers=1)
    source = pipeline.make_source("3dpw", "test", {"data_dir": str(tmp_path / "tfds")})
    assert [str(source[i]["gender"]) for i in range(n)] == genders
    assert source[0]["has_smpl"] == 1.0 and source[0]["has_3d"] == 0.0

    def predict(images):  # the true parameters for every image
        b = images.shape[0]
        return _table_predictor(pose, betas)(np.zeros((b, 1, 1, 1), np.uint8))

    ctx = eval_lib.EvalContext(predict, neutral, reg, batch_size=2)
    result = eval_lib.pw3d(ctx, source, body_model_male=scaled, body_model_female=neutral)
    mpjpe, pve = _hand_errors(neutral, reg, pose, betas)
    np.testing.assert_allclose(result["mpjpe_mm"], mpjpe[0] * 2 / 3, rtol=1e-3)
    np.testing.assert_allclose(result["pve_mm"], pve[0] * 2 / 3, rtol=1e-3)

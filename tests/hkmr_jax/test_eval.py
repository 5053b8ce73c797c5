"""Evaluators: the protocol's numbers on a source with a known answer, occluders, JSON."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from hkmr_jax import eval_lib, eval_report, geometry
from hkmr_jax.models.params import RegressorOutput
from smpl_jax import rotation, skeleton, synthetic

SIZE = 32


@pytest.fixture(scope="module")
def body():
    return synthetic.load_builtin(), jnp.asarray(synthetic.h36m_regressor())


def _params(betas_value):
    pose = np.zeros((24, 3), np.float32)
    pose[0] = [np.pi, 0, 0]
    pose[18] = [0, 0, 0.8]  # a bent elbow
    return pose, np.full(10, betas_value, np.float32)


def _source(body, regressor, n=5):
    pose, betas = _params(0.0)
    verts = body(betas=betas[None], body_pose=pose[None, 1:], global_orient=pose[None, 0]).vertices
    j24, mask = geometry.j24_joints(verts, regressor)
    joints_3d = np.concatenate([geometry.root_centred(j24)[0], mask[:, None]], -1)
    keypoints = np.concatenate([np.asarray(j24[0, :, :2]) * 0.9, mask[:, None]], -1)
    rng = np.random.default_rng(0)
    return [
        {
            "image": rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8),
            "keypoints": keypoints.astype(np.float32),
            "joints_3d": joints_3d.astype(np.float32),
            "example_id": np.int64(i),
        }
        for i in range(n)
    ]


def _constant_predictor(betas_value, seen):
    pose, betas = _params(betas_value)
    rotmat = rotation.axis_angle_to_matrix(jnp.asarray(pose))

    def predict(images):
        seen.append(np.asarray(images))
        b = images.shape[0]
        rep = lambda x: jnp.broadcast_to(jnp.asarray(x), (1, b, *np.shape(x)))
        return RegressorOutput(rep(pose), rep(rotmat), rep(betas), rep([0.9, 0.0, 0.0]))

    return predict


def test_standard_is_zero_for_the_truth_and_matches_a_direct_computation(body):
    b, reg = body
    source = _source(b, reg)
    ctx = eval_lib.EvalContext(_constant_predictor(0.0, []), b, reg, batch_size=2)
    result = eval_lib.run_evaluator("standard", ctx, source)
    assert result["num_examples"] == 5
    assert result["mpjpe_mm"] < 1e-3 and result["pa_mpjpe_mm"] < 1e-3
    assert 0 < result["seconds_per_image"] < 10  # timed prediction, reported per image
    ctx = eval_lib.EvalContext(_constant_predictor(1.5, []), b, reg, batch_size=2)
    result = eval_lib.evaluate(ctx, source)
    pose, betas = _params(1.5)
    verts = b(betas=betas[None], body_pose=pose[None, 1:], global_orient=pose[None, 0]).vertices
    pred = np.asarray(geometry.root_centred(geometry.j24_joints(verts, reg)[0]))[0]
    gt = source[0]["joints_3d"][:, :3]
    j14 = list(skeleton.J24_TO_J14)
    expected = np.linalg.norm(pred[j14] - gt[j14], axis=-1).mean() * 1000
    np.testing.assert_allclose(result["mpjpe_mm"], expected, rtol=1e-4)
    assert 0 < result["pa_mpjpe_mm"] < result["mpjpe_mm"]


def test_occluded_sets_change_the_images_deterministically(body):
    b, reg = body
    source = _source(b, reg)
    first, second = [], []
    for seen in (first, second):
        ctx = eval_lib.EvalContext(_constant_predictor(0.0, seen), b, reg, batch_size=5)
        result = eval_lib.run_evaluator("occluded", ctx, source)
        assert set(result) == {"bar", "circle", "rectangle"}
    clean = np.stack([e["image"] for e in source])
    for a, c in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, c)  # seeded per example: the same both times
        assert np.any(a != clean)


def test_doc_sweep_plot_json_and_bad_name(body, tmp_path):
    b, reg = body
    source = _source(b, reg, n=2)
    ctx = eval_lib.EvalContext(_constant_predictor(0.5, []), b, reg, batch_size=2)
    sweep = eval_lib.run_evaluator("doc_sweep", ctx, source, kinds=("circle",), joints=(0, 6))
    assert set(sweep["circle"]) == {"1", "2", "3", "4", "5"}
    assert all(v > 0 for v in sweep["circle"].values())
    png = eval_report.plot_doc_sweep({"constant": sweep}, tmp_path / "doc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = eval_report.write_json({"doc_sweep": sweep}, tmp_path / "eval" / "synthetic.json")
    assert json.loads(path.read_text())["doc_sweep"] == sweep
    assert [p.name for p in path.parent.iterdir()] == ["synthetic.json"]
    with pytest.raises(ValueError, match="unknown evaluator"):
        eval_lib.run_evaluator("mpii", ctx, source)

"""Metrics against hand-computed values and an independent float64 NumPy Procrustes."""

import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from hkmr_jax import geometry, metrics
from smpl_jax import skeleton


def _numpy_procrustes(pred, gt):
    """Umeyama (1991) with plain NumPy, one example: scale, rotation (det +1), translation."""
    mp, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp, gt - mg
    u, s, vt = np.linalg.svd(g.T @ p)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / np.sum(p**2)
    return scale * p @ rot.T + mg


def test_mpjpe_hand_computed():
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])  # distances 5 and 1
    np.testing.assert_allclose(metrics.mpjpe(pred, gt), [3.0])
    np.testing.assert_allclose(metrics.mpjpe(pred, gt, valid=np.array([[0.0, 1.0]])), [1.0])


def test_pa_mpjpe_removes_similarity_transforms_exactly():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(4, 14, 3))
    rot = Rotation.random(4, random_state=1).as_matrix()
    pred = 1.7 * np.einsum("bij,bkj->bki", rot, gt) + rng.normal(size=(4, 1, 3))
    np.testing.assert_allclose(metrics.pa_mpjpe(jnp.asarray(pred), jnp.asarray(gt)), 0, atol=1e-5)
    assert np.all(np.asarray(metrics.mpjpe(pred, gt)) > 0.1)


def test_pa_mpjpe_matches_numpy_reference_and_never_reflects():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(6, 14, 3))
    pred = gt + 0.3 * rng.normal(size=gt.shape)
    pred[0] = gt[0] * np.array([-1.0, 1.0, 1.0])  # a mirror image: must not be undone
    aligned = np.asarray(metrics.procrustes_align(jnp.asarray(pred), jnp.asarray(gt)))
    for b in range(6):
        np.testing.assert_allclose(aligned[b], _numpy_procrustes(pred[b], gt[b]), atol=1e-5)
    assert float(metrics.pa_mpjpe(pred[:1], gt[:1])[0]) > 0.1


def test_pck_and_pve():
    gt = np.zeros((1, 4, 2))
    pred = np.array([[[0.5, 0], [1.5, 0], [0, 0.9], [9, 9]]])
    visible = np.array([[1.0, 1.0, 1.0, 0.0]])
    np.testing.assert_allclose(metrics.pck(pred, gt, visible, threshold=1.0), [2 / 3])
    verts = np.zeros((2, 5, 3))
    np.testing.assert_allclose(metrics.pve(verts + [0, 0, 2], verts), [2, 2])


def test_weak_perspective_and_j24_layout():
    points = np.array([[[1.0, 2.0, 5.0]]])
    camera = np.array([[2.0, 0.1, -0.2]])
    np.testing.assert_allclose(geometry.weak_perspective(points, camera), [[[2.1, 3.8]]])
    h36m = np.arange(17 * 3, dtype=np.float32).reshape(1, 17, 3)
    j24, mask = geometry.j24_from_h36m(jnp.asarray(h36m))
    for h, j in enumerate(skeleton.H36M_TO_J24):
        np.testing.assert_array_equal(j24[0, j], h36m[0, h])
        assert skeleton.J24_NAMES[j] in (skeleton.H36M_17_NAMES[h], "neck", "jaw", "head")
    assert mask.sum() == 17 and float(jnp.abs(j24[0, mask == 0]).sum()) == 0.0
    centred = geometry.root_centred(j24)
    np.testing.assert_array_equal(centred[0, geometry.PELVIS_J24], 0.0)
    # J14 through J24 agrees with SPIN's direct H36M → J14 map.
    np.testing.assert_array_equal(
        j24[0, list(skeleton.J24_TO_J14)], h36m[0, list(skeleton.H36M_TO_J14)]
    )

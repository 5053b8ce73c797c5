"""smpl_jax.rotation against scipy.spatial.transform.Rotation, plus exact values at 0 and π.

scipy is the independent reference (its quaternions are scalar-last (x, y, z, w); ours are
(w, x, y, z)). Property tests draw fixed-size batches of 8 so that every jitted
conversion compiles once per dtype, and are derandomized (the same examples every run).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from scipy.spatial.transform import Rotation

from smpl_jax import rotation

N = 8  # rotations per hypothesis example

aa_to_mat = jax.jit(rotation.axis_angle_to_matrix)
mat_to_aa = jax.jit(rotation.matrix_to_axis_angle)
mat_to_quat = jax.jit(rotation.matrix_to_quaternion)
quat_to_mat = jax.jit(rotation.quaternion_to_matrix)
aa_to_quat = jax.jit(rotation.axis_angle_to_quaternion)
quat_to_aa = jax.jit(rotation.quaternion_to_axis_angle)
r6d_to_mat = jax.jit(rotation.rotation_6d_to_matrix)
mat_to_r6d = jax.jit(rotation.matrix_to_rotation_6d)


def skew(v):
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# A unit axis from 3 coordinates away from 0; an angle in [0, π).
_coord = st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False)
_axis = st.tuples(_coord, _coord, _coord).filter(lambda v: np.linalg.norm(v) > 1e-2)
_angle = st.floats(0.0, np.pi, exclude_max=True, allow_subnormal=False)
rotvecs = st.lists(st.tuples(_axis, _angle), min_size=N, max_size=N).map(
    lambda rows: np.array([_unit(a) * t for a, t in rows])
)


def _halves_not_parallel(x):
    return np.all(np.linalg.norm(np.cross(_unit(x[:, :3]), _unit(x[:, 3:])), axis=1) > 1e-2)


# Any 6D input whose two halves are not (nearly) parallel.
six_d = (
    st.lists(st.tuples(_axis, _axis), min_size=N, max_size=N)
    .map(lambda rows: np.array([np.concatenate(r) for r in rows]))
    .filter(_halves_not_parallel)
)


def assert_rotations(m, atol):
    """m [..., 3, 3] orthonormal with determinant +1."""
    m = np.asarray(m, np.float64)
    eye = np.broadcast_to(np.eye(3), m.shape)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), eye, rtol=0, atol=atol)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, rtol=0, atol=atol)


def assert_same_quaternion(q, p, atol):
    """Equal up to the sign (q and −q are the same rotation), row by row."""
    q, p = np.asarray(q), np.asarray(p)
    err = np.minimum(np.abs(q - p).max(-1), np.abs(q + p).max(-1))
    assert np.all(err <= atol), err.max()


# --------------------------------------------------------------------------------------
# Properties against scipy (float64)


@settings(deadline=None, max_examples=40, derandomize=True)
@given(rotvecs)
def test_axis_angle_matrix_round_trip_against_scipy(r):
    with jax.enable_x64(True):
        m = np.asarray(aa_to_mat(jnp.asarray(r)))
        back = np.asarray(mat_to_aa(jnp.asarray(m)))
    scipy_m = Rotation.from_rotvec(r).as_matrix()
    np.testing.assert_allclose(m, scipy_m, rtol=0, atol=1e-14)
    assert_rotations(m, atol=1e-14)
    # Angles below π: the rotation vector is unique, so the round trip gives it back.
    np.testing.assert_allclose(back, r, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back, Rotation.from_matrix(scipy_m).as_rotvec(), rtol=0, atol=1e-9)


@settings(deadline=None, max_examples=40, derandomize=True)
@given(rotvecs)
def test_quaternions_against_scipy(r):
    scipy_rot = Rotation.from_rotvec(r)
    scipy_q = scipy_rot.as_quat()[:, [3, 0, 1, 2]]  # (x, y, z, w) → (w, x, y, z)
    m = scipy_rot.as_matrix()
    with jax.enable_x64(True):
        q_from_m = np.asarray(mat_to_quat(jnp.asarray(m)))
        q_from_aa = np.asarray(aa_to_quat(jnp.asarray(r)))
        m_from_q = np.asarray(quat_to_mat(jnp.asarray(scipy_q)))
        # Not normalised, and the other sign: the same rotation.
        m_from_scaled = np.asarray(quat_to_mat(jnp.asarray(-3.0 * scipy_q)))
        aa_from_q = np.asarray(quat_to_aa(jnp.asarray(scipy_q)))
        aa_from_neg_q = np.asarray(quat_to_aa(jnp.asarray(-scipy_q)))
    assert np.all(q_from_m[:, 0] >= 0)  # documented: w ≥ 0
    np.testing.assert_allclose(np.linalg.norm(q_from_m, axis=1), 1.0, rtol=0, atol=1e-15)
    assert_same_quaternion(q_from_m, scipy_q, atol=1e-14)
    assert_same_quaternion(q_from_aa, scipy_q, atol=1e-14)
    np.testing.assert_allclose(m_from_q, m, rtol=0, atol=1e-14)
    np.testing.assert_allclose(m_from_scaled, m, rtol=0, atol=1e-14)
    np.testing.assert_allclose(aa_from_q, r, rtol=0, atol=1e-9)
    np.testing.assert_allclose(aa_from_neg_q, r, rtol=0, atol=1e-9)


@settings(deadline=None, max_examples=40, derandomize=True)
@given(rotvecs, six_d)
def test_rotation_6d(r, x):
    m = Rotation.from_rotvec(r).as_matrix()
    with jax.enable_x64(True):
        x_of_m = np.asarray(mat_to_r6d(jnp.asarray(m)))
        m_back = np.asarray(r6d_to_mat(jnp.asarray(x_of_m)))
        m_of_x = np.asarray(r6d_to_mat(jnp.asarray(x)))
    # The first two columns, column-major; and back.
    np.testing.assert_array_equal(x_of_m, np.concatenate([m[:, :, 0], m[:, :, 1]], axis=1))
    np.testing.assert_allclose(m_back, m, rtol=0, atol=1e-14)
    # Arbitrary 6D: Gram–Schmidt (Zhou et al. 2019), written here with numpy.
    b1 = _unit(x[:, :3])
    a2 = x[:, 3:] - np.sum(b1 * x[:, 3:], axis=1, keepdims=True) * b1
    b2 = _unit(a2)
    want = np.stack([b1, b2, np.cross(b1, b2)], axis=-1)
    np.testing.assert_allclose(m_of_x, want, rtol=0, atol=1e-12)
    assert_rotations(m_of_x, atol=1e-14)


# --------------------------------------------------------------------------------------
# Near and at π


AXES = np.concatenate([np.eye(3), _unit([[1.0, 1.0, 0.0], [1.0, -2.0, 3.0], [-0.3, 0.2, -1.0]])])


@pytest.mark.parametrize("angle", [np.pi - 1e-6, np.pi], ids=["pi_minus_1e-6", "pi"])
def test_near_and_at_pi(x64, angle):
    r = AXES * angle
    m = Rotation.from_rotvec(r).as_matrix()  # the independent input
    back = np.asarray(mat_to_aa(jnp.asarray(m)))
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), angle, rtol=0, atol=1e-12)
    # The recovered rotation is the input rotation.
    np.testing.assert_allclose(np.asarray(aa_to_mat(jnp.asarray(back))), m, rtol=0, atol=1e-12)
    q = np.asarray(mat_to_quat(jnp.asarray(m)))
    np.testing.assert_allclose(np.asarray(quat_to_mat(jnp.asarray(q))), m, rtol=0, atol=1e-14)
    if angle < np.pi:  # unique below π
        np.testing.assert_allclose(back, r, rtol=0, atol=1e-9)
    else:  # at π, r and −r are the same rotation
        err = np.minimum(np.abs(back - r).max(1), np.abs(back + r).max(1))
        assert np.all(err < 1e-12), err


# --------------------------------------------------------------------------------------
# At the identity: values and derivatives


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_axis_angle_to_matrix_value_and_derivative_at_zero(dtype):
    with jax.enable_x64(dtype == "float64"):
        zero = jnp.zeros(3, dtype)
        assert aa_to_mat(zero).dtype == dtype
        np.testing.assert_array_equal(aa_to_mat(zero), np.eye(3))
        # dR/dr_k at 0 is the generator skew(e_k), in both modes.
        for jac in (jax.jacfwd, jax.jacrev):
            d = np.asarray(jax.jit(jac(rotation.axis_angle_to_matrix))(zero))  # [3, 3, 3(k)]
            assert np.all(np.isfinite(d))
            for k in range(3):
                np.testing.assert_array_equal(d[..., k], skew(np.eye(3)[k]))


def test_check_grads_at_zero_tiny_and_large_angles(x64):
    """Four points checked at once (one compilation): 0, 1e-9, ~1 rad, 3 rad; the map the
    model uses to second order, the quaternion map to first."""
    rng = np.random.default_rng(0)
    r = np.stack([np.zeros(3), 1e-9 * _unit(rng.standard_normal(3)), rng.standard_normal(3),
                  3.0 * _unit(rng.standard_normal(3))])  # fmt: skip
    tolerances = dict(eps=1e-6, atol=1e-7, rtol=1e-7)
    check_grads(aa_to_mat, (jnp.asarray(r),), order=2, modes=("fwd", "rev"), **tolerances)
    check_grads(aa_to_quat, (jnp.asarray(r),), order=1, modes=("fwd", "rev"), **tolerances)


def test_second_derivative_at_zero_is_exact(x64):
    """d²R/dr_i dr_j at 0 = ½ (K_i K_j + K_j K_i), from R = I + K + K²/2 + O(|r|³)."""
    hess = np.asarray(jax.jit(jax.hessian(rotation.axis_angle_to_matrix))(jnp.zeros(3)))
    gens = [skew(e) for e in np.eye(3)]
    for i in range(3):
        for j in range(3):
            want = 0.5 * (gens[i] @ gens[j] + gens[j] @ gens[i])
            np.testing.assert_allclose(hess[:, :, i, j], want, rtol=0, atol=1e-15)


def test_matrix_to_axis_angle_derivative_at_identity(x64):
    eye = jnp.eye(3)
    np.testing.assert_array_equal(mat_to_aa(eye), np.zeros(3))
    for jac in (jax.jacfwd, jax.jacrev):
        d = np.asarray(jax.jit(jac(rotation.matrix_to_axis_angle))(eye))  # [3, 3, 3]
        assert np.all(np.isfinite(d))
        # r ≈ ½ (m21 − m12, m02 − m20, m10 − m01) near I.
        want = np.zeros((3, 3, 3))
        for k, (i, j) in enumerate([(2, 1), (0, 2), (1, 0)]):
            want[k, i, j], want[k, j, i] = 0.5, -0.5
        np.testing.assert_allclose(d, want, rtol=0, atol=1e-15)
        # Along a tangent skew(w) of the rotation group the derivative is w itself.
        w = np.array([0.3, -1.2, 0.7])
        np.testing.assert_allclose(np.einsum("kij,ij->k", d, skew(w)), w, rtol=0, atol=1e-15)


def test_quaternion_conversions_derivative_at_identity(x64):
    dq = np.asarray(jax.jit(jax.jacfwd(rotation.axis_angle_to_quaternion))(jnp.zeros(3)))
    np.testing.assert_allclose(dq, np.concatenate([np.zeros((1, 3)), 0.5 * np.eye(3)]),
                               rtol=0, atol=1e-15)  # fmt: skip
    identity = jnp.array([1.0, 0.0, 0.0, 0.0])
    dr = np.asarray(jax.jit(jax.jacrev(rotation.quaternion_to_axis_angle))(identity))
    np.testing.assert_allclose(dr, np.concatenate([np.zeros((3, 1)), 2.0 * np.eye(3)], 1),
                               rtol=0, atol=1e-15)  # fmt: skip


# --------------------------------------------------------------------------------------
# float32 near small angles (around the Taylor-branch switch θ ≈ 0.0186 in float32)


SMALL_ANGLES = np.array([1e-3, 1e-2, 0.0185, 0.0187, 0.02, 0.05])


def _rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return np.max(np.abs(got - want)) / np.max(np.abs(want))


def test_float32_accuracy_at_small_angles():
    r64 = _unit(np.random.default_rng(1).standard_normal((len(SMALL_ANGLES), 3)))
    r64 = r64 * SMALL_ANGLES[:, None]
    r32 = r64.astype(np.float32)
    with jax.enable_x64(False):
        m32 = np.asarray(aa_to_mat(jnp.asarray(r32)))
        q32 = np.asarray(aa_to_quat(jnp.asarray(r32)))
        aa_m32 = np.asarray(mat_to_aa(jnp.asarray(m32)))
        aa_q32 = np.asarray(quat_to_aa(jnp.asarray(q32)))
    assert m32.dtype == q32.dtype == aa_m32.dtype == np.float32
    with jax.enable_x64(True):  # the same float32 inputs, computed in float64
        m64 = np.asarray(aa_to_mat(jnp.asarray(r32, jnp.float64)))
        q64 = np.asarray(aa_to_quat(jnp.asarray(r32, jnp.float64)))
        aa_m64 = np.asarray(mat_to_aa(jnp.asarray(m32, jnp.float64)))
        aa_q64 = np.asarray(quat_to_aa(jnp.asarray(q32, jnp.float64)))
    for i, theta in enumerate(SMALL_ANGLES):
        np.testing.assert_allclose(m32[i], m64[i], rtol=0, atol=1.2e-7)
        # The part that carries the rotation, R − Rᵀ = 2 sin θ K̂, to float32 precision
        # relative to its own size (not to the 1 on the diagonal).
        anti32, anti64 = m32[i] - m32[i].T, m64[i] - m64[i].T
        assert _rel(anti32, anti64) < 1e-6, (theta, _rel(anti32, anti64))
        assert _rel(q32[i, 1:], q64[i, 1:]) < 1e-6, theta
        assert _rel(aa_m32[i], aa_m64[i]) < 1e-6, (theta, _rel(aa_m32[i], aa_m64[i]))
        assert _rel(aa_q32[i], aa_q64[i]) < 1e-6, theta
        # Round trips in float32 end where they started.
        assert _rel(aa_m32[i], r32[i]) < 1e-6, (theta, _rel(aa_m32[i], r32[i]))
        assert _rel(aa_q32[i], r32[i]) < 1e-6, theta

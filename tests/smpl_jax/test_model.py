"""smpl_jax.SMPL against the independent float64 NumPy reference (tests/smpl_reference.py).

Tolerances: relative error = max |Δ| / max |reference| over a whole output; ≤ 1e-10 in
float64 (the layer and the reference differ only in summation order), ≤ 2e-5 in float32.
Models are random SMPL-format arrays (conftest.make_smpl_arrays, 400 vertices).

Compiling the model is the cost of these tests (about 1 s for a forward pass, several for
a derivative, on a 2-core CPU; `SMPL.__call__` runs one jitted program per input shape),
so the tests share a few input shapes: batches of 5 bodies of 400 vertices.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import smpl_jax
from smpl_jax.io import model_from_arrays
from tests.conftest import make_smpl_arrays
from tests.smpl_reference import rodrigues, smpl_forward_batch

FIELDS = ("vertices", "joints", "rest_joints", "rotations", "transforms", "v_shaped")


def rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def random_axis_angle(rng, shape, angles=None):
    """Random unit axes × angles; angles uniform in [0, π) unless given."""
    axis = rng.standard_normal((*shape, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    if angles is None:
        angles = rng.uniform(0.0, np.pi, shape)
    return axis * np.asarray(angles)[..., None]


def hard_inputs(rng, num_betas):
    """A batch of 5 bodies: zero pose, random, near π, exactly π, tiny angles.

    Returns (betas [5, NB], pose [5, 24, 3] root first, transl [5, 3]); body 0 also has
    zero betas and zero translation.
    """
    pose = np.stack(
        [
            np.zeros((24, 3)),
            random_axis_angle(rng, (24,)),
            random_axis_angle(rng, (24,), np.pi - rng.uniform(0, 1e-3, 24)),
            random_axis_angle(rng, (24,), np.full(24, np.pi)),
            random_axis_angle(rng, (24,), rng.uniform(0, 1e-4, 24)),
        ]
    )
    betas = 2.0 * rng.standard_normal((5, num_betas))
    betas[0] = 0.0
    transl = rng.standard_normal((5, 3))
    transl[0] = 0.0
    return betas, pose, transl


def split_pose(pose):
    """[B, 24, 3] root first → (body_pose [B, 69], global_orient [B, 3])."""
    return pose[:, 1:].reshape(len(pose), 69), pose[:, 0]


# --------------------------------------------------------------------------------------
# The reference itself


def test_reference_rodrigues_matches_scipy():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    rotvecs = np.concatenate(
        [
            random_axis_angle(rng, (50,)),
            random_axis_angle(rng, (5,), np.pi),
            random_axis_angle(rng, (5,), 1e-7),
            np.zeros((1, 3)),
        ]
    )
    ours = np.stack([rodrigues(r) for r in rotvecs])
    theirs = Rotation.from_rotvec(rotvecs).as_matrix()
    assert np.max(np.abs(ours - theirs)) < 1e-14
    assert np.array_equal(rodrigues(np.zeros(3)), np.eye(3))


# --------------------------------------------------------------------------------------
# Forward pass against the reference


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_float64(x64, smpl_arrays, seed):
    arrays = smpl_arrays(seed=seed, num_betas=8)
    body = model_from_arrays(arrays, num_betas=8, dtype=jnp.float64)
    betas, pose, transl = hard_inputs(np.random.default_rng(100 + seed), 8)
    out = body(betas, *split_pose(pose), transl)
    ref = smpl_forward_batch(arrays, betas=betas, pose=pose, transl=transl)
    for name in FIELDS:
        field = getattr(out, name)
        assert field.dtype == jnp.float64, name
        assert rel_err(field, ref[name]) <= 1e-10, (name, rel_err(field, ref[name]))


@pytest.mark.parametrize("seed", [0, 3])
def test_matches_reference_float32(smpl_arrays, seed):
    arrays = smpl_arrays(seed=seed)
    betas, pose, transl = hard_inputs(np.random.default_rng(200 + seed), 10)
    with jax.enable_x64(False):
        body = model_from_arrays(arrays)  # float32 by default
        out = body(betas, *split_pose(pose), transl)  # float64 numpy inputs
    ref = smpl_forward_batch(arrays, betas=betas, pose=pose, transl=transl)
    for name in FIELDS:
        field = getattr(out, name)
        assert field.dtype == jnp.float32, name
        assert rel_err(field, ref[name]) <= 2e-5, (name, rel_err(field, ref[name]))


def test_fewer_betas_are_zero_padded(x64, smpl_arrays):
    arrays = smpl_arrays(seed=4, num_betas=10)
    body = model_from_arrays(arrays, num_betas=10, dtype=jnp.float64)
    betas = np.random.default_rng(4).standard_normal((5, 4))
    out = body(betas=betas)
    ref = smpl_forward_batch(arrays, betas=betas)
    for name in FIELDS:
        assert rel_err(getattr(out, name), ref[name]) <= 1e-10, name
    padded = body(betas=np.pad(betas, ((0, 0), (0, 6))))
    np.testing.assert_array_equal(out.vertices, padded.vertices)


def test_transforms_are_rigid_frames_at_the_joints(x64, smpl_arrays):
    body = model_from_arrays(smpl_arrays(seed=5, num_betas=8), num_betas=8, dtype=jnp.float64)
    betas, pose, transl = hard_inputs(np.random.default_rng(5), 8)
    out = body(betas, *split_pose(pose), transl)
    t = np.asarray(out.transforms)
    np.testing.assert_array_equal(t[..., :3, 3], np.asarray(out.joints))
    np.testing.assert_array_equal(t[..., 3, :], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (5, 24, 4)))
    rot = t[..., :3, :3]
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), eye, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, rtol=0, atol=1e-13)
    # The root's frame is the global orientation, placed at the root joint.
    np.testing.assert_array_equal(rot[:, 0], np.asarray(out.rotations)[:, 0])
    np.testing.assert_allclose(t[:, 0, :3, 3], np.asarray(out.rest_joints)[:, 0] + transl,
                               rtol=0, atol=1e-15)  # fmt: skip


def test_pose2rot_false_equals_axis_angle(x64, smpl_arrays):
    body = model_from_arrays(smpl_arrays(seed=6, num_betas=8), num_betas=8, dtype=jnp.float64)
    betas, pose, transl = hard_inputs(np.random.default_rng(6), 8)
    mats = np.stack([[rodrigues(r) for r in body_pose] for body_pose in pose])  # [5, 24, 3, 3]
    want = body(betas, *split_pose(pose), transl)
    for global_orient in (mats[:, :1], mats[:, 0]):  # [B, 1, 3, 3] and [B, 3, 3]
        got = body(betas, mats[:, 1:], global_orient, transl, pose2rot=False)
        for name in FIELDS:
            assert rel_err(getattr(got, name), getattr(want, name)) <= 1e-13, name


def test_body_pose_layouts_agree(x64, smpl_arrays):
    body = model_from_arrays(smpl_arrays(seed=7, num_betas=8), num_betas=8, dtype=jnp.float64)
    betas, pose, transl = hard_inputs(np.random.default_rng(7), 8)
    flat = body(betas, *split_pose(pose), transl)  # [B, 69], [B, 3]
    nested = body(betas, pose[:, 1:], pose[:, :1], transl)  # [B, 23, 3], [B, 1, 3]
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(flat, name), getattr(nested, name), name)


def test_omitted_inputs_are_zeros(x64, smpl_arrays):
    arrays = smpl_arrays(seed=8)
    body = model_from_arrays(arrays, dtype=jnp.float64)
    none = body()
    zeros = body(np.zeros((1, 10)), np.zeros((1, 69)), np.zeros((1, 3)), np.zeros((1, 3)))
    for name in FIELDS:
        assert getattr(none, name).shape[0] == 1
        np.testing.assert_array_equal(getattr(none, name), getattr(zeros, name), name)
    # The batch size comes from whichever input is given.
    pose = random_axis_angle(np.random.default_rng(8), (5, 23))
    out = body(body_pose=pose)
    assert out.vertices.shape == (5, 400, 3)
    ref = smpl_forward_batch(arrays, pose=np.concatenate([np.zeros((5, 1, 3)), pose], axis=1))
    for name in FIELDS:
        assert rel_err(getattr(out, name), ref[name]) <= 1e-10, name


def test_zero_pose_and_betas_give_the_template(x64, smpl_arrays):
    arrays = smpl_arrays(seed=9)
    body = model_from_arrays(arrays, dtype=jnp.float64)
    out = body()
    # Exact where no rounding can happen: the rotations and the shape blend.
    np.testing.assert_array_equal(out.rotations[0], np.broadcast_to(np.eye(3), (24, 3, 3)))
    np.testing.assert_array_equal(out.transforms[0, :, :3, :3], out.rotations[0])
    np.testing.assert_array_equal(out.v_shaped[0], arrays["v_template"])
    # Skinning sums weights that add up to 1 only to rounding, and posed joints are
    # rebuilt as (J_k − J_parent) + J_parent: equal to a few ulps of 1 m.
    np.testing.assert_allclose(out.vertices[0], arrays["v_template"], rtol=0, atol=4e-16)
    rest = arrays["J_regressor"] @ arrays["v_template"]
    np.testing.assert_allclose(out.joints[0], rest, rtol=0, atol=4e-16)
    np.testing.assert_allclose(out.rest_joints[0], rest, rtol=0, atol=4e-16)


# --------------------------------------------------------------------------------------
# jit, vmap, pytree


def test_eager_jit_and_vmap_agree(x64, smpl_arrays):
    arrays = smpl_arrays(seed=10, num_betas=8)
    body = model_from_arrays(arrays, num_betas=8, dtype=jnp.float64)
    betas, pose, transl = hard_inputs(np.random.default_rng(10), 8)
    args = (betas, *split_pose(pose), transl)

    eager = body(*args)
    jitted = jax.jit(lambda model, *a: model(*a))(body, *args)  # the model as an argument
    # vmap over a leading axis of 5 batches of one body (see test_jit_of_vmap_over_batches
    # for batches of several bodies).
    mapped = jax.jit(jax.vmap(body))(*(a[:, None] for a in args))
    ref = smpl_forward_batch(arrays, betas=betas, pose=pose, transl=transl)
    for name in FIELDS:
        assert rel_err(getattr(eager, name), ref[name]) <= 1e-10, name
        assert rel_err(getattr(jitted, name), getattr(eager, name)) <= 1e-14, name
        assert getattr(mapped, name).shape == (5, 1, *ref[name].shape[1:]), name
        assert rel_err(getattr(mapped, name)[:, 0], getattr(eager, name)) <= 1e-14, name


def test_jit_of_vmap_over_batches(smpl_arrays):
    """jit(vmap(body)) over [N, B] inputs, N, B > 1 (e.g. groups of batches).

    jax/jaxlib 0.10.2 on CPU fails here ("INTERNAL: during context [hlo verifier]
    Expected instruction to have shape equal to f32[3,3,2,3,3], actual shape is
    f32[2,3,3,3,3]") if forward kinematics multiplies gathered operands with a
    dot_general (`jnp.matmul(global_rot[:, parents_of_level], rotations[:, level])`):
    XLA miscompiles such a dot once it has 3 batch dimensions.
    """
    arrays = smpl_arrays(seed=11)
    body = model_from_arrays(arrays)
    pose = random_axis_angle(np.random.default_rng(11), (3, 2, 24)).astype(np.float32)

    def vertices(p):
        return body(body_pose=p[:, 1:], global_orient=p[:, 0]).vertices

    mapped = jax.jit(jax.vmap(vertices))(pose)
    ref = np.stack([smpl_forward_batch(arrays, pose=p)["vertices"] for p in pose])
    assert rel_err(mapped, ref) <= 2e-5


def test_model_is_a_pytree_with_static_parents(smpl_arrays):
    arrays = smpl_arrays(seed=12)
    body = model_from_arrays(arrays)
    leaves = jax.tree_util.tree_leaves(body)
    assert len(leaves) == 8
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert [leaf.shape for leaf in leaves] == [
        (400, 3), (10, 1200), (207, 1200), (24, 400), (400, 24), (600, 3), (24, 3), (10, 72),
    ]  # fmt: skip
    assert any(leaf is body.v_template for leaf in leaves)
    assert body.parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17,
                            18, 19, 20, 21)  # fmt: skip

    other = model_from_arrays(smpl_arrays(seed=13))
    assert jax.tree_util.tree_structure(body) == jax.tree_util.tree_structure(other)
    # A different tree is a different (static) structure, not different data.
    changed = dict(arrays, kintree_table=arrays["kintree_table"].copy())
    changed["kintree_table"][0, 23] = 20
    assert jax.tree_util.tree_structure(model_from_arrays(changed)) != (
        jax.tree_util.tree_structure(body)
    )
    rebuilt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(body), leaves)
    assert rebuilt.parents == body.parents and rebuilt.v_template is body.v_template


def test_model_passes_through_jit_as_an_argument(smpl_arrays):
    arrays_a, arrays_b = smpl_arrays(seed=14), smpl_arrays(seed=15)
    pose = random_axis_angle(np.random.default_rng(14), (5, 23)).astype(np.float32)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def vertices(model, body_pose):
        return model(body_pose=body_pose).vertices

    # Two models of the same shapes: one trace, each model's own arrays used.
    for arrays in (arrays_a, arrays_b):
        ref = smpl_forward_batch(arrays, pose=np.concatenate([np.zeros((5, 1, 3)), pose], 1))
        assert rel_err(vertices(model_from_arrays(arrays), pose), ref["vertices"]) <= 2e-5


# --------------------------------------------------------------------------------------
# Gradients (float64)


@jax.jit
def _loss(body, weights, body_pose, global_orient, betas, transl):
    """A smooth scalar of the vertices: Σ sin(3 v) · weights."""
    out = body(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl)
    return jnp.sum(jnp.sin(3.0 * out.vertices) * weights)


def _grad_setup(posed):
    """(loss of (body_pose [1,69], global_orient [1,3], betas [1,10], transl [1,3]), args).

    Every gradient test uses the same model shapes and `_loss`, so the compiled
    derivatives are shared between them.
    """
    body = model_from_arrays(make_smpl_arrays(seed=16, num_vertices=300), dtype=jnp.float64)
    rng = np.random.default_rng(16)
    weights = jnp.asarray(rng.standard_normal((1, 300, 3)))
    args = (
        random_axis_angle(rng, (1, 23)).reshape(1, 69) if posed else np.zeros((1, 69)),
        random_axis_angle(rng, (1,)) if posed else np.zeros((1, 3)),
        rng.standard_normal((1, 10)) if posed else np.zeros((1, 10)),
        rng.standard_normal((1, 3)) if posed else np.zeros((1, 3)),
    )
    return functools.partial(_loss, body, weights), tuple(jnp.asarray(a) for a in args)


@pytest.mark.parametrize("posed", [False, True], ids=["zero_pose", "random_pose"])
def test_check_grads_wrt_pose_orient_betas_transl(x64, posed):
    """First order, forward and reverse mode, in a random direction of all four inputs.

    (Second order of the whole body costs ~30 s of compilation on 2 cores; it is checked on
    the rotation map, test_rotation.py, where the non-linearity at θ = 0 lives.)
    """
    loss, args = _grad_setup(posed)
    # eps = 1e-6: central-difference truncation ~1e-12, rounding ~1e-16/eps relative. At
    # the zero pose these steps stay inside the Taylor branch of the rotation map.
    check_grads(loss, args, order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-7, rtol=1e-7)
    # Each input on its own: a random direction in one argument, the others fixed.
    _, vjp = jax.vjp(loss, *args)
    grads = vjp(jnp.ones(()))
    rng = np.random.default_rng(17)
    for i, arg in enumerate(args):
        assert np.all(np.isfinite(grads[i]))
        direction = rng.standard_normal(arg.shape)
        h = 1e-5
        plus = [a + h * direction if j == i else a for j, a in enumerate(args)]
        minus = [a - h * direction if j == i else a for j, a in enumerate(args)]
        fd = (loss(*plus) - loss(*minus)) / (2 * h)
        np.testing.assert_allclose(np.sum(grads[i] * direction), fd, rtol=1e-7, atol=1e-8)


def test_pose_gradient_at_zero_pose_equals_finite_differences(x64):
    loss, args = _grad_setup(posed=False)
    _, vjp = jax.vjp(loss, *args)
    grad_pose, grad_orient = vjp(jnp.ones(()))[:2]
    grad = np.concatenate([grad_orient[0], grad_pose[0]])
    assert np.all(np.isfinite(grad))
    h = 1e-6  # central differences: truncation O(h²) ~ 1e-12, rounding ~ 1e-16 / h
    fd = np.zeros(72)
    for k in range(72):
        step = np.zeros(72)
        step[k] = h
        plus = loss(jnp.asarray(step[None, 3:]), jnp.asarray(step[None, :3]), *args[2:])
        minus = loss(jnp.asarray(-step[None, 3:]), jnp.asarray(-step[None, :3]), *args[2:])
        fd[k] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-8)
    assert np.max(np.abs(fd)) > 1e-2  # a real, non-trivial gradient


# --------------------------------------------------------------------------------------
# regress_joints, dtypes


def test_regress_joints_against_numpy(x64):
    rng = np.random.default_rng(18)
    vertices = rng.standard_normal((3, 50, 3))
    regressor = rng.uniform(size=(17, 50))
    want = np.stack([regressor @ v for v in vertices])
    got = smpl_jax.regress_joints(jnp.asarray(vertices), regressor)
    assert got.shape == (3, 17, 3) and got.dtype == jnp.float64
    assert rel_err(got, want) <= 1e-14
    with pytest.raises(ValueError, match=r"regressor has shape \(17, 49\)"):
        smpl_jax.regress_joints(jnp.asarray(vertices), regressor[:, :49])


def test_regress_joints_float32():
    rng = np.random.default_rng(19)
    vertices = rng.standard_normal((2, 50, 3)).astype(np.float32)
    regressor = rng.uniform(size=(14, 50))
    with jax.enable_x64(False):
        got = smpl_jax.regress_joints(jnp.asarray(vertices), regressor)
    assert got.dtype == jnp.float32
    assert rel_err(got, np.stack([regressor @ v for v in vertices])) <= 2e-6


def test_default_dtype_is_float32_and_float64_on_request(smpl_arrays):
    """Output dtypes are checked by the reference tests above; here, the stored arrays."""
    arrays = smpl_arrays(seed=20)
    with jax.enable_x64(False):
        body = model_from_arrays(arrays)
    assert body.dtype == jnp.float32 and body.faces.dtype == jnp.int32
    assert [leaf.dtype for leaf in jax.tree_util.tree_leaves(body)] == [jnp.float32] * 5 + [
        jnp.int32] + [jnp.float32] * 2  # fmt: skip
    with jax.enable_x64(True):
        body = model_from_arrays(arrays, dtype=jnp.float64)
        assert body.dtype == jnp.float64 and body.faces.dtype == jnp.int32
        assert [leaf.dtype for leaf in jax.tree_util.tree_leaves(body)] == [jnp.float64] * 5 + [
            jnp.int32] + [jnp.float64] * 2  # fmt: skip
        # float64 arrays are not a float32 model rounded: they hold the file's values.
        np.testing.assert_array_equal(body.v_template, arrays["v_template"])


# --------------------------------------------------------------------------------------
# Bad inputs (eager: the checks run before any computation)


@functools.cache
def _small_body():
    with jax.enable_x64(False):
        return model_from_arrays(make_smpl_arrays(seed=21, num_vertices=50))


BAD_INPUTS = {
    "body_pose_68": (dict(body_pose=np.zeros((2, 68))), r"body_pose.*\(2, 68\)"),
    "body_pose_22x3": (dict(body_pose=np.zeros((2, 22, 3))), r"body_pose.*\(2, 22, 3\)"),
    "body_pose_3": (dict(body_pose=np.zeros((2, 3))), r"body_pose.*\(2, 3\)"),
    "body_pose_unbatched": (dict(body_pose=np.zeros(69)), r"body_pose.*\(69,\)"),
    "body_pose_aa_with_pose2rot_false": (
        dict(body_pose=np.zeros((2, 23, 3)), pose2rot=False), r"body_pose.*\(2, 23, 3\)"),
    "body_pose_3x3_with_pose2rot_false": (
        dict(body_pose=np.zeros((2, 3, 3)), pose2rot=False), r"body_pose.*\(2, 3, 3\)"),
    "global_orient_2": (dict(global_orient=np.zeros((2, 2))), r"global_orient.*\(2, 2\)"),
    "global_orient_2x3": (dict(global_orient=np.zeros((2, 2, 3))), r"global_orient.*\(2, 2, 3\)"),
    "transl_2": (dict(transl=np.zeros((2, 2))), r"transl.*\(2, 2\)"),
    "betas_too_many": (dict(betas=np.zeros((2, 11))), r"betas has 11 columns.*num_betas=10"),
    "betas_3d": (dict(betas=np.zeros((2, 10, 1))), r"betas must have shape \[B, N\]"),
    "batch_mismatch": (dict(betas=np.zeros((2, 10)), body_pose=np.zeros((3, 69))),
                       r"batch size.*2.*3"),
    "nan_body_pose": (dict(body_pose=np.full((1, 69), np.nan)), r"body_pose contains NaN"),
    "nan_global_orient": (dict(global_orient=np.array([[0.0, np.nan, 0.0]])),
                          r"global_orient contains NaN"),
    "nan_betas": (dict(betas=np.array([[np.nan] + [0.0] * 9])), r"betas contains NaN"),
    "inf_transl": (dict(transl=np.array([[0.0, np.inf, 0.0]])), r"transl contains NaN or inf"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_value_error_naming_the_argument(case):
    kwargs, pattern = BAD_INPUTS[case]
    with jax.enable_x64(False), pytest.raises(ValueError, match=pattern):
        _small_body()(**kwargs)


def test_batch_mismatch_message_names_the_arguments():
    """docs/design.md: a user error names the thing; here, which input has which batch size."""
    with jax.enable_x64(False), pytest.raises(ValueError) as info:
        _small_body()(betas=np.zeros((2, 10)), body_pose=np.zeros((3, 69)))
    message = str(info.value)
    assert "betas" in message and "body_pose" in message, message


def test_nan_check_is_eager_only():
    """Under jit the inputs are tracers: no check (it would need a host round trip)."""
    with jax.enable_x64(False):
        nan_pose = jnp.full((1, 69), jnp.nan)
        out = jax.jit(lambda model, p: model(body_pose=p))(_small_body(), nan_pose)
    assert out.vertices.shape == (1, 50, 3) and bool(jnp.all(jnp.isnan(out.vertices)))


def test_constants_closed_over_inside_jit_are_accepted_and_checked():
    """A concrete input inside a jitted function (a fixed orientation closed over) is
    validated with NumPy, not traced into a boolean (TracerBoolConversionError)."""
    with jax.enable_x64(False):
        model, fixed = _small_body(), jnp.full((2, 3), 0.1)
        grad = jax.jit(jax.grad(lambda p: model(body_pose=p, global_orient=fixed).vertices.sum()))
        assert grad(jnp.zeros((2, 69))).shape == (2, 69)
        bad = np.full((2, 3), np.inf)
        with pytest.raises(ValueError, match="global_orient contains NaN or infinite"):
            jax.jit(lambda p: model(body_pose=p, global_orient=bad).vertices)(jnp.zeros((2, 69)))

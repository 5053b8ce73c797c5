"""HKMR and HMR regressors: shapes, the dependency structure of §3.2, scan, sizes."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hkmr_jax.models as models
from hkmr_jax.models import hkmr, params
from smpl_jax import rotation, skeleton

FEATURES = 16
RESNET50_PARAMS = 23_508_032  # torchvision resnet50 without `fc` (also asserted in test_encoder)


def _count(module):
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _with_params(module, *suffixes):
    """A pure function (new values of the Params at the given path suffixes) → module.

    E.g. `_with_params(model, ("root_chain", "forward_kernel"))`: lets `jax.jacobian`
    differentiate w.r.t. individual layers without mutating the module under a trace.
    """
    filters = [lambda path, _, n=n: tuple(map(str, path[-len(n) :])) == n for n in suffixes]
    graph, *parts, rest = nnx.split(module, *filters, ...)
    for part, n in zip(parts, suffixes):
        assert len(jax.tree.leaves(part)) == 1, n

    def build(*values):
        new = [jax.tree.map(lambda _, v=v: v, part) for part, v in zip(parts, values)]
        return nnx.merge(graph, *new, rest)

    return build


def _hkmr(**kw):
    kw.setdefault("embed_dim", 8)
    return hkmr.HKMR(FEATURES, params.MeanParams.default(), rngs=nnx.Rngs(0), **kw)


def _features(b=2, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (b, FEATURES))


@pytest.mark.parametrize("representation", ["axis_angle", "6d"])
@pytest.mark.parametrize("name", ["hkmr", "hmr"])
def test_output_shapes_and_valid_rotations(name, representation):
    if name == "hkmr":
        model = _hkmr(outer_iters=3, inner_iters=2, representation=representation)
    else:
        model = models.HMR(FEATURES, params.MeanParams.default(), hidden=8,
                           representation=representation, rngs=nnx.Rngs(0))  # fmt: skip
    out = model(_features(b=5))
    assert out.pose.shape == (3, 5, 24, 3)
    assert out.rotmat.shape == (3, 5, 24, 3, 3)
    assert out.betas.shape == (3, 5, 10)
    assert out.camera.shape == (3, 5, 3)
    r = out.rotmat
    np.testing.assert_allclose(r @ jnp.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(rotation.axis_angle_to_matrix(out.pose), r, atol=1e-5)
    assert out.final.pose.shape == (5, 24, 3)


def test_starts_near_the_mean_parameters():
    mean = params.MeanParams.default(global_orient=(np.pi, 0, 0), scale=0.8)
    model = hkmr.HKMR(FEATURES, mean, embed_dim=8, outer_iters=1, inner_iters=1,
                      rngs=nnx.Rngs(0))  # fmt: skip
    out = model(_features()).final
    # Residual layers start small: the first estimate is within a few degrees of the mean.
    np.testing.assert_allclose(out.pose[:, 0], np.broadcast_to([np.pi, 0, 0], (2, 3)), atol=0.1)
    np.testing.assert_allclose(out.camera[:, 0], 0.8, atol=0.1)


def _forward_pass_chain(history, k_len=5):
    """One chain, one forward pass: θ out as a function of the per-joint layers."""
    group = hkmr.ChainGroup([k_len], feature_dim=FEATURES, num_betas=10, cond_dim=0,
                            embed_dim=8, pose_size=3, history=history, passes="forward",
                            rngs=nnx.Rngs(1))  # fmt: skip
    build = _with_params(group, ("forward_kernel",), ("forward_bias",))
    features = _features(b=1)
    theta0 = jnp.zeros((1, 1, k_len, 3))

    def run(kernel, bias):
        g = build(kernel, bias)
        return g(g.project_features(features), jnp.zeros((1, 10)), theta0, None, 1)[0, 0]

    return run, group.forward_kernel[...], group.forward_bias[...] + 0.3


def test_forward_pass_joint_ignores_later_joints_layers():
    run, kernel, bias = _forward_pass_chain("all")
    jac = jax.jit(jax.jacobian(run, argnums=0))(kernel, bias)  # [K, 3] ← [1, K, in, 3]
    per_layer = np.abs(np.asarray(jac)).sum(axis=(1, 2, 4, 5))  # [joint i, layer j]
    k = per_layer.shape[0]
    for i in range(k):
        for j in range(k):
            assert (per_layer[i, j] > 0) == (j <= i), (i, j)


def test_history_all_vs_previous():
    # Silence joint 2's layer: with 'previous', joint 3 then sees only zeros from its
    # predecessor and cannot depend on joints 0-1; with 'all' it still does.
    for history, expect_dependence in (("all", True), ("previous", False)):
        run, kernel, bias = _forward_pass_chain(history)
        kernel = kernel.at[:, 2].set(0.0)
        bias = bias.at[:, 2].set(0.0)
        jac = np.asarray(jax.jit(jax.jacobian(run, argnums=0))(kernel, bias))
        on_earlier = np.abs(jac[3][:, :, :2]).sum()  # θ_3 w.r.t. layers f_0, f_1
        assert bool(on_earlier > 0) == expect_dependence, history


def test_backward_pass_runs_from_the_last_joint():
    group = hkmr.ChainGroup([4], feature_dim=FEATURES, num_betas=10, cond_dim=0, embed_dim=8,
                            pose_size=3, passes="forward_backward", rngs=nnx.Rngs(2))  # fmt: skip
    group.forward_kernel[...] = jnp.zeros_like(group.forward_kernel[...])  # isolate backward
    group.backward_bias[...] = group.backward_bias[...] + 0.3
    build = _with_params(group, ("backward_kernel",))
    features = _features(b=1)

    def run(kernel):
        g = build(kernel)
        theta0 = jnp.zeros((1, 1, 4, 3))
        return g(g.project_features(features), jnp.zeros((1, 10)), theta0, None, 1)[0, 0]

    jac = jax.jit(jax.jacobian(run))(group.backward_kernel[...])
    per_layer = np.abs(np.asarray(jac)).sum(axis=(1, 2, 4, 5))
    for i in range(4):
        for j in range(4):
            # Backward: joint i depends on b_j only for j ≥ i (later joints come first).
            assert (per_layer[i, j] > 0) == (j >= i), (i, j)


def test_padded_child_joints_are_exact_zeros():
    model = _hkmr(outer_iters=1, inner_iters=2)
    build = _with_params(model, ("child_chains", "forward_kernel"))
    head = hkmr.CHILD_CHAINS.index("head")
    feats = _features()
    kernel = model.child_chains.forward_kernel[...]
    jac = np.asarray(jax.jit(jax.jacobian(lambda k: build(k)(feats).pose))(kernel))
    # The head has 2 joints; slots 2-4 of its chain are padding and influence nothing.
    assert np.abs(jac[..., head, 2:, :, :]).sum() == 0.0
    assert np.abs(jac[..., head, :2, :, :]).sum() > 0.0


def test_child_chains_depend_on_root_not_on_each_other():
    model = _hkmr(outer_iters=1, inner_iters=1)
    build = _with_params(
        model, ("root_chain", "forward_kernel"), ("child_chains", "forward_kernel")
    )
    feats = _features()
    names = hkmr.CHILD_CHAINS

    def run(root_kernel, child_kernel):
        return build(root_kernel, child_kernel)(feats).pose[0]  # first outer step, [B, 24, 3]

    j_root, j_child = jax.device_get(
        jax.jit(jax.jacobian(run, argnums=(0, 1)))(
            model.root_chain.forward_kernel[...], model.child_chains.forward_kernel[...]
        )
    )
    for c, name in enumerate(names):
        for joint in skeleton.CHAINS[name]:
            assert np.abs(j_root[:, joint]).sum() > 0, (name, "root")
            for c2 in range(len(names)):
                dep = np.abs(j_child[:, joint, :, c2]).sum()
                assert bool(dep > 0) == (c2 == c), (name, names[c2])
    for joint in skeleton.CHAINS["root"]:  # the root is not conditioned on its children
        assert np.abs(j_child[:, joint]).sum() == 0.0


def _equation_count(jaxpr):
    return len(jaxpr.eqns) + sum(
        _equation_count(sub.jaxpr if hasattr(sub, "jaxpr") else sub)
        for eqn in jaxpr.eqns for sub in jax.extend.core.jaxprs_in_params(eqn.params)
    )  # fmt: skip


@pytest.mark.parametrize("name", ["hkmr", "hmr"])
def test_program_uses_scan_and_does_not_grow_with_iterations(name):
    def jaxpr(iters):
        if name == "hkmr":
            model = _hkmr(outer_iters=iters, inner_iters=iters)
        else:
            model = models.HMR(FEATURES, params.MeanParams.default(), hidden=8, iters=iters,
                               rngs=nnx.Rngs(0))  # fmt: skip
            model.eval()
        graph, state = nnx.split(model)
        return jax.make_jaxpr(lambda s, x: nnx.merge(graph, s)(x))(state, _features()).jaxpr

    small, large = jaxpr(2), jaxpr(5)
    assert "scan" in str(small)
    assert _equation_count(small) == _equation_count(large)


def test_ablation_switches_change_the_model():
    base = _count(_hkmr())
    assert _count(_hkmr(passes="forward")) < base  # no b_i layers
    assert _count(_hkmr(history="previous")) < base  # narrower f_i inputs
    with pytest.raises(ValueError, match="history"):
        _hkmr(history="everything")
    with pytest.raises(ValueError, match="passes"):
        _hkmr(passes="backward")
    with pytest.raises(ValueError, match="representation"):
        _hkmr(representation="euler")


def test_parameter_counts_match_the_paper():
    # Paper Table 1: HKMR 26.2M, HMR 26.8M with ResNet-50; we aim within 5%.
    mean = params.MeanParams.default()
    hkmr_total = _count(nnx.eval_shape(lambda: hkmr.HKMR(2048, mean, rngs=nnx.Rngs(0))))
    hmr_total = _count(nnx.eval_shape(lambda: models.HMR(2048, mean, rngs=nnx.Rngs(0))))
    assert hkmr_total == 2_714_725 and hmr_total == 3_321_941  # printed in the README
    assert abs(hkmr_total + RESNET50_PARAMS - 26.2e6) / 26.2e6 < 0.05
    assert abs(hmr_total + RESNET50_PARAMS - 26.8e6) / 26.8e6 < 0.05


def test_create_from_config_and_bad_names():
    config = {"name": "hkmr", "encoder": {"name": "small_cnn"},
              "regressor": {"embed_dim": 8, "outer_iters": 2, "inner_iters": 1}}  # fmt: skip
    model = models.create(config, nnx.Rngs(0))
    out = model(jnp.zeros((2, 64, 64, 3)))
    assert out.pose.shape == (2, 2, 24, 3)
    with pytest.raises(ValueError, match="unknown model name"):
        models.create({"name": "vibe"}, nnx.Rngs(0))
    with pytest.raises(ValueError, match="mean_params"):
        models.create({**config, "mean_params": {"mean": 1}}, nnx.Rngs(0))


def test_mean_params_from_spin_npz(tmp_path):
    # SPIN stores each joint's 6D as a (3, 2) matrix flattened row-major (columns
    # interleaved); build one from known rotations and read it back.
    aa = np.random.default_rng(0).normal(size=(24, 3)) * 0.5
    mats = np.asarray(rotation.axis_angle_to_matrix(jnp.asarray(aa)))
    spin6d = mats[:, :, :2].reshape(24, 6).ravel()
    np.savez(tmp_path / "smpl_mean_params.npz", pose=spin6d, shape=np.arange(10.0),
             cam=np.array([0.9, 0.0, 0.0]))  # fmt: skip
    mean = params.MeanParams.from_spin_npz(tmp_path / "smpl_mean_params.npz")
    np.testing.assert_allclose(rotation.axis_angle_to_matrix(jnp.asarray(mean.pose)), mats,
                               atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(mean.betas, np.arange(10.0))
    with pytest.raises(FileNotFoundError, match="smpl_mean_params"):
        params.MeanParams.from_spin_npz(tmp_path / "missing.npz")


def test_mean_params_start_from_the_synthetic_laws_mean_pose():
    from hkmr_jax.data import synthetic
    from hkmr_jax.models import mesh_regressor

    rest = mesh_regressor.mean_params_from_config({"global_orient": (np.pi, 0, 0)})
    np.testing.assert_array_equal(rest.pose[1:], 0.0)
    for spread in (None, 1 / 3):
        config = {"body_pose": "synthetic", "pose_spread": spread}
        mean = mesh_regressor.mean_params_from_config(config)
        expected = synthetic.mean_body_pose(spread or synthetic.POSE_SPREAD)
        np.testing.assert_array_equal(mean.pose[1:], expected)
        assert np.abs(expected).max() > 0.1  # not the rest pose (the elbows bend)
    with pytest.raises(ValueError, match="'rest' or 'synthetic'"):
        mesh_regressor.mean_params_from_config({"body_pose": "t-pose"})
    # The model takes the mean body pose as an array: no data code involved.
    given = np.linspace(-0.5, 0.5, 69, dtype=np.float32).reshape(23, 3)
    for name in ("rest", "synthetic"):
        mean = mesh_regressor.mean_params_from_config({"body_pose": name}, body_pose=given)
        np.testing.assert_array_equal(mean.pose[1:], given)
        np.testing.assert_array_equal(mean.pose[0], 0.0)
    model = models.create({"name": "hmr", "encoder": {"name": "small_cnn"}}, nnx.Rngs(0),
                          body_pose=given.ravel())  # fmt: skip
    np.testing.assert_array_equal(np.asarray(model.regressor.init_state[...][3:72]), given.ravel())

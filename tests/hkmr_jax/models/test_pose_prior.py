"""Tests for hkmr_jax.models.pose_prior.

Reference values and their origin:
* parameter counts are Σ (fan_in + 1) · fan_out over the layers listed in docs/pose_prior.md:
  VAE 69·512+512 + 512·512+512 + 2·(512·32+32) + 32·512+512 + 512·512+512 + 512·138+138
  = 681,674; discriminator (9·32+32) + (32·32+32) + 23·(32+1) + (736·1024+1024)
  + (1024·1024+1024) + (1024+1) + (10·10+10) + (10·5+5) + (5+1) = 1,807,619.
* KL values are written out by hand from ½ Σ (μ² + σ² − 1 − log σ²).
* least-squares GAN losses are written out by hand from HMR's trainer
  (mean over the batch of the sum over the 25 outputs).
* the discriminator's forward pass is compared with an independent float64 NumPy
  implementation written from HMR's `Discriminator_separable_rotations`.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.test_util import check_grads

from hkmr_jax.models.pose_prior import (
    LOGVAR_BOUND,
    PoseDiscriminator,
    PoseVAE,
    kl_divergence,
    load_amass_poses,
)
from smpl_jax import rotation


def _num_params(module) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _abstract(cls, **kwargs):
    """``cls(**kwargs)`` with ShapeDtypeStruct parameters: nothing is initialised."""
    return nnx.eval_shape(lambda: cls(rngs=nnx.Rngs(0), **kwargs))


def _numpy_filled(cls, seed=0, **kwargs):
    """``cls(**kwargs)`` with NumPy-drawn parameters (kernels N(0, 1/fan_in), biases N(0, 0.01)).

    Initialising with JAX compiles one random-number program per parameter shape, seconds
    on two CPU cores; the tests that do not test the initialisation skip it.
    """
    model = _abstract(cls, **kwargs)
    state = nnx.state(model, nnx.Param)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = path[-1].key
        if leaf.ndim == 1:
            return jnp.asarray(0.1 * rng.standard_normal(leaf.shape), leaf.dtype)
        fan_in = leaf.shape[1] if name == "joint_head_kernel" else leaf.shape[0]
        return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(fan_in), leaf.dtype)

    pure = jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return model


def _like(vae, **kwargs):
    """A PoseVAE built with ``kwargs`` holding a copy of ``vae``'s parameters."""
    out = _abstract(PoseVAE, hidden_dim=vae.hidden_dim, latent_dim=vae.latent_dim, **kwargs)
    nnx.update(out, jax.tree.map(jnp.copy, nnx.state(vae)))
    return out


@pytest.fixture(scope="module")
def vae():
    """A test-sized VAE (hidden 64, latent 32) with random parameters; do not modify it.

    Its decoder output layer is not the near-identity initialisation, so decoded
    rotations are arbitrary, as validity tests need.
    """
    return _numpy_filled(PoseVAE, hidden_dim=64)


# Eager JAX compiles every primitive on first use, seconds in all on two CPU cores: the
# tests draw data with NumPy, check results with NumPy, and call JAX through `jax.jit`.
_RNG = np.random.default_rng(100)
# Fixed inputs, so that `_vae_outputs` compiles once for the whole module.
POSE = jnp.asarray(0.3 * _RNG.standard_normal((8, 69)), jnp.float32)
Z = jnp.asarray(3.0 * _RNG.standard_normal((8, 32)), jnp.float32)
_kl = jax.jit(kl_divergence)
_aa_to_matrix = jax.jit(rotation.axis_angle_to_matrix)


@nnx.jit
def _vae_outputs(vae, pose, z, key):
    """Every PoseVAE method on one input, in one compiled program."""
    recon, mu, logvar = vae(pose, key)
    loss, metrics = vae.elbo_loss(pose, key, 0.5)
    return {
        "recon": recon,
        "mu": mu,
        "logvar": logvar,
        "loss": loss,
        "metrics": metrics,
        "encode": vae.encode(pose),
        "kl": vae.kl(pose),
        "decode": vae.decode(z),
        "matrices": vae.decode_matrices(z),
    }


# --------------------------------------------------------------------------- VAE


def test_vae_default_size_parameter_count_and_shapes():
    abstract = _abstract(PoseVAE)
    assert _num_params(abstract) == 681_674
    pose = jax.ShapeDtypeStruct((5, 69), jnp.float32)
    z = jax.ShapeDtypeStruct((5, 32), jnp.float32)
    key = jax.random.key(1)
    run = lambda f, *args: nnx.eval_shape(f, abstract, *args)
    mu, logvar = run(lambda m, x: m.encode(x), pose)
    assert mu.shape == logvar.shape == (5, 32)
    assert run(lambda m, x: m.decode(x), z).shape == (5, 69)
    assert run(lambda m, x: m.decode_matrices(x), z).shape == (5, 23, 3, 3)
    recon, mu, logvar = run(lambda m, x: m(x, key), pose)
    assert (recon.shape, mu.shape, logvar.shape) == ((5, 69), (5, 32), (5, 32))
    assert run(lambda m, x: m.kl(x), pose).shape == (5,)
    loss, metrics = run(lambda m, x: m.elbo_loss(x, key, 0.5), pose)
    assert loss.shape == () and set(metrics) == {"loss", "reconstruction", "kl", "geodesic_deg"}


def test_vae_outputs_are_consistent(vae):
    out = _vae_outputs(vae, POSE, Z, jax.random.key(1))
    chex.assert_shape([out["recon"], out["decode"]], (8, 69))
    chex.assert_shape([out["mu"], out["logvar"]], (8, 32))
    chex.assert_trees_all_equal((out["mu"], out["logvar"]), out["encode"])
    metrics = out["metrics"]
    assert float(out["loss"]) == float(metrics["loss"])
    np.testing.assert_allclose(
        out["loss"], metrics["reconstruction"] + 0.5 * metrics["kl"], rtol=1e-6
    )
    kl = _kl(out["mu"], out["logvar"])
    np.testing.assert_allclose(metrics["kl"], kl.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["kl"], kl, rtol=1e-5)
    # The log variance is bounded by construction, even for absurd inputs.
    wild = _vae_outputs(vae, jnp.full_like(POSE, 1e4), Z, jax.random.key(1))
    assert np.max(np.abs(wild["logvar"])) <= LOGVAR_BOUND
    chex.assert_tree_all_finite(wild["kl"])


def test_vae_is_deterministic_given_the_key(vae):
    a = _vae_outputs(vae, POSE, Z, jax.random.key(1))
    b = _vae_outputs(vae, POSE, Z, jax.random.key(1))
    c = _vae_outputs(vae, POSE, Z, jax.random.key(2))
    chex.assert_trees_all_equal(a, b)
    chex.assert_trees_all_equal((a["mu"], a["logvar"]), (c["mu"], c["logvar"]))
    assert np.max(np.abs(np.asarray(a["recon"]) - c["recon"])) > 1e-3  # another sample of z
    assert float(a["loss"]) != float(c["loss"])


def test_vae_rejects_bad_shapes(vae):
    with pytest.raises(ValueError, match=r"pose must have shape \[B, 69\]"):
        vae.encode(jnp.zeros((2, 72)))
    with pytest.raises(ValueError, match=r"pose must have shape \[B, 69\]"):
        vae.kl(jnp.zeros((69,)))
    with pytest.raises(ValueError, match=r"z must have shape \[B, 32\]"):
        vae.decode(jnp.zeros((2, 16)))
    with pytest.raises(ValueError, match="dropout_rate"):
        PoseVAE(dropout_rate=1.0, rngs=nnx.Rngs(0))


def test_kl_divergence_closed_form(x64):
    mu = np.array([[0.0, 0.0], [1.0, -2.0], [0.5, 0.0]])
    logvar = np.array([[0.0, 0.0], [0.0, 0.0], [math.log(4.0), math.log(0.25)]])
    # Row 1: ½(1 + 4) = 2.5. Row 2: ½[(0.25 + 4 − 1 − ln 4) + (0 + 0.25 − 1 − ln 0.25)]
    #        = ½(3.25 − 0.75 − ln 4 + ln 4) = 1.25 (the log terms cancel).
    expected = np.array([0.0, 2.5, 1.25])
    value = _kl(mu, logvar)
    assert value.dtype == jnp.float64
    np.testing.assert_allclose(value, expected, rtol=1e-14, atol=0)
    x = 3.0 * np.random.default_rng(0).standard_normal((2, 3, 8))
    assert np.all(np.asarray(_kl(x[0], x[1])) >= 0)


def test_kl_divergence_float32_zero_and_near_unit_variance():
    # Exactly zero at the prior itself.
    assert float(_kl(np.zeros((1, 32), np.float32), np.zeros((1, 32), np.float32))[0]) == 0.0
    # σ² − 1 − log σ² = ε²/2 + ε³/6 + … for log σ² = ε; in float32, exp(ε) − 1 − ε would
    # lose it to rounding (ulp(1) ≈ 1.2e-7 ≫ 5e-9), expm1(ε) − ε keeps 3 digits.
    eps = 1e-4
    value = _kl(np.zeros((1, 32), np.float32), np.full((1, 32), eps, np.float32))[0]
    np.testing.assert_allclose(value, 32 * 0.5 * (eps**2 / 2 + eps**3 / 6), rtol=1e-2)


def test_reparameterisation_is_a_function_of_the_key():
    reparameterize = jax.jit(PoseVAE.reparameterize)
    # n draws at once: the key fixes every one of them, and their moments are N(μ, σ²)'s.
    n = 40_000
    mu = np.broadcast_to(np.array([1.0, -2.0, 0.0], np.float32), (n, 3))
    logvar = np.broadcast_to(np.log(np.array([1.0, 4.0, 0.01], np.float32)), (n, 3))
    a = reparameterize(mu, logvar, jax.random.key(3))
    b = reparameterize(mu, logvar, jax.random.key(3))
    c = reparameterize(mu, logvar, jax.random.key(4))
    chex.assert_trees_all_equal(a, b)
    assert np.all(np.asarray(a[:100]) != c[:100])
    # z ~ N(μ, σ²): check the moments over many draws (standard error of the mean σ/√n).
    z = np.asarray(a, np.float64)
    sigma = np.array([1.0, 2.0, 0.1])
    np.testing.assert_allclose(z.mean(0), mu[0], atol=float(4 * sigma.max() / math.sqrt(n)))
    np.testing.assert_allclose(z.std(0), sigma, rtol=0.02)


def test_dropout_only_with_an_explicit_key(vae):
    dropout_vae = _like(vae, dropout_rate=0.5)

    @nnx.jit
    def run(m, key, other_key):
        return {
            "eval": m(POSE, key),
            "train": m(POSE, key, train=True),
            "train_again": m(POSE, key, train=True),
            "train_other": m(POSE, other_key, train=True),
            "kl": m.kl(POSE),
        }

    out = run(dropout_vae, jax.random.key(1), jax.random.key(2))
    # train=False (the default) and kl: no dropout, exactly as the same model with rate 0.
    reference = _vae_outputs(vae, POSE, Z, jax.random.key(1))
    chex.assert_trees_all_equal(
        (out["eval"], out["kl"]),
        ((reference["recon"], reference["mu"], reference["logvar"]), reference["kl"]),
    )
    chex.assert_trees_all_equal(out["train"], out["train_again"])  # masks from the key
    assert np.max(np.abs(np.asarray(out["train"][1]) - reference["mu"])) > 1e-3
    assert np.max(np.abs(np.asarray(out["train_other"][1]) - out["train"][1])) > 1e-3


def test_decoded_poses_are_valid_rotations(vae):
    out = _vae_outputs(vae, POSE, Z, jax.random.key(1))
    matrices = np.asarray(out["matrices"], np.float64)
    eye = np.broadcast_to(np.eye(3), matrices.shape)
    np.testing.assert_allclose(np.swapaxes(matrices, -1, -2) @ matrices, eye, atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-5)
    assert np.std(matrices[..., 0, 0]) > 0.2  # varied rotations, not the identity
    pose = out["decode"].reshape(8, 23, 3)
    assert np.linalg.norm(pose, axis=-1).max() <= math.pi + 1e-5
    # Back to matrices: the axis-angle output is the same rotation.
    np.testing.assert_allclose(_aa_to_matrix(pose), matrices, atol=1e-5)


def test_elbo_reconstruction_is_the_rotation_matrix_distance(vae):
    # The same key draws the same z in elbo_loss and __call__: the reconstruction term is
    # Σ‖R̂ − R‖²_F of __call__'s output, and ‖R̂ − R‖²_F = 4(1 − cos Δθ) links it to the
    # reported geodesic angle.
    out = _vae_outputs(vae, POSE, Z, jax.random.key(1))
    r_hat = _aa_to_matrix(out["recon"].reshape(8, 23, 3))
    r = _aa_to_matrix(POSE.reshape(8, 23, 3))
    frob = np.sum((np.asarray(r_hat, np.float64) - np.asarray(r)) ** 2, axis=(-2, -1))
    metrics = out["metrics"]
    np.testing.assert_allclose(metrics["reconstruction"], frob.sum(-1).mean(), rtol=1e-4)
    angle = np.arccos(np.clip(1.0 - frob / 4.0, -1.0, 1.0))
    np.testing.assert_allclose(metrics["geodesic_deg"], np.degrees(angle.mean()), rtol=1e-3)


def test_vae_training_lowers_the_elbo_and_separates_poses():
    """200 Adam steps of the real initialisation on Gaussian poses (std 0.1 rad).

    The reconstruction floor of a decoder that returns the mean pose is
    E Σ_joints ‖R(m + δ) − R(m)‖²_F ≈ Σ 2‖δ‖² = 23 · 2 · 3 · 0.1² = 1.38.
    """
    rng = np.random.default_rng(0)
    mean = jnp.asarray(rng.uniform(-0.5, 0.5, 69), jnp.float32)
    vae = PoseVAE(hidden_dim=64, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(vae)
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)
    kl_weight = 0.01

    @jax.jit
    def step(params, opt_state, key):
        data_key, sample_key = jax.random.split(key)
        pose = mean + 0.1 * jax.random.normal(data_key, (64, 69))
        loss_fn = lambda p: nnx.merge(graphdef, p).elbo_loss(pose, sample_key, kl_weight)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    @jax.jit
    def evaluate(params, in_dist, wild, z):
        model = nnx.merge(graphdef, params)
        return model.kl(in_dist), model.kl(wild), model.decode(z)

    in_dist = np.asarray(mean) + 0.1 * rng.standard_normal((256, 69), np.float32)
    wild = rng.uniform(-math.pi, math.pi, (256, 69)).astype(np.float32)
    z = rng.standard_normal((4, 32)).astype(np.float32)
    # The untrained decoder starts near the rest pose (identity-6D bias, small kernel):
    # every axis-angle component of decoded z ~ N(0, I) is within 0.5 rad of 0 (0.18 seen).
    _, _, decoded = evaluate(params, in_dist, wild, z)
    assert np.max(np.abs(decoded)) < 0.5

    history = []
    for key in jax.random.split(jax.random.key(1), 200):
        params, opt_state, metrics = step(params, opt_state, key)
        history.append(metrics)
    first = np.mean([float(m["loss"]) for m in history[:5]])
    last = np.mean([float(m["loss"]) for m in history[-20:]])
    # Seen (CPU): first 11.2, last 1.44, final geodesic error 9.4°; KL of in-distribution
    # poses ≤ 0.69, of uniform ±π poses ≥ 5.9 (means 0.45 and 24).
    assert first > 5.0, first  # decoding ≈ the rest pose for poses ~0.3 rad per axis away
    assert last < 0.25 * first, (first, last)
    assert last < 1.6, last  # near the 1.38 floor above
    assert float(history[-1]["geodesic_deg"]) < 12.0

    kl_in, kl_wild, _ = evaluate(params, in_dist, wild, z)
    chex.assert_tree_all_finite((kl_in, kl_wild))
    assert float(kl_in.max()) < float(kl_wild.min()), (kl_in.max(), kl_wild.min())
    assert float(kl_wild.mean()) > 10 * float(kl_in.mean())


def test_kl_gradient_flows_to_the_pose_only(vae, x64):
    graphdef, state = nnx.split(vae)
    vae64 = nnx.merge(graphdef, jax.tree.map(lambda x: x.astype(jnp.float64), state))
    pose = jnp.asarray(0.5 * np.random.default_rng(0).standard_normal((4, 69)))
    kl_sum = jax.jit(lambda q: vae64.kl(q).sum())
    # d KL / d pose: finite (also at the zero pose), non-zero, equal to finite differences.
    grad_pose = jax.jit(jax.grad(kl_sum))
    chex.assert_tree_all_finite(grad_pose(jnp.zeros_like(pose)))
    grad = grad_pose(pose)
    chex.assert_tree_all_finite(grad)
    assert np.abs(grad).max() > 1e-3
    check_grads(kl_sum, (pose,), order=1, modes=("rev",))

    # Frozen (the default): the prior's parameters receive exactly zero gradient.
    @nnx.jit
    def param_grads(model):
        frozen = nnx.grad(lambda m: m.kl(pose).sum())(model)
        live = nnx.grad(lambda m: m.kl(pose, frozen=False).sum())(model)
        return frozen, live

    frozen, live = param_grads(vae64)
    assert all(np.all(np.asarray(g) == 0.0) for g in jax.tree.leaves(frozen))
    assert np.abs(live["enc_fc1"]["kernel"][...]).max() > 0


def test_frozen_prior_inside_a_model_stays_unchanged(vae):
    """A regressor with the prior as a submodule, trained on L_KL with AdamW.

    Weight decay would move parameters even with zero gradients, so the `wrt` filter must
    leave the prior out; the prior's parameters must come out bit-identical.
    """

    class Toy(nnx.Module):
        def __init__(self, prior, rngs):
            self.regressor = nnx.Linear(8, 69, rngs=rngs)
            self.pose_prior = prior

    model = Toy(_like(vae), nnx.Rngs(0))
    prior_before = jax.tree.map(jnp.copy, nnx.state(model.pose_prior, nnx.Param))
    wrt = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("pose_prior")))
    optimizer = nnx.Optimizer(model, optax.adamw(1e-2, weight_decay=0.1), wrt=wrt)
    features = jnp.asarray(np.random.default_rng(0).standard_normal((16, 8)), jnp.float32)

    @nnx.jit
    def train_step(model, optimizer):
        loss_fn = lambda m: m.pose_prior.kl(m.regressor(features)).mean()
        loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, wrt))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses
    chex.assert_trees_all_equal(nnx.state(model.pose_prior, nnx.Param), prior_before)


# ----------------------------------------------------------------- discriminator


def _numpy_discriminator(disc, rotmats, betas):
    """HMR's discriminator in float64 NumPy from `disc`'s parameters: [B,23,9], [B,10]."""
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), nnx.state(disc, nnx.Param))
    p = nnx.to_pure_dict(p)
    relu = lambda x: np.maximum(x, 0.0)
    dense = lambda x, layer: x @ layer["kernel"] + layer["bias"]
    x = relu(dense(relu(dense(rotmats, p["joint_fc1"])), p["joint_fc2"]))  # [B, 23, F]
    joints = np.stack(
        [x[:, j] @ p["joint_head_kernel"][j] + p["joint_head_bias"][j] for j in range(23)],
        axis=1,
    )
    h = relu(dense(x.reshape(len(x), -1), p["pose_fc1"]))
    pose = dense(relu(dense(h, p["pose_fc2"])), p["pose_out"])
    s = relu(dense(relu(dense(betas, p["shape_fc1"])), p["shape_fc2"]))
    return np.concatenate([joints, pose, dense(s, p["shape_out"])], axis=1)


def test_discriminator_default_size():
    abstract = _abstract(PoseDiscriminator)
    assert _num_params(abstract) == 1_807_619
    out = nnx.eval_shape(
        lambda m, r, b: m(r, b),
        abstract,
        jax.ShapeDtypeStruct((4, 23, 3, 3), jnp.float32),
        jax.ShapeDtypeStruct((4, 10), jnp.float32),
    )
    assert out.shape == (4, 25)


@pytest.fixture(scope="module")
def disc():
    """A test-sized discriminator (8 joint features, whole-pose hidden width 32)."""
    return _numpy_filled(PoseDiscriminator, joint_features=8, pose_hidden=32)


def test_discriminator_values_and_structure(disc):
    rng = np.random.default_rng(0)
    pose = rng.standard_normal((4, 23, 3)).astype(np.float32)
    betas = rng.standard_normal((4, 10)).astype(np.float32)
    # Joint 5 set to a rotation about y, and β shifted: which outputs move?
    pose_moved = pose.copy()
    pose_moved[:, 5] = [0.0, 1.0, 0.0]
    rotmats, moved = _aa_to_matrix(pose), _aa_to_matrix(pose_moved)
    run = nnx.jit(
        lambda m: (m(rotmats, betas), m(rotmats.reshape(4, 23, 9), betas),
                   m(moved, betas), m(rotmats, betas + 1.0))
    )  # fmt: skip
    out, out_flat, out_moved, out_shifted = run(disc)
    chex.assert_shape(out, (4, 25))
    chex.assert_trees_all_equal(out, out_flat)
    reference = _numpy_discriminator(
        disc, np.asarray(rotmats, np.float64).reshape(4, 23, 9), np.asarray(betas, np.float64)
    )
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5)
    # Column j (< 23) sees joint j only; column 23 all joints; column 24 only β.
    assert np.flatnonzero(np.any(out_moved != out, axis=0)).tolist() == [5, 23]
    assert np.flatnonzero(np.any(out_shifted != out, axis=0)).tolist() == [24]


def test_discriminator_rejects_bad_shapes(disc):
    with pytest.raises(ValueError, match="rotmats must have shape"):
        disc(jnp.zeros((2, 24, 3, 3)), jnp.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"betas must have shape \[B, 10\]"):
        disc(jnp.zeros((2, 23, 3, 3)), jnp.zeros((2, 16)))
    with pytest.raises(ValueError, match="batch size"):
        disc(jnp.zeros((2, 23, 3, 3)), jnp.zeros((3, 10)))


# ------------------------------------------------------------------------- AMASS


def _write_amass(path, num_frames, width=156, start=0.0):
    """An AMASS-like sequence file whose `poses` are 0.001 · (their flat index) + start."""
    poses = start + 0.001 * np.arange(num_frames * width, dtype=np.float64)
    poses = poses.reshape(num_frames, width)
    np.savez(
        path,
        poses=poses,
        betas=np.zeros(16),
        trans=np.zeros((num_frames, 3)),
        gender=np.array("neutral"),
        mocap_framerate=np.array(120.0),
    )
    return poses


def test_load_amass_poses_mapping(tmp_path):
    a = _write_amass(tmp_path / "a.npz", 5)
    b = _write_amass(tmp_path / "b.npz", 3, width=165, start=10.0)  # SMPL-X layout
    out = load_amass_poses([str(tmp_path / "a.npz"), tmp_path / "b.npz"])
    assert out.shape == (8, 69) and out.dtype == np.float32
    # SMPL joints 1-21 = AMASS values 3:66 (root dropped); joints 22, 23 (hands) zero.
    np.testing.assert_array_equal(out[:5, :63], a[:, 3:66].astype(np.float32))
    np.testing.assert_array_equal(out[5:, :63], b[:, 3:66].astype(np.float32))
    np.testing.assert_array_equal(out[:, 63:], 0.0)
    # The first body value is AMASS's 4th: left hip x of frame 0 = 0.003.
    np.testing.assert_allclose(out[0, 0], 0.003, rtol=1e-6)
    strided = load_amass_poses([tmp_path / "a.npz", tmp_path / "b.npz"], stride=2)
    np.testing.assert_array_equal(strided[:3], out[[0, 2, 4]])
    np.testing.assert_array_equal(strided[3:], out[[5, 7]])
    assert load_amass_poses([tmp_path / "a.npz"], dtype=np.float64).dtype == np.float64


def test_load_amass_poses_errors(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match=r"nope\.npz"):
        load_amass_poses([missing])
    np.savez(tmp_path / "no_poses.npz", trans=np.zeros((2, 3)), betas=np.zeros(16))
    with pytest.raises(KeyError, match=r"no 'poses' array \(keys: \['betas', 'trans'\]\)"):
        load_amass_poses([tmp_path / "no_poses.npz"])
    _write_amass(tmp_path / "smpl.npz", 2, width=72)
    with pytest.raises(ValueError, match=r"'poses' has shape \(2, 72\)"):
        load_amass_poses([tmp_path / "smpl.npz"])
    poses = np.zeros((2, 156))
    poses[1, 10] = np.nan
    np.savez(tmp_path / "nan.npz", poses=poses)
    with pytest.raises(ValueError, match="NaN"):
        load_amass_poses([tmp_path / "nan.npz"])
    _write_amass(tmp_path / "ok.npz", 2)
    for stride in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="stride"):
            load_amass_poses([tmp_path / "ok.npz"], stride=stride)
    with pytest.raises(ValueError, match="empty"):
        load_amass_poses([])
    with pytest.raises(TypeError, match="list of files"):
        load_amass_poses(str(tmp_path / "ok.npz"))

"""Eq. 3: zero at the ground truth, hand-computed terms, masks, finite gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hkmr_jax import geometry, losses
from hkmr_jax.models.params import RegressorOutput
from smpl_jax import rotation, synthetic


@pytest.fixture(scope="module")
def body_and_regressor():
    return synthetic.load_builtin(), jnp.asarray(synthetic.h36m_regressor())


def _ground_truth(body, regressor, b=3, t=2, seed=0):
    rng = np.random.default_rng(seed)
    pose = (rng.normal(size=(b, 24, 3)) * 0.2).astype(np.float32)
    pose[:, 0] = [np.pi, 0, 0]
    betas = rng.normal(size=(b, 10)).astype(np.float32)
    camera = np.array([[0.9, 0.05, -0.1]] * b, np.float32)
    verts = body(betas=betas, body_pose=pose[:, 1:], global_orient=pose[:, 0]).vertices
    j24, mask = geometry.j24_joints(verts, regressor)
    batch = {
        "pose": jnp.asarray(pose.reshape(b, 72)),
        "betas": jnp.asarray(betas),
        "has_smpl": jnp.ones(b),
        "has_3d": jnp.ones(b),
        "joints_3d": jnp.concatenate(
            [geometry.root_centred(j24), jnp.broadcast_to(mask[:, None], (b, 24, 1))], -1
        ),
        "keypoints": jnp.concatenate(
            [geometry.weak_perspective(j24, camera), jnp.broadcast_to(mask[:, None], (b, 24, 1))],
            -1,
        ),
    }
    rep = lambda x: jnp.broadcast_to(jnp.asarray(x), (t, *np.shape(x)))
    out = RegressorOutput(
        rep(pose), rep(rotation.axis_angle_to_matrix(jnp.asarray(pose))), rep(betas), rep(camera)
    )
    return out, batch


def _two_shards(out, batch):
    """Split an output [T, B, ...] and a batch [B, ...] into 2 shards on a new leading
    axis (for vmap with an axis name, standing in for shard_map's 'data' axis)."""
    halves = lambda x, axis: x.reshape(*x.shape[:axis], 2, -1, *x.shape[axis + 1 :])
    out_s = jax.tree.map(lambda x: jnp.moveaxis(halves(x, 1), 1, 0), out)
    return out_s, {k: halves(v, 0) for k, v in batch.items()}


def test_zero_at_ground_truth_and_hand_computed_betas_term(body_and_regressor):
    body, reg = body_and_regressor
    out, batch = _ground_truth(body, reg)
    w = losses.LossWeights()
    loss, terms = losses.regressor_loss(out, batch, body, reg, w)
    assert float(loss) < 1e-6
    for name, value in terms.items():
        assert float(value) < 1e-6, name
    # Shift every beta by 0.5 in both iterations: mean square 0.25, summed over T = 2.
    shifted = out._replace(betas=out.betas + 0.5)
    _, terms = losses.regressor_loss(shifted, batch, body, reg, w)
    np.testing.assert_allclose(terms["smpl_betas"], 0.25 * 2, rtol=1e-6)
    assert float(terms["joints_3d"]) > 1e-4  # the shape change moves the joints


def test_camera_error_only_moves_the_2d_term(body_and_regressor):
    body, reg = body_and_regressor
    out, batch = _ground_truth(body, reg)
    moved = out._replace(camera=out.camera.at[..., 1].add(0.1))  # shift x by 0.1
    _, terms = losses.regressor_loss(moved, batch, body, reg, losses.LossWeights())
    # |Δx| = 0.1 on the 17 labelled joints' x, 0 on y: mean over 24·2 entries, × T.
    np.testing.assert_allclose(terms["keypoints"], 0.1 * 17 / 48 * 2, rtol=1e-4)
    assert float(terms["joints_3d"]) < 1e-6


def test_masks_and_prior_and_gradients(body_and_regressor):
    body, reg = body_and_regressor
    out, batch = _ground_truth(body, reg)
    wrong = out._replace(rotmat=out.rotmat.at[:, :, 5].set(jnp.eye(3)))
    unlabelled = {**batch, "has_smpl": jnp.zeros(3), "has_3d": jnp.zeros(3),
                  "keypoints": batch["keypoints"].at[..., 2].set(0.0)}  # fmt: skip
    _, terms = losses.regressor_loss(wrong, unlabelled, body, reg, losses.LossWeights())
    assert all(float(v) == 0.0 for v in terms.values())
    kl = lambda pose: jnp.sum(pose**2, -1)  # stand-in prior: ‖Θ‖²
    _, terms = losses.regressor_loss(out, batch, body, reg, losses.LossWeights(), kl)
    expected = float(jnp.mean(jnp.sum(out.pose[0][:, 1:].reshape(3, 69) ** 2, -1))) * 2
    np.testing.assert_allclose(terms["kl"], expected, rtol=1e-5)

    def total(betas):
        return losses.regressor_loss(out._replace(betas=betas), batch, body, reg,
                                     losses.LossWeights(), kl)[0]  # fmt: skip

    grad = jax.grad(total)(out.betas + 0.1)
    assert bool(losses.is_finite(grad)) and float(jnp.abs(grad).sum()) > 0


def test_smpl_and_3d_terms_average_over_labelled_examples_only(body_and_regressor):
    """SPIN's normalisation: L_smpl over the `has_smpl` examples, L_3D over the `has_3d`
    ones, so an example without labels does not dilute them; sharded (vmap with an axis
    name standing in for shard_map), the counts are global."""
    body, reg = body_and_regressor
    out, batch = _ground_truth(body, reg, b=4)
    w = losses.LossWeights()
    # Betas 0.5 off on every example; only example 0 has SMPL labels: 0.25 per entry, × T.
    partial = dict(batch, has_smpl=jnp.array([1.0, 0.0, 0.0, 0.0]))
    _, terms = losses.regressor_loss(out._replace(betas=out.betas + 0.5), partial, body, reg, w)
    np.testing.assert_allclose(terms["smpl_betas"], 0.25 * 2, rtol=1e-6)
    # A wrong elbow on every example; L_3D with only example 2 labelled = L_3D of example 2.
    wrong = out._replace(rotmat=out.rotmat.at[:, :, 18].set(jnp.eye(3)))
    only_2 = dict(batch, has_3d=jnp.array([0.0, 0.0, 1.0, 0.0]))
    _, terms = losses.regressor_loss(wrong, only_2, body, reg, w)
    alone = jax.tree.map(lambda x: x[:, 2:3], wrong)
    _, terms_alone = losses.regressor_loss(alone, {k: v[2:3] for k, v in batch.items()},
                                           body, reg, w)  # fmt: skip
    assert float(terms_alone["joints_3d"]) > 1e-3
    np.testing.assert_allclose(terms["joints_3d"], terms_alone["joints_3d"], rtol=1e-5)

    mixed = dict(batch, has_smpl=jnp.array([1.0, 1.0, 1.0, 0.0]),
                 has_3d=jnp.array([0.0, 1.0, 0.0, 0.0]))  # fmt: skip
    per_shard = jax.vmap(
        lambda o, b: losses.regressor_loss(o, b, body, reg, w, axis_name="data")[1],
        axis_name="data",
    )(*_two_shards(wrong, mixed))
    _, whole = losses.regressor_loss(wrong, mixed, body, reg, w)
    for name in ("smpl_pose", "joints_3d", "keypoints"):
        np.testing.assert_allclose(jnp.mean(per_shard[name]), whole[name], rtol=1e-5)


def test_adversarial_terms_hand_computed(body_and_regressor):
    """HMR's least-squares terms with critics of known output (25 scores per sample)."""
    body, reg = body_and_regressor
    out, batch = _ground_truth(body, reg, b=3, t=2)
    zeros = lambda rotmats, betas: jnp.zeros((rotmats.shape[0], 25))
    halves = lambda rotmats, betas: jnp.full((rotmats.shape[0], 25), 0.5)
    # Regressor: mean over T·B of Σ_k (0 − 1)² = 25, summed over T = 2.
    np.testing.assert_allclose(losses.adversarial_loss(zeros, out), 50.0)
    # Discriminator: real Σ_k (0.5 − 1)² + fake Σ_k 0.5² = 6.25 + 6.25.
    np.testing.assert_allclose(losses.discriminator_loss(halves, out, batch), 12.5)
    # Without SMPL ground truth nothing is real: only the fake term remains.
    no_smpl = dict(batch, has_smpl=jnp.zeros(3))
    np.testing.assert_allclose(losses.discriminator_loss(halves, out, no_smpl), 6.25)
    # The critic sees body poses without the root and the shapes: the real samples are
    # the ground truth's, the fake ones every iteration's prediction.
    seen = []

    def recording(rotmats, betas):
        seen.append((rotmats, betas))
        return jnp.zeros((rotmats.shape[0], 25))

    losses.discriminator_loss(recording, out, batch)
    (fake_r, fake_b), (real_r, real_b) = seen
    assert fake_r.shape == (6, 23, 3, 3) and real_r.shape == (3, 23, 3, 3)
    np.testing.assert_allclose(real_r, losses.body_rotmat(batch["pose"])[:, 1:], atol=1e-6)
    np.testing.assert_allclose(fake_b, out.betas.reshape(6, 10))
    np.testing.assert_allclose(real_b, batch["betas"])


def test_discriminator_real_term_is_a_global_mean_over_shards(body_and_regressor):
    """Split over two shards with the `has_smpl` examples falling unevenly (2 and 1), the
    mean over shards of the per-shard losses, and of their gradients, is the loss of the
    whole batch (vmap with an axis name stands in for shard_map's 'data' axis)."""
    body, reg = body_and_regressor
    out, batch = _ground_truth(body, reg, b=4, t=2)
    batch = dict(batch, has_smpl=jnp.array([1.0, 1.0, 1.0, 0.0]))

    def critic(w):  # scores that differ per sample and depend on a parameter
        return lambda rotmats, betas: w * jnp.tile(betas[:, :5], (1, 5)) + rotmats[:, 0, 0, :1]

    whole = lambda w: losses.discriminator_loss(critic(w), out, batch)

    def sharded(w):
        per_shard = jax.vmap(
            lambda o, b: losses.discriminator_loss(critic(w), o, b, axis_name="data"),
            axis_name="data",
        )(*_two_shards(out, batch))
        return jnp.mean(per_shard)

    np.testing.assert_allclose(sharded(0.7), whole(0.7), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(sharded)(0.7), jax.grad(whole)(0.7), rtol=1e-5)
    # Normalising each shard by its own count (the old rule) would give another value.
    halves = [(jax.tree.map(lambda x, i=i: x[:, i : i + 2], out),
               {k: v[i : i + 2] for k, v in batch.items()}) for i in (0, 2)]  # fmt: skip
    local = np.mean([losses.discriminator_loss(critic(0.7), o, b) for o, b in halves])
    assert abs(float(local) - float(whole(0.7))) > 1e-3


def test_least_squares_gan_losses_by_hand():
    d_loss, g_loss = jax.jit(losses.lsgan_discriminator_loss), jax.jit(losses.generator_loss)
    real = np.array([[1.0, 3.0], [0.0, 1.0]], np.float32)
    fake = np.array([[0.5, -1.0]], np.float32)
    # real: rows Σ(D − 1)² = 0 + 4 = 4 and 1 + 0 = 1 → mean 2.5; fake: Σ D² = 1.25.
    np.testing.assert_allclose(d_loss(real, fake), 3.75, rtol=1e-7)
    # generator: Σ(D − 1)² = 0.25 + 4 = 4.25.
    np.testing.assert_allclose(g_loss(fake), 4.25, rtol=1e-7)
    fake2 = np.array([[0.5, -1.0], [1.0, 1.0]], np.float32)
    np.testing.assert_allclose(g_loss(fake2), 2.125, rtol=1e-7)  # (4.25 + 0) / 2
    # A perfect discriminator (1 on real, 0 on fake) and a perfect generator score 0.
    assert float(d_loss(np.ones((3, 25), np.float32), np.zeros((5, 25), np.float32))) == 0.0
    assert float(g_loss(np.ones((5, 25), np.float32))) == 0.0
    # Real rows that all count (the step's has_smpl = 1) give the plain mean, bit for bit;
    # a 0 drops its row from the real term.
    ones = np.ones(2, np.float32)
    assert float(d_loss(real, fake, ones)) == float(d_loss(real, fake))
    np.testing.assert_allclose(d_loss(real, fake, np.array([1.0, 0.0], np.float32)), 5.25)

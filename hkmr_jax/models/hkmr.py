"""The HKMR regressor (Georgakis et al., ECCV 2020, §3.2): six kinematic chains.

Per outer iteration, the root chain (pelvis, spine) and then its five child chains (head,
arms, legs, side by side) refine their joints' rotations by forward and backward passes
of small per-joint layers; a shape net and a camera net follow. Every loop is a
`jax.lax.scan`. The structure and the choices the paper leaves open: docs/hkmr.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hkmr_jax.models import params as params_lib
from hkmr_jax.models.layers import small_init
from smpl_jax import skeleton

HISTORY_MODES = ("all", "previous")
PASS_MODES = ("forward_backward", "forward")
CHILD_CHAINS = ("head", "left_arm", "right_arm", "left_leg", "right_leg")


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {list(allowed)}.")
    return value


class ChainGroup(nnx.Module):
    """C kinematic chains of up to K joints each, run side by side.

    Parameters carry a leading chain axis; chains shorter than K are padded, and the
    padded joints' residuals are masked to exactly zero, so they change nothing.
    """

    def __init__(
        self, chain_lengths, *, feature_dim, num_betas, cond_dim, embed_dim, pose_size,
        history="all", passes="forward_backward", rngs: nnx.Rngs,
    ):  # fmt: skip
        self.history = _choice("history", history, HISTORY_MODES)
        self.passes = _choice("passes", passes, PASS_MODES)
        c, k, p, d = len(chain_lengths), max(chain_lengths), pose_size, embed_dim
        self.num_chains, self.max_len, self.pose_size = c, k, p
        self.mask = nnx.Variable(
            jnp.asarray([[float(i < n) for i in range(k)] for n in chain_lengths])
        )
        glorot = nnx.initializers.glorot_uniform()
        other_dim = num_betas + k * p + cond_dim  # β, θ_c (padded), θ_root (children)
        # E_c split into Φ's part (computed once per call) and the rest.
        self.embed_features = nnx.Param(glorot(rngs.params(), (c, feature_dim, d)))
        self.embed_other = nnx.Param(glorot(rngs.params(), (c, other_dim, d)))
        self.embed_bias = nnx.Param(jnp.zeros((c, d)))
        history_dim = k * p if history == "all" else p
        shape = (c, k, d + history_dim, p)
        self.forward_kernel = nnx.Param(small_init()(rngs.params(), shape))
        self.forward_bias = nnx.Param(jnp.zeros((c, k, p)))
        if self.passes == "forward_backward":
            self.backward_kernel = nnx.Param(small_init()(rngs.params(), shape))
            self.backward_bias = nnx.Param(jnp.zeros((c, k, p)))

    def project_features(self, features):
        """[B, F] → [B, C, d]: Φ's share of every chain's embedding."""
        return jnp.einsum("bf,cfd->bcd", features, self.embed_features[...])

    def __call__(self, feature_proj, betas, theta, cond, inner_iters: int):
        """Run `inner_iters` inner iterations of every chain.

        Args:
          feature_proj: [B, C, d] from `project_features`.
          betas: [B, NB].
          theta: [B, C, K, P] current joint rotations (padded joints: anything).
          cond: [B, cond_dim] conditioning (the root chain's θ for child chains), or None.
          inner_iters: number of inner iterations.

        Returns:
          [B, C, K, P] refined rotations; padded joints unchanged.
        """
        b = theta.shape[0]
        c, k, p = self.num_chains, self.max_len, self.pose_size
        mask = self.mask[...][None, :, :, None]  # [1, C, K, 1]
        other_static = [jnp.broadcast_to(betas[:, None], (b, c, betas.shape[-1]))]
        if cond is not None:
            other_static.append(jnp.broadcast_to(cond[:, None], (b, c, cond.shape[-1])))
        embed_other, embed_bias = self.embed_other[...], self.embed_bias[...]

        def embed(theta):
            other = jnp.concatenate(
                [other_static[0], theta.reshape(b, c, k * p), *other_static[1:]], -1
            )
            return jax.nn.relu(
                feature_proj + jnp.einsum("bci,cid->bcd", other, embed_other) + embed_bias
            )

        def one_pass(theta, kernel, bias, reverse):
            psi = embed(theta)

            def step(carry, i):
                history, last = carry  # [B, C, K, P] residuals by joint slot; [B, C, P]
                context = history.reshape(b, c, k * p) if self.history == "all" else last
                x = jnp.concatenate([psi, context], axis=-1)
                delta = jnp.einsum("bci,cip->bcp", x, kernel[:, i]) + bias[:, i]
                delta = delta * mask[:, :, i]
                history = jax.lax.dynamic_update_index_in_dim(history, delta, i, axis=2)
                return (history, delta), None

            init = (jnp.zeros_like(theta), jnp.zeros((b, c, p), theta.dtype))
            (history, _), _ = jax.lax.scan(step, init, jnp.arange(k), reverse=reverse)
            return theta + history

        forward = (self.forward_kernel[...], self.forward_bias[...])
        backward = (
            (self.backward_kernel[...], self.backward_bias[...])
            if self.passes == "forward_backward" else None
        )  # fmt: skip

        def inner(theta, _):
            theta = one_pass(theta, *forward, reverse=False)
            if backward is not None:
                theta = one_pass(theta, *backward, reverse=True)
            return theta, None

        theta, _ = jax.lax.scan(inner, theta, None, length=inner_iters)
        return theta


class ResidualHead(nnx.Module):
    """Dense → ReLU → dense on [Φ, x], Φ's share precomputed; the output layer starts small."""

    def __init__(self, feature_dim, other_dim, hidden, out_dim, *, rngs: nnx.Rngs):
        self.features = nnx.Linear(feature_dim, hidden, rngs=rngs)
        self.other = nnx.Linear(other_dim, hidden, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(hidden, out_dim, kernel_init=small_init(), rngs=rngs)

    def __call__(self, feature_proj, other):
        return self.out(jax.nn.relu(feature_proj + self.other(other)))


def _chain_layout():
    """Static index maps between SMPL's 24 joints and the root / padded child slots.

    Tuples (hashable, static); index with `np.asarray(...)`.
    """
    root = skeleton.CHAINS["root"]
    children = [skeleton.CHAINS[n] for n in CHILD_CHAINS]
    width = max(len(ch) for ch in children)
    child_index = np.array([list(ch) + [ch[0]] * (width - len(ch)) for ch in children])
    # Position of each SMPL joint in concat([root slots (4), child slots (5 × width)]).
    where = {}
    for i, j in enumerate(root):
        where[j] = i
    for c, ch in enumerate(children):
        for i, j in enumerate(ch):
            where[j] = len(root) + c * width + i
    gather = tuple(where[j] for j in range(params_lib.NUM_JOINTS))
    child_index = tuple(tuple(int(j) for j in row) for row in child_index)
    return tuple(root), child_index, gather, [len(ch) for ch in children]


class HKMR(nnx.Module):
    """The HKMR regressor: image features Φ → SMPL pose, shape and camera, per outer step.

    Args:
      feature_dim: size of Φ (2048 for ResNet-50).
      mean_params: `params.MeanParams`, the starting estimate.
      embed_dim: d, the embedding size of every chain (and the heads' hidden size).
      outer_iters: T (paper: 3).
      inner_iters: forward(-backward) cycles per chain per outer step (paper: 4).
      history: 'all' — f_i sees every earlier residual of the pass (paper);
        'previous' — only the immediately preceding joint's ("no joint hierarchy").
      passes: 'forward_backward' (paper) or 'forward' ("forward only").
      representation: 'axis_angle' (paper) or '6d' (Zhou et al.), the space in which
        residuals are predicted and added.
    """

    def __init__(
        self, feature_dim: int, mean_params: params_lib.MeanParams, *, embed_dim: int = 160,
        outer_iters: int = 3, inner_iters: int = 4, history: str = "all",
        passes: str = "forward_backward", representation: str = "axis_angle",
        rngs: nnx.Rngs,
    ):  # fmt: skip
        if outer_iters < 1 or inner_iters < 1:
            raise ValueError(
                f"outer_iters and inner_iters must be ≥ 1, got {outer_iters}, {inner_iters}."
            )
        p = params_lib.check_representation(representation)
        nb = len(mean_params.betas)
        self.representation, self.outer_iters, self.inner_iters = (
            representation, outer_iters, inner_iters,
        )  # fmt: skip
        root, child_index, gather, child_lengths = _chain_layout()
        self._root, self._child_index, self._gather = root, child_index, gather
        self.init_theta = nnx.Variable(
            jnp.asarray(params_lib.from_axis_angle(jnp.asarray(mean_params.pose), representation))
        )
        self.init_betas = nnx.Variable(jnp.asarray(mean_params.betas, jnp.float32))
        self.init_camera = nnx.Variable(jnp.asarray(mean_params.camera, jnp.float32))
        common = dict(feature_dim=feature_dim, num_betas=nb, embed_dim=embed_dim,
                      pose_size=p, history=history, passes=passes, rngs=rngs)  # fmt: skip
        self.root_chain = ChainGroup([len(root)], cond_dim=0, **common)
        self.child_chains = ChainGroup(child_lengths, cond_dim=len(root) * p, **common)
        pose_dim = params_lib.NUM_JOINTS * p
        self.shape_net = ResidualHead(feature_dim, pose_dim + nb, embed_dim, nb, rngs=rngs)
        self.camera_net = ResidualHead(feature_dim, pose_dim + nb, embed_dim, 3, rngs=rngs)

    def __call__(self, features) -> params_lib.RegressorOutput:
        """features: [B, F] → RegressorOutput with T = outer_iters estimates."""
        b = features.shape[0]
        root_proj = self.root_chain.project_features(features)
        child_proj = self.child_chains.project_features(features)
        shape_proj = self.shape_net.features(features)
        camera_proj = self.camera_net.features(features)
        p = self.init_theta.shape[-1]
        theta0 = jnp.broadcast_to(self.init_theta[...], (b, *self.init_theta.shape))
        betas0 = jnp.broadcast_to(self.init_betas[...], (b, *self.init_betas.shape))
        camera0 = self.init_camera[...]

        def outer(carry, _):
            theta, betas = carry  # [B, 24, P], [B, NB]
            root = self.root_chain(
                root_proj, betas, theta[:, np.asarray(self._root)][:, None], None, self.inner_iters
            )[:, 0]  # [B, 4, P]
            children = self.child_chains(
                child_proj, betas, theta[:, np.asarray(self._child_index)], root.reshape(b, -1),
                self.inner_iters,
            )  # fmt: skip
            slots = jnp.concatenate([root, children.reshape(b, -1, p)], axis=1)
            theta = slots[:, np.asarray(self._gather)]
            flat = theta.reshape(b, -1)
            betas = betas + self.shape_net(shape_proj, jnp.concatenate([flat, betas], -1))
            camera = camera0 + self.camera_net(camera_proj, jnp.concatenate([flat, betas], -1))
            return (theta, betas), (theta, betas, camera)

        _, (thetas, betas, cameras) = jax.lax.scan(
            outer, (theta0, betas0), None, length=self.outer_iters
        )
        return params_lib.stack_outputs(thetas, betas, cameras, self.representation)

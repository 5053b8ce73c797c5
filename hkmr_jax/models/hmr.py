"""The HMR baseline regressor (Kanazawa et al., CVPR 2018): iterative error feedback.

[Φ, Θ, β, cam] → 1024 → dropout → 1024 → dropout → (ΔΘ, Δβ, Δcam), added to the current
estimate, for `iters` steps (HMR and SPIN: 3) from the same mean parameters as HKMR, with
the same output structure. With ResNet-50 the model has HMR's 26.8M parameters. The
feedback loop is a `jax.lax.scan`; dropout masks come from per-step keys drawn before the
scan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from hkmr_jax.models import params as params_lib
from hkmr_jax.models.layers import small_init


class HMR(nnx.Module):
    """Args:
    feature_dim: size of Φ.
    mean_params: `params.MeanParams`.
    hidden: width of the two hidden layers (HMR: 1024).
    iters: feedback iterations (HMR: 3).
    dropout: rate after each hidden layer (HMR: 0.5); off in eval mode.
    representation: 'axis_angle' (HMR) or '6d' (SPIN).
    """

    def __init__(
        self, feature_dim: int, mean_params: params_lib.MeanParams, *, hidden: int = 1024,
        iters: int = 3, dropout: float = 0.5, representation: str = "axis_angle",
        rngs: nnx.Rngs,
    ):  # fmt: skip
        if iters < 1:
            raise ValueError(f"iters must be ≥ 1, got {iters}.")
        p = params_lib.check_representation(representation)
        nb = len(mean_params.betas)
        self.representation, self.iters, self.rate = representation, iters, dropout
        self.sizes = (params_lib.NUM_JOINTS * p, nb, 3)
        state_dim = sum(self.sizes)
        self.init_state = nnx.Variable(
            jnp.concatenate([
                params_lib.from_axis_angle(jnp.asarray(mean_params.pose), representation).ravel(),
                jnp.asarray(mean_params.betas), jnp.asarray(mean_params.camera),
            ]).astype(jnp.float32)
        )  # fmt: skip
        self.features = nnx.Linear(feature_dim, hidden, rngs=rngs)
        self.state = nnx.Linear(state_dim, hidden, use_bias=False, rngs=rngs)
        self.hidden = nnx.Linear(hidden, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, state_dim, kernel_init=small_init(), rngs=rngs)
        self.deterministic = False  # nnx's model.eval() / model.train() flip this
        self.rngs = rngs

    def __call__(self, features) -> params_lib.RegressorOutput:
        """features: [B, F] → RegressorOutput with T = iters estimates."""
        b = features.shape[0]
        feature_proj = self.features(features)  # Φ's share: once, not per iteration
        keep = 1.0 - self.rate
        train = not self.deterministic and self.rate > 0
        keys = jax.random.split(self.rngs.dropout(), self.iters) if train else None

        def dropout(x, key):
            if not train:
                return x
            return jnp.where(jax.random.bernoulli(key, keep, x.shape), x / keep, 0.0)

        def step(state, key):
            k1, k2 = jax.random.split(key) if train else (None, None)
            h = dropout(jax.nn.relu(feature_proj + self.state(state)), k1)
            h = dropout(jax.nn.relu(self.hidden(h)), k2)
            state = state + self.out(h)
            return state, state

        init = jnp.broadcast_to(self.init_state[...], (b, self.init_state.shape[0]))
        xs = keys if train else None
        _, states = jax.lax.scan(step, init, xs, length=self.iters)
        pose_dim, nb, _ = self.sizes
        pose = states[..., :pose_dim].reshape(self.iters, b, params_lib.NUM_JOINTS, -1)
        betas = states[..., pose_dim : pose_dim + nb]
        camera = states[..., pose_dim + nb :]
        return params_lib.stack_outputs(pose, betas, camera, self.representation)

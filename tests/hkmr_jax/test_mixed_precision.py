"""Mixed precision (`config.model.compute_dtype='bfloat16'`): the encoder computes in
bfloat16; parameters, BatchNorm statistics, optimizer state and losses stay float32,
and a few training steps follow the float32 run closely."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hkmr_jax import config_files, models, train_lib
from hkmr_jax.data import pipeline

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3
# bfloat16 keeps 8 significant bits (relative rounding 2⁻⁹ ≈ 0.2%) per conv output; over
# a few steps of the smoke models the loss moves by under 0.02% (measured, HMR and HKMR).
LOSS_RTOL = 2e-3


def smoke_config(dtype: str):
    c = config_files.get_config(ROOT / "configs" / "hmr.py", "smoke")
    c.model.regressor.dropout = 0.0  # the two runs must see the same network
    c.model.compute_dtype = dtype
    c.progress_bar, c.evals = False, []
    return c


def _dtypes(tree) -> set[str]:
    return {str(x.dtype) for x in jax.tree.leaves(tree) if hasattr(x, "dtype")
            and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
            and jnp.issubdtype(x.dtype, jnp.floating)}  # fmt: skip


def test_the_encoder_computes_in_bfloat16_with_float32_parameters():
    c = smoke_config("bfloat16")
    model = models.create(dict(c.model), nnx.Rngs(0))
    images = jnp.zeros((2, 32, 32, 3), jnp.float32)
    assert model.encoder.feature_map(images).dtype == jnp.bfloat16
    assert model.encoder(images).dtype == jnp.float32  # pooled in float32
    out = model(images)
    assert _dtypes(out) == {"float32"}
    assert _dtypes(nnx.state(model)) == {"float32"}
    # The same parameters as the float32 model: only the arithmetic differs.
    reference = models.create(dict(smoke_config("float32").model), nnx.Rngs(0))
    jax.tree.map(np.testing.assert_array_equal, nnx.state(model, nnx.Param),
                 nnx.state(reference, nnx.Param))  # fmt: skip


def test_an_unknown_compute_dtype_is_a_clear_error():
    c = smoke_config("float16")
    with pytest.raises(ValueError, match=r"compute_dtype 'float16'.*'float32', 'bfloat16'"):
        models.create(dict(c.model), nnx.Rngs(0))


def test_bfloat16_steps_follow_float32_and_keep_float32_state():
    batches = []
    data = pipeline.train_iterator(smoke_config("float32"), 0, process_index=0, process_count=1)
    for _ in range(STEPS):
        batches.append(next(data))
    mesh = train_lib.make_mesh(jax.devices()[:1])
    losses, states = {}, {}
    for dtype in ("float32", "bfloat16"):
        trainer = train_lib.Trainer.create(smoke_config(dtype), mesh)
        state, losses[dtype] = trainer.init_state(), []
        for batch in batches:
            state, metrics = trainer.step(state, trainer.global_batch(batch))
            losses[dtype].append(float(metrics["loss"]))
        states[dtype] = jax.device_get(state)
    assert np.all(np.isfinite(losses["bfloat16"]))
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=LOSS_RTOL)
    state = states["bfloat16"]
    assert int(state["bad_step"]) == -1 and int(state["step"]) == STEPS
    for key in ("params", "batch_stats", "opt_state"):
        assert _dtypes(state[key]) == {"float32"}, key
    # The runs differ (bfloat16 arithmetic was used), but only slightly.
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                         states["bfloat16"]["params"], states["float32"]["params"])  # fmt: skip
    assert 0 < max(jax.tree.leaves(moved)) < 1e-2

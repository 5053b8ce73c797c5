"""Bodies per second of the SMPL layer: forward, and forward+backward w.r.t. pose and betas.

    python benchmarks/smpl_layer.py [--model SMPL_NEUTRAL.pkl] [--batch 1 64 512]

Uses a random model with SMPL's sizes (6,890 vertices, 24 joints, 10 betas) unless a
model file is given; the arithmetic does not depend on the values. Peak memory is
XLA's own account of the compiled program (temporaries + arguments + outputs).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import smpl_jax


def random_smpl_sized_model(seed: int = 0, num_vertices: int = 6890):
    """A model with SMPL's array sizes and random values (only sizes matter for speed)."""
    rng = np.random.default_rng(seed)
    v, j = num_vertices, 24
    weights = rng.random((v, j))
    regressor = rng.random((j, v))
    root = np.iinfo(np.uint32).max
    return smpl_jax.model_from_arrays(
        {
            "v_template": rng.normal(size=(v, 3)),
            "shapedirs": rng.normal(size=(v, 3, 10)) * 0.01,
            "posedirs": rng.normal(size=(v, 3, 207)) * 0.01,
            "J_regressor": regressor / regressor.sum(1, keepdims=True),
            "weights": weights / weights.sum(1, keepdims=True),
            "kintree_table": np.array([[root, *smpl_jax.skeleton.PARENTS[1:]], range(j)]),
            "f": rng.integers(0, v, (13776, 3)),
        },
        source="random SMPL-sized model",
    )


def _time(fn, *args, min_seconds=1.0):
    jax.block_until_ready(fn(*args))
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or n < 5:
        jax.block_until_ready(fn(*args))
        n += 1
    return elapsed / n


def _peak_bytes(compiled) -> float:
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    return (
        m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        - m.alias_size_in_bytes
    )  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a SMPL .pkl/.npz; default: random SMPL-sized")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 512])
    args = parser.parse_args(argv)
    body = smpl_jax.load(args.model) if args.model else random_smpl_sized_model()

    def forward(body, betas, pose):
        return body(betas=betas, body_pose=pose[:, 1:], global_orient=pose[:, 0]).vertices

    def loss(betas, pose, body):
        return jnp.sum(forward(body, betas, pose) ** 2)

    fwd = jax.jit(forward)
    fwd_bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"model: {args.model or 'random, SMPL-sized'}")  # fmt: skip
    print(f"{'batch':>6} {'forward/s':>12} {'fwd+bwd/s':>12} {'peak MB fwd':>12} "
          f"{'peak MB f+b':>12}")  # fmt: skip
    rng = np.random.default_rng(0)
    for b in args.batch:
        betas = jnp.asarray(rng.normal(size=(b, 10)), jnp.float32)
        pose = jnp.asarray(rng.normal(size=(b, 24, 3)) * 0.3, jnp.float32)
        t_f = _time(fwd, body, betas, pose)
        t_b = _time(fwd_bwd, betas, pose, body)
        m_f = _peak_bytes(fwd.lower(body, betas, pose).compile()) / 2**20
        m_b = _peak_bytes(fwd_bwd.lower(betas, pose, body).compile()) / 2**20
        print(f"{b:>6} {b / t_f:>12,.0f} {b / t_b:>12,.0f} {m_f:>12,.0f} {m_b:>12,.0f}")


if __name__ == "__main__":
    main()

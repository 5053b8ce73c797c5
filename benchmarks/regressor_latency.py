"""Seconds per image of HKMR vs HMR with the same encoder, whole model and head alone.

    python benchmarks/regressor_latency.py     # ResNet-50 at 224 and the CPU-sized config
    python benchmarks/regressor_latency.py --encoders small_cnn:128 --batches 1 64

Also prints jit compile time of the HKMR head as the number of inner iterations grows
(it stays flat: the iterations are a `lax.scan`). The paper: 0.044 s (HKMR) vs 0.009 s
(HMR) per image on a V100, 4.9×.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from flax import nnx

import hkmr_jax.models as models


def _time(fn, *args, min_seconds=1.0, min_runs=3):
    jax.block_until_ready(fn(*args))
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or n < min_runs:
        jax.block_until_ready(fn(*args))
        n += 1
    return elapsed / n


def _jitted(module):
    graph, state = nnx.split(module)
    return jax.jit(lambda s, x: nnx.merge(graph, s)(x)), state


def _compile_seconds(module, x):
    graph, state = nnx.split(module)
    start = time.perf_counter()
    jax.jit(lambda s, x: nnx.merge(graph, s)(x)).lower(state, x).compile()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["resnet50:224", "small_cnn:128"],
                        help="NAME:SIZE pairs")  # fmt: skip
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--inner", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args(argv)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    print(f"{'encoder':>14} {'B':>4} {'part':>6} {'HMR s/img':>11} {'HKMR s/img':>11} "
          f"{'ratio':>6}")  # fmt: skip
    for spec in args.encoders:
        name, size = spec.split(":")
        size = int(size)
        built = {
            kind: models.create({"name": kind, "encoder": {"name": name}}, nnx.Rngs(0))
            for kind in ("hmr", "hkmr")
        }
        for m in built.values():
            m.eval()
        for b in args.batches:
            images = jnp.zeros((b, size, size, 3))
            features = built["hmr"].encoder(images)
            for part in ("model", "head"):
                per_image = {}
                for kind, m in built.items():
                    fn, state = _jitted(m if part == "model" else m.regressor)
                    per_image[kind] = _time(fn, state, images if part == "model" else features) / b
                ratio = per_image["hkmr"] / per_image["hmr"]
                print(f"{spec:>14} {b:>4} {part:>6} {per_image['hmr']:>11.5f} "
                      f"{per_image['hkmr']:>11.5f} {ratio:>6.2f}")  # fmt: skip
    print("\nHKMR head compile time (s) vs inner iterations (T = 3 outer):")
    features = jnp.zeros((1, 2048))
    mean = models.MeanParams.default()
    for inner in args.inner:
        head = models.HKMR(2048, mean, inner_iters=inner, rngs=nnx.Rngs(0))
        print(f"  inner={inner:>2}: {_compile_seconds(head, features):.2f}")


if __name__ == "__main__":
    main()

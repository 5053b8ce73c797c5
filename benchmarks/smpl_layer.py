"""Bodies per second of the SMPL layer: forward, and forward+backward w.r.t. pose and betas.

    python benchmarks/smpl_layer.py [--model SMPL_NEUTRAL.pkl] [--batch 1 64 512]

Uses a random model with SMPL's sizes (6,890 vertices, 24 joints, 10 betas) unless a
model file is given; the arithmetic does not depend on the values. When torch and smplx
are importable, smplx's `SMPL` is built from the same arrays and timed in the same
process, interleaved with this layer (rounds of ~0.3 s each, medians), and the ratios are
printed: of bodies per second ("×") and of bodies per CPU-second of the process ("× cpu",
steadier on a shared machine). smplx's forward runs under `torch.no_grad()`; torch
uses its default thread count unless --torch-threads is given. Peak memory is XLA's own
account of the compiled program (temporaries + arguments + outputs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import smpl_jax


def random_smpl_arrays(seed: int = 0, num_vertices: int = 6890) -> dict:
    """Arrays in the official SMPL layouts with SMPL's sizes and random values."""
    rng = np.random.default_rng(seed)
    v, j = num_vertices, 24
    weights = rng.random((v, j))
    regressor = rng.random((j, v))
    root = np.iinfo(np.uint32).max
    return {
        "v_template": rng.normal(size=(v, 3)),
        "shapedirs": rng.normal(size=(v, 3, 10)) * 0.01,
        "posedirs": rng.normal(size=(v, 3, 207)) * 0.01,
        "J_regressor": regressor / regressor.sum(1, keepdims=True),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.array([[root, *smpl_jax.skeleton.PARENTS[1:]], range(j)]),
        "f": rng.integers(0, v, (13776, 3)),
    }


def random_smpl_sized_model(seed: int = 0, num_vertices: int = 6890):
    """A model with SMPL's array sizes and random values (only sizes matter for speed)."""
    arrays = random_smpl_arrays(seed, num_vertices)
    return smpl_jax.model_from_arrays(arrays, source="random SMPL-sized model")


def _seconds_per_call(fn, min_seconds):
    """(wall seconds, CPU seconds of the whole process) per call of `fn`."""
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < min_seconds or n < 3:
        fn()
        n += 1
    return elapsed / n, (time.process_time() - cpu) / n


def _peak_bytes(compiled) -> float:
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    return (
        m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        - m.alias_size_in_bytes
    )  # fmt: skip


def _smplx_layer(arrays, threads=None):
    """smplx's SMPL and its two timed calls, or None when torch/smplx are not installed."""
    try:
        import smplx
        import torch
    except ImportError:
        return None
    from smplx.utils import Struct

    if threads:
        torch.set_num_threads(threads)

    layer = smplx.SMPL("", data_struct=Struct(**arrays), num_betas=10)

    def forward(betas, pose):
        betas, pose = torch.from_numpy(betas), torch.from_numpy(pose)
        with torch.no_grad():
            return layer(
                betas=betas, body_pose=pose[:, 1:].flatten(1), global_orient=pose[:, 0]
            ).vertices

    def fwd_bwd(betas, pose):
        betas = torch.from_numpy(betas).requires_grad_(True)
        pose = torch.from_numpy(pose).requires_grad_(True)
        out = layer(betas=betas, body_pose=pose[:, 1:].flatten(1), global_orient=pose[:, 0])
        return torch.autograd.grad((out.vertices**2).sum(), (betas, pose))

    return forward, fwd_bwd, f"smplx, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a SMPL .pkl/.npz; default: random SMPL-sized")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 512])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--no-smplx", action="store_true", help="skip the smplx comparison")
    parser.add_argument("--torch-threads", type=int, help="torch's intra-op threads for smplx")
    args = parser.parse_args(argv)
    if args.model:
        body = smpl_jax.load(args.model)
        arrays = None  # smplx reads its own files; compare on the built-in arrays
    else:
        arrays = random_smpl_arrays()
        body = smpl_jax.model_from_arrays(arrays, source="random SMPL-sized model")

    def forward(body, betas, pose):
        return body(betas=betas, body_pose=pose[:, 1:], global_orient=pose[:, 0]).vertices

    def loss(betas, pose, body):
        return jnp.sum(forward(body, betas, pose) ** 2)

    fwd = jax.jit(forward)
    fwd_bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))
    ref = None if args.no_smplx or arrays is None else _smplx_layer(arrays, args.torch_threads)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"model: {args.model or 'random, SMPL-sized'}")  # fmt: skip
    header = f"{'batch':>6} {'forward/s':>10} {'fwd+bwd/s':>10}"
    if ref is not None:
        print(f"compared with: {ref[2]}, same process, interleaved")
        header += f" {'smplx fwd/s':>11} {'smplx f+b/s':>11} {'fwd ×':>6} {'f+b ×':>6}"
        header += f" {'fwd × cpu':>9} {'f+b × cpu':>9}"
    print(header + f" {'peak MB fwd':>11} {'peak MB f+b':>11}")
    rng = np.random.default_rng(0)
    for b in args.batch:
        betas = rng.normal(size=(b, 10)).astype(np.float32)
        pose = (rng.normal(size=(b, 24, 3)) * 0.3).astype(np.float32)
        print(_row(body, fwd, fwd_bwd, ref, betas, pose, args.rounds), flush=True)


def _row(body, fwd, fwd_bwd, ref, betas_np, pose_np, rounds) -> str:
    """One line of the table: this layer (and smplx) timed in interleaved rounds."""
    b = len(betas_np)
    betas, pose = jnp.asarray(betas_np), jnp.asarray(pose_np)
    calls = {
        "fwd": lambda: jax.block_until_ready(fwd(body, betas, pose)),
        "f+b": lambda: jax.block_until_ready(fwd_bwd(betas, pose, body)),
    }
    if ref is not None:
        calls["smplx fwd"] = lambda: ref[0](betas_np, pose_np)
        calls["smplx f+b"] = lambda: ref[1](betas_np, pose_np)
    for call in calls.values():  # compile / warm up
        call()
    seconds = {k: [] for k in calls}
    for _ in range(rounds):
        for k, call in calls.items():
            seconds[k].append(_seconds_per_call(call, 0.3))
    rate = {k: b / statistics.median(w for w, _ in v) for k, v in seconds.items()}
    line = f"{b:>6} {rate['fwd']:>10,.0f} {rate['f+b']:>10,.0f}"
    if ref is not None:
        # Medians of the per-round ratios: each round times both layers back to back.
        ratio = {
            (k, i): statistics.median(
                s[i] / t[i] for s, t in zip(seconds[f"smplx {k}"], seconds[k])
            )
            for k in ("fwd", "f+b")
            for i in (0, 1)
        }
        line += (f" {rate['smplx fwd']:>11,.0f} {rate['smplx f+b']:>11,.0f}"
                 f" {ratio['fwd', 0]:>6.2f} {ratio['f+b', 0]:>6.2f}"
                 f" {ratio['fwd', 1]:>9.2f} {ratio['f+b', 1]:>9.2f}")  # fmt: skip
    m_f = _peak_bytes(fwd.lower(body, betas, pose).compile()) / 2**20
    m_b = _peak_bytes(fwd_bwd.lower(betas, pose, body).compile()) / 2**20
    return line + f" {m_f:>11,.0f} {m_b:>11,.0f}"


if __name__ == "__main__":
    main()

"""Images per second of the built-in synthetic dataset (`hkmr_jax.data.synthetic`).

    python benchmarks/synthetic_data.py [--sizes 64 128 224] [-n 512] [--workers 2]

Per crop size, one process:

* ``B=1 ds[i]``: `block_size=1` (the default), one example at a time; the same rate in
  any order (each example has its own SMPL forward).
* ``B=16 ds[i] in order``: `block_size=16`, sequential reads; each read of a new block
  runs the forward of the next 16 examples at once (read-ahead).
* ``B=16 ds[i] random``: the same, in random order: every read pays a 16-batch forward
  for one example (the case to avoid).
* ``B=16 render_batch``: shuffled batches of 32 indices through `render_batch` (what a
  batched read such as grain's `_getitems` does): 2 forwards of 16 per batch.

and a pool of `--workers` processes (``B=16, N processes``), each rendering contiguous
chunks of 64 indices and sending the stacked examples back, as a multi-process input
pipeline would. Start-up (imports, loading the body, compiling the forward once) is
excluded: every process is warmed up before its clock starts.

Rates are wall-clock; the single-process lines also give the rate per CPU-second of the
process, which is less sensitive to other load on a shared machine. The CPU count and
the load average before each measurement are printed with the figures: a loaded
machine gives lower numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

from hkmr_jax.data.synthetic import SyntheticDataset

_WORKER = {}
_FRESH = 16 * 10_000  # indices never rendered before in the process


def _init(size):
    _WORKER["ds"] = ds = SyntheticDataset("train", size=size, block_size=16)
    ds[0]  # load the body and compile the forward before the clock starts


def _chunk(start_stop):
    """Render a chunk of indices and return it stacked, as a pipeline worker would."""
    examples = _WORKER["ds"].render_batch(range(*start_stop))
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def _load():
    return "load average {:.1f}, {:.1f}, {:.1f}".format(*os.getloadavg())


def single(size, n, block_size, mode):
    """(images/s wall, images per CPU-second, load before) for one process."""
    ds = SyntheticDataset("train", size=size, block_size=block_size)
    ds[0]
    indices = np.arange(_FRESH, _FRESH + n)
    if mode != "in order":
        indices = np.random.default_rng(0).permutation(np.arange(_FRESH, _FRESH + 64 * n))[:n]
    load = _load()
    wall, cpu = time.perf_counter(), time.process_time()
    if mode == "render_batch":
        for k in range(0, n, 32):
            ds.render_batch(indices[k : k + 32])
    else:
        for i in indices:
            ds[int(i)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, n / cpu, load


def pool(size, n, workers, chunk=64):
    """(images/s wall, load before) for `workers` processes rendering chunks in order."""
    ctx = mp.get_context("spawn")  # JAX in forked children is unsafe
    with ctx.Pool(workers, initializer=_init, initargs=(size,)) as p:
        # Warm-up: every worker up, compiled and busy once.
        p.map(_chunk, [(i * 16, i * 16 + 16) for i in range(2 * workers)], chunksize=1)
        chunks = [(a, a + chunk) for a in range(_FRESH, _FRESH + n, chunk)]
        load = _load()
        wall = time.perf_counter()
        count = sum(len(r["image"]) for r in p.imap_unordered(_chunk, chunks))
        wall = time.perf_counter() - wall
    return count / wall, load


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("-n", type=int, default=512, help="examples per measurement")
    parser.add_argument("--workers", type=int, default=2, help="processes in the pool (0: none)")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; {_load()}")
    print(f"{'size':>5}  {'mode':<24} {'img/s':>6}  {'img/CPU-s':>9}  load before")
    runs = [(1, "any order"), (16, "in order"), (16, "random"), (16, "render_batch")]
    for size in args.sizes:
        for block_size, mode in runs:
            n = args.n // 4 if mode == "random" else args.n  # slow: fewer
            rate, per_cpu, load = single(size, n, block_size, mode)
            label = f"B={block_size} " + ("render_batch" if mode == "render_batch" else
                                          f"ds[i] {mode}")  # fmt: skip
            print(f"{size:>5}  {label:<24} {rate:6.0f}  {per_cpu:9.0f}  {load}")
        if args.workers > 0:
            rate, load = pool(size, args.n * args.workers, args.workers)
            label = f"B=16, {args.workers} processes"
            print(f"{size:>5}  {label:<24} {rate:6.0f}  {'':>9}  {load}")


if __name__ == "__main__":
    main()

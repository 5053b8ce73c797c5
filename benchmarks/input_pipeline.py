"""Training input pipeline throughput against the number of workers.

    python benchmarks/input_pipeline.py [--config configs/hkmr.py:paper] [--data spin]
        [--workers 1 2] [--modes threads processes] [--batches 20]

For every mode and worker count, `pipeline.train_iterator` of the config (its datasets,
image size, augmentation and batch size) is read for `--batches` batches after two
warm-up batches (process start, the renderer's compilation), and the script prints

* examples/s (wall clock) and
* examples per CPU-second: CPU time of this process and its worker processes
  together (psutil, over the timed batches only), which depends much less than the
  wall clock on other jobs sharing the machine.

Modes: `threads` — `config.data.num_threads` reader threads in this process (the CPU
default); `processes` — `config.data.worker_count` grain worker processes, one reader
thread each.

Data (`--data`): `synthetic` — the built-in data at the config's image size, with the
config's augmentation; `spin` — the config's SPIN-format datasets: `--data_dir` if given,
else small stand-ins (random textured photos, `--rows` people per dataset, labels in
SPIN's layout) built into a temporary folder first, as the tests build theirs.
The CPU count and load average are printed: on a shared machine, compare lines of one
run only.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time

import numpy as np

from hkmr_jax import config_files
from hkmr_jax.data import pipeline

ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_spin_standin(manual_dir, data_dir, names, rows: int, seed: int = 0) -> None:
    """Write SPIN-format stand-ins of `names` (train splits) into `manual_dir` and build
    them into `data_dir`: 400 × 300 JPEG photos of smooth colour fields with noise (so
    that crops compress like photographs, ~20-40 kB), one person box each, random labels
    in SPIN's layout (`part` 24 × 3, `S` 24 × 4, `pose` 72, `shape` 10)."""
    # Lazily: only the SPIN-format stand-in needs them (spin_format loads TFDS).
    import imageio.v3 as iio

    from hkmr_jax.data import spin_format

    manual_dir, rng = pathlib.Path(manual_dir), np.random.default_rng(seed)
    (manual_dir / spin_format.EXTRAS_DIR).mkdir(parents=True, exist_ok=True)
    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w] / np.float32(max(h, w))
    for name in names:
        source = spin_format.DATASETS[name]["train"]
        image_names = [f"standin/{i:05d}.jpg" for i in range(rows)]
        for image_name in image_names:
            phase = rng.uniform(0, 2 * np.pi, (3, 3))
            field = [np.sin(8 * xx + phase[c, 0]) * np.cos(6 * yy + phase[c, 1]) for c in range(3)]
            image = 127 + 90 * np.stack(field, -1) + rng.normal(0, 12, (h, w, 3))
            path = manual_dir / source.image_root / image_name
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, np.clip(image, 0, 255).astype(np.uint8), quality=90)
        center = np.stack([rng.uniform(150, 250, rows), rng.uniform(120, 180, rows)], -1)
        scale = rng.uniform(0.8, 1.2, rows)
        part = np.concatenate([center[:, None] + rng.uniform(-80, 80, (rows, 24, 2)),
                               rng.integers(0, 2, (rows, 24, 1))], -1)  # fmt: skip
        S = np.concatenate([rng.normal(0, 0.3, (rows, 24, 3)), np.ones((rows, 24, 1))], -1)
        np.savez(
            manual_dir / spin_format.EXTRAS_DIR / source.npz_files[0],
            imgname=np.array(image_names), center=center, scale=scale, part=part, S=S,
            pose=rng.normal(0, 0.2, (rows, 72)), shape=rng.normal(0, 1, (rows, 10)),
            has_smpl=np.ones(rows),
        )  # fmt: skip
        spin_format.build(name, manual_dir, data_dir, splits=["train"])


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its live descendants."""
    import psutil  # lazily: an optional dependency, only for this measurement

    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(config, mode: str, workers: int, batches: int) -> dict:
    """{'examples_per_s', 'examples_per_cpu_s', 'load'} of `train_iterator(config)`."""
    config = config.copy_and_resolve_references()
    if mode == "threads":
        config.data.num_threads, config.data.worker_count = workers, 0
    else:
        config.data.num_threads, config.data.worker_count = 1, workers
    load = os.getloadavg()[0]
    data = pipeline.train_iterator(config, 0, process_index=0, process_count=1)
    try:
        for _ in range(2):  # warm-up: worker start, the renderer's compilation
            next(data)
        cpu, t = _cpu_seconds(), time.perf_counter()
        for _ in range(batches):
            next(data)
        wall, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
    finally:
        if hasattr(data, "close"):
            data.close()
    n = batches * int(config.batch_size)
    return {"examples_per_s": n / wall, "examples_per_cpu_s": n / cpu, "load": load}


def load_config(spec: str):
    path, _, variant = spec.partition(":")
    return config_files.get_config(ROOT / path if not os.path.isabs(path) else path,
                                   variant or None)  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/hkmr.py:paper")
    parser.add_argument("--data", choices=("synthetic", "spin"), default="spin")
    parser.add_argument("--data_dir", help="built SPIN-format data (default: stand-ins)")
    parser.add_argument("--rows", type=int, default=128, help="people per stand-in dataset")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=("threads", "processes"),
                        default=["threads", "processes"])  # fmt: skip
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch_size", type=int, help="override config.batch_size")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.batch_size:
        config.batch_size = args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        if args.data == "synthetic":
            config.data.datasets = [{"name": "synthetic", "ratio": 1.0}]
        elif not args.data_dir:
            names = sorted({e.name for e in pipeline.expand_datasets(
                config.data.datasets, lambda n, s: 1)})  # fmt: skip
            print(f"building stand-ins of {', '.join(names)} ({args.rows} people each)")
            make_spin_standin(pathlib.Path(tmp) / "manual", pathlib.Path(tmp) / "tfds",
                              names, args.rows)  # fmt: skip
            config.data.data_dir = str(pathlib.Path(tmp) / "tfds")
        else:
            config.data.data_dir = args.data_dir
        print(f"{args.config}, {args.data} data, {config.data.image_size} px, augment "
              f"{'on' if config.data.get('augment') is not None else 'off'}, batch "
              f"{config.batch_size}; {os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'mode':<10} {'workers':>7} {'examples/s':>11} {'per CPU-s':>10} {'load':>5}")
        for mode in args.modes:
            for workers in args.workers:
                r = measure(config, mode, workers, args.batches)
                rates = f"{r['examples_per_s']:>11.1f} {r['examples_per_cpu_s']:>10.1f}"
                print(f"{mode:<10} {workers:>7} {rates} {r['load']:>5.1f}", flush=True)


if __name__ == "__main__":
    main()

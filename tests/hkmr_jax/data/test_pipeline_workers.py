"""grain worker processes (`config.data.worker_count`) give the same batches as the
reader threads of the training process."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hkmr_jax import config_files
from hkmr_jax.data import pipeline

ROOT = Path(__file__).resolve().parents[3]


def test_worker_processes_give_the_threads_batches_from_any_step():
    config = config_files.get_config(ROOT / "configs" / "hkmr.py", "smoke")
    config.data.augment = {}  # per-example random draws must not depend on the worker
    start, n = 3, 3
    threads = pipeline.train_iterator(config, start, process_index=0, process_count=1)
    expected = [next(threads) for _ in range(n)]
    config.data.worker_count = 2
    workers = pipeline.train_iterator(config, start, process_index=0, process_count=1)
    try:
        got = [next(workers) for _ in range(n)]
    finally:
        workers.close()
    for step, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(b[key], a[key], err_msg=f"step {start + step}, {key}")
    # Consecutive batches differ: the workers' batches are interleaved, not repeated.
    assert not np.array_equal(got[0]["image"], got[1]["image"])

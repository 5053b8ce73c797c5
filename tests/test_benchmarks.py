"""`benchmarks/device.py --tiny`: every measurement runs on the CPU and lands in the JSON
and the markdown table."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_device_benchmark_runs_tiny_on_cpu(tmp_path):
    # Plumbing (every row measured and written), not speed: compile without optimisations.
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               JAX_DISABLE_MOST_OPTIMIZATIONS="1")  # fmt: skip
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "device.py"), "--tiny", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "device-cpu-tiny.json").read_text())
    table = (tmp_path / "device-cpu-tiny.md").read_text()
    assert table in result.stdout
    assert data["device"]["platform"] == "cpu" and data["tiny"] is True

    def positive(x):
        return math.isfinite(x) and x > 0

    assert [r["batch"] for r in data["smpl_layer"]] == [4]
    for r in data["smpl_layer"]:
        assert positive(r["forward_bodies_per_s"]) and positive(r["fwd_bwd_bodies_per_s"])
        assert f"| {r['batch']} | {r['forward_bodies_per_s']:,.0f} |" in table
    rows = {(r["variant"], r["dtype"]): r for r in data["training"]}
    assert set(rows) == {(v, d) for v in ("default", "paper") for d in ("float32", "bfloat16")}
    for (variant, dtype), r in rows.items():
        assert positive(r["images_per_s"]) and r["compile_s"] >= 0, (variant, dtype)
        assert math.isfinite(r["loss"]), (variant, dtype)
        assert f"| {variant} | {dtype} | {r['batch']} |" in table
    assert positive(data["evaluation"]["images_per_s"])
    assert positive(data["smplify"]["fits_per_s"])
    assert data["peak_memory"]["bytes"] > 2**20
    assert "SMPLify" in table and "Peak memory" in table

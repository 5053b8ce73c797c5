"""Runs file loaders over hostile files in this (child) process; prints one JSON report.

    python tests/hostile_loader_worker.py CASES.json

CASES.json: [[loader, path], ...] with loader one of `smpl`, `gmm`, `torch`. For each
case: the exception's type and message (or "ok"). At the end: whether numpy's Python
functions and dtype machinery are unchanged, and the peak resident memory growth. A
crash (segfault) ends the process: the parent sees the last case started in stderr.
"""

import json
import sys
import types

import numpy as np


def _numpy_fingerprint():
    """What a pickle could change in numpy: functions' defaults and attributes."""
    out = {}
    for module in (np, np.lib.stride_tricks, np._core.multiarray, np._core.numeric):
        for name, value in sorted(vars(module).items()):
            if isinstance(value, types.FunctionType):
                out[f"{module.__name__}.{name}"] = repr(
                    (value.__defaults__, value.__kwdefaults__, sorted(vars(value)))
                )
    out["dtype.reduce"] = repr(np.dtype("<f8").__reduce__())
    out["arange"] = repr(np.arange(3.0) * 2)
    return out


def _peak_kib() -> int:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the RSS of the
    process that forked it, which Linux carries across exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def main(cases_path):
    import smpl_jax
    from hkmr_jax.fitting import gmm
    from hkmr_jax.models import torchvision_import

    loaders = {
        "smpl": smpl_jax.load,
        "gmm": gmm.load_gmm_prior,
        "torch": torchvision_import.load_torch_checkpoint,
    }
    with open(cases_path) as f:
        cases = json.load(f)
    before = _numpy_fingerprint()
    base_rss = _peak_kib()
    results = []
    for loader, path in cases:
        print(f"case {loader} {path}", file=sys.stderr, flush=True)
        try:
            loaders[loader](path)
            results.append(["ok", ""])
        except BaseException as e:
            results.append([type(e).__name__, str(e)[:2000]])
    peak = _peak_kib()
    report = {
        "results": results,
        "numpy_unchanged": _numpy_fingerprint() == before,
        "peak_growth_mib": (peak - base_rss) / 1024,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])

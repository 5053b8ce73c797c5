"""Evaluators during training: `config.evals` entries run on the current state every
`config.eval_every` steps and at the end (`run_evals`), their names checked before the run
starts (`check_evals`). The evaluators themselves are `hkmr_jax.eval_lib.EVALUATORS`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import numpy as np

from hkmr_jax import eval_lib
from hkmr_jax.data import pipeline


def evaluators() -> dict[str, Callable]:
    """Evaluator name → function (`hkmr_jax.eval_lib.EVALUATORS`)."""
    return dict(eval_lib.EVALUATORS)


def check_evals(config) -> None:
    """Fail early (before training) on unknown evaluator names."""
    known = evaluators()
    for spec in config.get("evals", None) or ():
        if spec.get("name") not in known:
            raise ValueError(
                f"unknown evaluator {spec.get('name')!r} in config.evals; valid: "
                f"{', '.join(sorted(known))}."
            )


def run_evals(trainer, state, sources: dict) -> dict[str, float]:
    """Every `config.evals` entry on `state` → flat {'eval/<label>/<key>': x}; `trainer`
    is the run's `train_lib.Trainer`, `sources` caches the datasets between calls."""
    config = trainer.config
    specs = list(config.get("evals", None) or ())
    if not specs:
        return {}
    known = evaluators()
    batch_size = int(config.get("eval_batch_size", 32))
    body = jax.device_get(trainer.constants["body"])
    regressor = jax.device_get(trainer.constants["h36m_regressor"])
    ctx = eval_lib.EvalContext(trainer.predictor(state), body, regressor, batch_size)
    results = {}
    for spec in specs:
        spec = dict(spec)
        name = spec.pop("name")
        dataset, split = spec.pop("dataset", "synthetic"), spec.pop("split", "test")
        label = spec.pop("label", f"{dataset}_{split}_{name}")
        if (dataset, split) not in sources:
            sources[dataset, split] = pipeline.make_source(dataset, split, config.data)
        result = known[name](ctx, sources[dataset, split], **spec)
        results.update(_flatten(result, f"eval/{label}"))
    return results


def _flatten(tree, prefix) -> dict[str, float]:
    out = {}
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
    elif isinstance(tree, int | float | np.number) and not isinstance(tree, bool):
        out[prefix] = float(tree)
    return out


__all__ = ["check_evals", "evaluators", "run_evals"]

"""`hkmr-eval` / `python eval.py`: evaluate a trained run (flax examples style).

    hkmr-eval --config configs/hkmr.py --workdir runs/hkmr \\
        [--datasets synthetic,h36m_p1,h36m_p2] [--evaluators standard,occluded,doc_sweep] \\
        [--step N] [--limit N]

Restores the latest readable checkpoint (or `--step`), evaluates every dataset with every
evaluator (`hkmr_jax.eval_lib`), writes `WORKDIR/eval/<dataset>.json` (schema in the
README) and `WORKDIR/eval/<dataset>_doc_sweep.png`, and prints a table.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS

#: Evaluation dataset name → (pipeline dataset, split). Human3.6M: SPIN's protocols.
DATASETS = {
    "synthetic": ("synthetic", "test"),
    "h36m_p1": ("h36m", "valid_p1"),
    "h36m_p2": ("h36m", "valid_p2"),
}

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The run's config file, e.g. configs/hkmr.py.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (checkpoints/).")
_DATASETS = flags.DEFINE_list("datasets", ["synthetic"], f"Any of {sorted(DATASETS)}.")
_EVALUATORS = flags.DEFINE_list(
    "evaluators", ["standard", "occluded"], "Any of standard, occluded, doc_sweep."
)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_LIMIT = flags.DEFINE_integer("limit", None, "Evaluate the first N examples only.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Examples per forward pass.")
flags.mark_flags_as_required(["config", "workdir"])


def evaluate_run(config, workdir, datasets, evaluators, step=None, limit=None, batch_size=32):
    """Evaluate a run's checkpoint; returns {dataset: {evaluator: result}} (also on disk)."""
    from pathlib import Path

    import jax
    from flax import nnx

    from hkmr_jax import eval_lib, train_lib
    from hkmr_jax.data import pipeline

    for name in datasets:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
    for name in evaluators:
        if name not in eval_lib.EVALUATORS:
            raise ValueError(
                f"unknown evaluator {name!r}; choose from {sorted(eval_lib.EVALUATORS)}."
            )
    model, restored_step = train_lib.restore_model(config, workdir, step)
    graphdef, variables = nnx.split(model)
    predict = jax.jit(lambda v, images: nnx.merge(graphdef, v)(train_lib.normalize_images(images)))
    body, regressor = train_lib.load_body(config)
    ctx = eval_lib.EvalContext(lambda images: predict(variables, images), body, regressor,
                               batch_size)  # fmt: skip
    out_dir = Path(workdir) / "eval"
    results = {}
    for name in datasets:
        source = pipeline.make_source(*DATASETS[name], config.data)
        result = {"checkpoint_step": restored_step}
        for evaluator in evaluators:
            result[evaluator] = eval_lib.run_evaluator(evaluator, ctx, source, limit=limit)
        eval_lib.write_json(result, out_dir / f"{name}.json")
        if "doc_sweep" in result:
            eval_lib.plot_doc_sweep({config.model.name: result["doc_sweep"]},
                                    out_dir / f"{name}_doc_sweep.png")  # fmt: skip
        results[name] = result
    return results


def _main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from hkmr_jax import eval_lib

    results = evaluate_run(_CONFIG.value, _WORKDIR.value, _DATASETS.value, _EVALUATORS.value,
                           _STEP.value, _LIMIT.value, _BATCH.value)  # fmt: skip
    print(eval_lib.format_table(results))
    print(f"written to {_WORKDIR.value}/eval/")


def main() -> None:
    """Console-script entry point."""
    app.run(_main)


if __name__ == "__main__":
    main()

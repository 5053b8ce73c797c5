"""`hkmr-eval` / `python eval.py`: evaluate a trained run (flax examples style).

    hkmr-eval --config configs/hkmr.py --workdir runs/hkmr \\
        [--datasets synthetic,h36m_p1,h36m_p2,3dpw,mpii,lsp] \\
        [--evaluators standard,occluded,doc_sweep,3dpw,invisible,lsp_seg] \\
        [--body_model_male M.pkl --body_model_female F.pkl] [--step N] [--limit N] \\
        [--vertex_texture vertex_texture.npy --cube_parts cube_parts.npy]

Restores the latest readable checkpoint (or `--step`), evaluates every dataset with every
evaluator (`hkmr_jax.eval_lib`; without `--evaluators`, each dataset's defaults:
`DEFAULT_EVALUATORS`), writes `WORKDIR/eval/<dataset>.json` (schema in the README) and
`WORKDIR/eval/<dataset>_doc_sweep.png`, and prints a table.

`mpii` is SPIN's MPII file (its only MPII split, SPIN's training people: MPII's test
annotations are not public), built with MPII's visibility flags
(`python -m hkmr_jax.data.build --dataset mpii --mpii_annotations ...`); its default
evaluator is `invisible` (paper Table 4 right).

`lsp` is SPIN's LSP test file (`lsp_dataset_test.npz`) built with UP-3D's silhouettes
and part maps; its default evaluator is `lsp_seg` (paper Table 5), whose parts come from
`--vertex_texture` + `--cube_parts` (SPIN's files, for a real SMPL run), `--part_labels`
([V] .npy) or, by default, the run's body's skinning weights.

The `3dpw` evaluator's gendered SMPL models come from `--body_model_male` /
`--body_model_female` (else the config's fields of those names, if it has them); without
them both genders use the run's own body, with a printed note.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS

#: Evaluation dataset name → (pipeline dataset, split). Human3.6M: SPIN's protocols.
#: MPII: SPIN's only MPII file, its training people (MPII's test labels are not public).
DATASETS = {
    "synthetic": ("synthetic", "test"),
    "h36m_p1": ("h36m", "valid_p1"),
    "h36m_p2": ("h36m", "valid_p2"),
    "3dpw": ("3dpw", "test"),
    "mpii": ("mpii", "train"),
    "lsp": ("lsp", "test"),
}

#: Evaluators run when `--evaluators` is not given (3DPW has SMPL ground truth only,
#: MPII 2D keypoints with visibility flags only).
DEFAULT_EVALUATORS = {"3dpw": ("3dpw",), "mpii": ("invisible",), "lsp": ("lsp_seg",)}
_DEFAULT_EVALUATORS = ("standard", "occluded")

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The run's config file, e.g. configs/hkmr.py.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (checkpoints/).")
_DATASETS = flags.DEFINE_list("datasets", ["synthetic"], f"Any of {sorted(DATASETS)}.")
_EVALUATORS = flags.DEFINE_list(
    "evaluators", None, "Any of standard, occluded, doc_sweep, 3dpw, invisible, lsp_seg "
    "(default: standard,occluded; 3dpw for 3dpw; invisible for mpii; lsp_seg for lsp)."
)  # fmt: skip
_MALE = flags.DEFINE_string("body_model_male", None, "Male SMPL .pkl/.npz (3dpw evaluator).")
_FEMALE = flags.DEFINE_string("body_model_female", None, "Female SMPL .pkl/.npz (3dpw).")
_PART_LABELS = flags.DEFINE_string("part_labels", None, "lsp_seg: per-vertex part labels .npy [V].")
_TEXTURE = flags.DEFINE_string("vertex_texture", None, "lsp_seg: SPIN's data/vertex_texture.npy.")
_CUBE = flags.DEFINE_string("cube_parts", None, "lsp_seg: SPIN's data/cube_parts.npy.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_LIMIT = flags.DEFINE_integer("limit", None, "Evaluate the first N examples only.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Examples per forward pass.")
flags.mark_flags_as_required(["config", "workdir"])


def dataset_evaluators(dataset: str, evaluators=None) -> tuple[str, ...]:
    """The evaluators to run on `dataset`: `evaluators`, or the dataset's defaults."""
    if evaluators:
        return tuple(evaluators)
    return DEFAULT_EVALUATORS.get(dataset, _DEFAULT_EVALUATORS)


def evaluate_run(config, workdir, datasets, evaluators=None, step=None, limit=None,
                 batch_size=32, body_model_male=None, body_model_female=None,
                 segmentation_files=None):  # fmt: skip
    """Evaluate a run's checkpoint; returns {dataset: {evaluator: result}} (also on disk).

    `evaluators` None: each dataset's defaults (`DEFAULT_EVALUATORS`). `body_model_male` /
    `body_model_female` (paths; default: the config's fields of those names, if any) go
    to the `3dpw` evaluator; `segmentation_files` ({part_labels, vertex_texture,
    cube_parts}: paths or None) to `lsp_seg`.
    """
    from pathlib import Path

    import jax
    from flax import nnx

    from hkmr_jax import eval_lib, train_lib
    from hkmr_jax.data import pipeline

    for name in datasets:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
        for evaluator in dataset_evaluators(name, evaluators):
            if evaluator not in eval_lib.EVALUATORS:
                raise ValueError(
                    f"unknown evaluator {evaluator!r}; choose from {sorted(eval_lib.EVALUATORS)}."
                )
    gendered = {
        "body_model_male": body_model_male or config.get("body_model_male"),
        "body_model_female": body_model_female or config.get("body_model_female"),
    }
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
        for evaluator in dataset_evaluators(name, evaluators):
            kwargs = gendered if evaluator == "3dpw" else {}
            if evaluator == "lsp_seg":
                kwargs = {k: v for k, v in (segmentation_files or {}).items() if v is not None}
            result[evaluator] = eval_lib.run_evaluator(evaluator, ctx, source, limit=limit,
                                                       **kwargs)  # fmt: skip
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
                           _STEP.value, _LIMIT.value, _BATCH.value, _MALE.value,
                           _FEMALE.value,
                           {"part_labels": _PART_LABELS.value,
                            "vertex_texture": _TEXTURE.value,
                            "cube_parts": _CUBE.value})  # fmt: skip
    print(eval_lib.format_table(results))
    print(f"written to {_WORKDIR.value}/eval/")


def main() -> None:
    """Console-script entry point."""
    app.run(_main)


if __name__ == "__main__":
    main()

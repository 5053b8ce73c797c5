"""`hkmr-eval` / `python eval.py`: evaluate a trained run with its own config.

    hkmr-eval --workdir runs/hkmr       # the run's own evaluation (its config.evals)
    hkmr-eval --workdir runs/hkmr [--datasets synthetic,synthetic_2d,h36m_p1,h36m_p2,3dpw,mpii,lsp]
        [--evaluators standard,occluded,doc_sweep,3dpw,invisible,lsp_seg] [--step N] ...

The model, its crop size, its body and `data_dir` come from WORKDIR/config.json; results
go to WORKDIR/eval/<dataset>.json. Every flag and rule: docs/evaluation.md.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from hkmr_jax import cli

FLAGS = flags.FLAGS
_PROG = "hkmr-eval"

#: Evaluation dataset name → (pipeline dataset, split). Human3.6M: SPIN's protocols.
#: MPII: SPIN's only MPII file, its training people (MPII's test labels are not public).
#: synthetic_2d: the training people that 'synthetic_2d' gives with 2D keypoints only.
DATASETS = {
    "synthetic": ("synthetic", "test"),
    "synthetic_2d": ("synthetic_2d_truth", "train"),
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

#: Config fields `--config` may change: what is evaluated and where the files are.
EVAL_FIELDS = ("evals", "eval_batch_size", "data.data_dir", "body_model_male",
               "body_model_female")  # fmt: skip
#: Fields evaluation does not read (training's bookkeeping, the initial weights that the
#: checkpoint replaces): they may differ.
IGNORED_FIELDS = ("log_every", "checkpoint_every", "keep_checkpoints", "eval_every",
                  "progress_bar", "multihost", "model.encoder_init",
                  "prior_checkpoint")  # fmt: skip
#: Files of the run that may have moved: accepted when the saved path is missing here.
MOVABLE_FIELDS = ("body_model", "h36m_regressor")

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Optional: a config file whose evaluation fields (and --config.* "
    f"overrides of them: {', '.join(EVAL_FIELDS)}) replace the run's.", lock_config=True
)  # fmt: skip
_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's directory.")
_DATASETS = flags.DEFINE_list(
    "datasets", None, f"Any of {sorted(DATASETS)} (default: the run's config.evals, or "
    "synthetic when --evaluators is given)."
)  # fmt: skip
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
_BATCH = flags.DEFINE_integer(
    "batch_size", None, "Examples per forward pass (default: the run's eval_batch_size)."
)
_VERBOSE = flags.DEFINE_bool("verbose", False, "Print tracebacks of errors too.")


def dataset_evaluators(dataset: str, evaluators=None) -> tuple[str, ...]:
    """The evaluators to run on `dataset`: `evaluators`, or the dataset's defaults."""
    if evaluators:
        return tuple(evaluators)
    return DEFAULT_EVALUATORS.get(dataset, _DEFAULT_EVALUATORS)


def _flat(tree, prefix="") -> dict:
    """{'a.b': value} of a nested dict (lists and other values are leaves)."""
    if isinstance(tree, dict) and tree:
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _under(field: str, names) -> bool:
    return any(field == n or field.startswith(n + ".") for n in names)


def merge_eval_config(saved, given):
    """The run's config `saved` with the evaluation fields of `given` (a config from
    `--config`); a difference elsewhere is a `cli.UserError` naming the field.

    Both are `ConfigDict`s; returns a new one (`saved` is not changed).
    """
    old = _flat(json.loads(saved.to_json_best_effort()))
    new = _flat(json.loads(given.to_json_best_effort()))
    merged = json.loads(saved.to_json_best_effort())
    refused, notes = [], []
    for field in sorted(set(old) | set(new)):
        a, b = old.get(field, "<absent>"), new.get(field, "<absent>")
        if a == b or _under(field, IGNORED_FIELDS):
            continue
        if _under(field, EVAL_FIELDS) or (_under(field, MOVABLE_FIELDS) and a and b
                                          and not Path(str(a)).expanduser().exists()):  # fmt: skip
            notes += [f"{field}: {a!r} → {b!r}"] if _under(field, MOVABLE_FIELDS) else []
            continue
        refused.append(f"{field}: the run's {a!r}, --config's {b!r}")
    if refused:
        raise cli.UserError(
            "--config changes what the run was trained with, which evaluation must not:\n  "
            + "\n  ".join(refused[:10])
            + f"\n--config may change only {', '.join(EVAL_FIELDS)} (the model, its crop "
            "size and its body come from WORKDIR/config.json); drop these overrides, or "
            "leave out --config to evaluate with the run's own config."
        )
    for note in notes:
        print(f"{_PROG}: note: the run's file is missing here; using {note}", file=sys.stderr)
    for field in EVAL_FIELDS + MOVABLE_FIELDS:  # (nested dicts: replaced whole)
        head, _, leaf = field.rpartition(".")
        src = json.loads(given.to_json_best_effort())
        dst = merged
        for part in filter(None, head.split(".")):
            src, dst = src.get(part, {}), dst.setdefault(part, {})
        if leaf in src:
            dst[leaf] = src[leaf]
    return ml_collections.ConfigDict(merged)


def _plan(config, datasets, evaluators, limit):
    """[(file name, json key, pipeline dataset, split, evaluator, kwargs)] to run."""
    from hkmr_jax import eval_lib  # lazy, heavy (JAX): see `evaluate_run`

    plan = []
    if datasets is None and evaluators is None and config.get("evals"):
        names = {v: k for k, v in DATASETS.items()}
        keys = set()
        for i, spec in enumerate(config.evals):
            spec = dict(spec)
            if not isinstance(spec.get("name"), str) or spec["name"] not in eval_lib.EVALUATORS:
                raise cli.UserError(
                    f"config.evals[{i}] names evaluator {spec.get('name')!r}; choose from "
                    f"{sorted(eval_lib.EVALUATORS)}."
                )
            name = spec.pop("name")
            dataset, split = spec.pop("dataset", "synthetic"), spec.pop("split", "test")
            label = spec.pop("label", f"{dataset}_{split}_{name}")
            file = names.get((dataset, split), f"{dataset}_{split}")
            key = name if (file, name) not in keys else label
            keys.add((file, key))
            if limit is not None:
                spec["limit"] = limit
            plan.append((file, key, dataset, split, name, spec))
        return plan
    for name in datasets or ["synthetic"]:
        if name not in DATASETS:
            raise cli.UserError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
        for evaluator in dataset_evaluators(name, evaluators):
            if evaluator not in eval_lib.EVALUATORS:
                raise cli.UserError(
                    f"unknown evaluator {evaluator!r}; choose from {sorted(eval_lib.EVALUATORS)}."
                )
            plan.append((name, evaluator, *DATASETS[name], evaluator, {"limit": limit}))
    return plan


def _check_crop_size(source, name, image_size) -> None:
    """Warn when a dataset's crops are not the size the run was trained on."""
    if not len(source):
        return
    side = int(source[0]["image"].shape[0])
    if side != int(image_size):
        print(
            f"{_PROG}: warning: {name} has {side} px crops but the run was trained on "
            f"{image_size} px crops (config.data.image_size); they are evaluated at {side} "
            "px, a scale the model did not see in training.",
            file=sys.stderr,
        )


def _with_earlier(path: Path, result: dict) -> dict:
    """`result` with the other evaluators' keys of an earlier evaluation of the same
    checkpoint kept (`--evaluators lsp_seg` adds its key next to `standard`'s)."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return result
    if not isinstance(earlier, dict) or earlier.get("checkpoint_step") != result["checkpoint_step"]:
        return result
    return {**earlier, **result}


def evaluate_run(config, workdir, datasets=None, evaluators=None, step=None, limit=None,
                 batch_size=None, body_model_male=None, body_model_female=None,
                 segmentation_files=None):  # fmt: skip
    """Evaluate a run's checkpoint; returns {dataset: {evaluator: result}} (also on disk).

    Args:
      config: the run's config with any evaluation changes (`merge_eval_config`), or
        None: ``WORKDIR/config.json``.
      datasets, evaluators: names; both None: the config's `evals` (training's own
        evaluation); evaluators None: each dataset's defaults (`DEFAULT_EVALUATORS`).
      step: checkpoint step (None: the newest readable).
      limit: the first N examples of each dataset (None: all, or each `evals` entry's).
      batch_size: per forward pass (None: `config.eval_batch_size`, else 32).
      body_model_male, body_model_female: paths for the `3dpw` evaluator (default: the
        config's fields of those names, if any).
      segmentation_files: {part_labels, vertex_texture, cube_parts}: paths or None, for
        the `lsp_seg` evaluator.
    """
    # Lazy, heavy: these load JAX, flax, orbax and grain (~1,400 modules against ~200 for
    # this module), so --help and flag errors answer at once.
    from hkmr_jax import eval_lib, eval_report, inference
    from hkmr_jax.data import pipeline

    for value, flag in ((limit, "limit"), (batch_size, "batch_size")):
        if value is not None and value < 1:
            raise cli.UserError(f"--{flag} must be a positive number, got {value}.")
    if step is not None and step < 0:
        raise cli.UserError(f"--step must be a saved step (>= 0), got {step}.")
    workdir = inference.check_workdir(workdir)
    config = inference.load_run_config(workdir) if config is None else config
    plan = _plan(config, datasets, evaluators, limit)
    batch_size = int(batch_size or config.get("eval_batch_size") or 32)
    if batch_size < 1:
        raise cli.UserError(f"config.eval_batch_size must be positive, got {batch_size}.")
    gendered = {
        "body_model_male": body_model_male or config.get("body_model_male"),
        "body_model_female": body_model_female or config.get("body_model_female"),
    }
    sources = {}  # opened before the (slow) restore: a missing dataset fails at once
    for file, _, dataset, split, _, _ in plan:
        if (dataset, split) not in sources:
            try:
                sources[dataset, split] = pipeline.make_source(dataset, split, config.data)
            except (ValueError, FileNotFoundError) as e:
                hint = (" Give it with --config.data.data_dir=DIR." if "data_dir" in str(e)
                        and config.data.get("data_dir") is None else "")  # fmt: skip
                raise cli.UserError(f"{file}: {e}{hint}") from None
            _check_crop_size(sources[dataset, split], file, config.data.image_size)
    run = inference.restore(workdir, config, step)
    ctx = eval_lib.EvalContext(run.predictor(), run.body, run.h36m_regressor, batch_size)
    out_dir = Path(workdir) / "eval"
    results = {}
    for file, key, dataset, split, evaluator, kwargs in plan:
        if evaluator == "3dpw":
            kwargs = {**{k: v for k, v in gendered.items() if v}, **kwargs}
        if evaluator == "lsp_seg":
            files = {k: v for k, v in (segmentation_files or {}).items() if v is not None}
            kwargs = {**files, **kwargs}
        result = results.setdefault(file, {"checkpoint_step": run.step})
        result[key] = eval_lib.run_evaluator(evaluator, ctx, sources[dataset, split], **kwargs)
    for file, result in results.items():
        eval_report.write_json(
            _with_earlier(out_dir / f"{file}.json", result), out_dir / f"{file}.json"
        )
        if "doc_sweep" in result:
            eval_report.plot_doc_sweep({config.model.name: result["doc_sweep"]},
                                       out_dir / f"{file}_doc_sweep.png")  # fmt: skip
    return results


def _main(argv) -> None:
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _WORKDIR.value:
        raise cli.UserError("--workdir is required: the training run's directory.")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from hkmr_jax import eval_report, inference  # lazy, heavy: see `evaluate_run`

    config = None
    if FLAGS["config"].present or _OVERRIDES:
        saved = inference.load_run_config(_WORKDIR.value)
        given = _config() if FLAGS["config"].present else apply_overrides(saved, _OVERRIDES)
        config = merge_eval_config(saved, given)
    results = evaluate_run(config, _WORKDIR.value, _DATASETS.value, _EVALUATORS.value,
                           _STEP.value, _LIMIT.value, _BATCH.value, _MALE.value,
                           _FEMALE.value,
                           {"part_labels": _PART_LABELS.value,
                            "vertex_texture": _TEXTURE.value,
                            "cube_parts": _CUBE.value})  # fmt: skip
    print(eval_report.format_table(results))
    print(f"written to {Path(_WORKDIR.value) / 'eval'}/")


def _config():
    """The `--config` file's config; its loading errors are the user's."""
    try:
        config = _CONFIG.value
        config.keys()  # a file that failed to load raises on first use
        return config
    except (flags.Error, OSError, SyntaxError, AttributeError, TypeError, ValueError) as e:
        text = " ".join(line.strip() for line in str(e).splitlines())
        text = text.removeprefix("Configuration is not available because of an earlier "
                                 "failure to load: ")  # fmt: skip
        raise cli.UserError(f"--config: {text}") from None


#: `--config.FIELD=VALUE` given without `--config`: overrides of the run's own config.
_OVERRIDES: dict[str, str] = {}


def _split_overrides(argv) -> tuple[list[str], dict[str, str]]:
    """(argv without its `--config.*` overrides, {field: value text}) when `--config` is
    not given (with it, config_flags applies them to that file's config)."""
    if any(re.match(r"^--?config(=|$)", a) for a in argv):
        return list(argv), {}
    rest, overrides = [], {}
    args = iter(argv)
    for arg in args:
        match = re.match(r"^--?config\.([^=]+)(?:=(.*))?$", arg, re.S)
        if not match:
            rest.append(arg)
            continue
        value = match.group(2)
        if value is None and (value := next(args, None)) is None:
            raise cli.UserError(f"{arg} needs a value ({arg}=VALUE).")
        overrides[match.group(1)] = value
    return rest, overrides


def apply_overrides(config, overrides: dict[str, str]):
    """A copy of `config` with `{field: text}` set, each parsed as the field's type (a
    field that is None takes the text as a string)."""
    data = json.loads(config.to_json_best_effort())
    for field, text in overrides.items():
        *parents, leaf = field.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise cli.UserError(f"--config.{field}: the run's config has no field {field}.")
        old = node[leaf]
        try:
            if isinstance(old, bool):
                value = {"true": True, "false": False}[text.strip().lower()]
            elif isinstance(old, int | float):
                value = type(old)(text)
            elif old is None or isinstance(old, str):
                value = text
            else:
                raise cli.UserError(
                    f"--config.{field}: a {type(old).__name__} cannot be given on the command "
                    "line; put it in a config file and pass --config FILE."
                )
        except (KeyError, ValueError):
            raise cli.UserError(
                f"--config.{field}={text}: expected a {type(old).__name__} like the run's {old!r}."
            ) from None
        node[leaf] = value
    return ml_collections.ConfigDict(data)


def _parse(argv):
    """absl's flag parsing with its errors as one line and exit status 2."""
    FLAGS.unparse_flags()  # `main` may run more than once in a process (tests)
    with cli.report_errors(_PROG):
        argv, overrides = _split_overrides(argv)
    _OVERRIDES.clear()
    _OVERRIDES.update(overrides)
    saved, sys.argv = sys.argv, list(argv)  # config_flags reads --config.* from sys.argv
    with cli.report_errors(_PROG):
        try:
            argv = FLAGS(argv)
        except flags.Error as e:
            raise cli.UserError(f"{e} (see --help)") from None
        finally:
            sys.argv = saved
    cli.set_verbose(_VERBOSE.value)
    return argv


def main(argv=None) -> None:
    """Console-script entry point (`argv`: sys.argv's form, program name first); exits
    with status 0, or 2 for a user error."""
    app.run(_run, argv=argv, flags_parser=_parse)


def _run(argv) -> None:
    with cli.report_errors(_PROG):
        _main(argv)


if __name__ == "__main__":
    main()

"""Evaluation: MPJPE / PA-MPJPE clean and under synthetic occlusions, the DoC sweep, speed.

Protocol (SPIN's, `shared/FORMATS.md`): the predicted mesh of the last iteration goes
through a 17-joint Human3.6M regressor (the user's `J_regressor_h36m.npy` for real SMPL,
the built-in body's own otherwise) into SPIN's J24 slots, is centred on the pelvis, and
the 14 LSP joints (`skeleton.J24_TO_J14`) are compared with the ground truth's
root-centred `joints_3d` (same slots). Errors are reported in millimetres.

Evaluators (`EVALUATORS`, selected by `config.evals` entries `{'name': ..., ...}`):

* `standard`: MPJPE and PA-MPJPE on a dataset.
* `occluded`: the same under the fixed Bar / Circle / Rectangle test sets
  (`data.occlusion.occlude_test_set`: DoC 3, seeded per example).
* `doc_sweep`: paper Fig. 6 — for each DoC 1…5 and occluder kind, the occluder centred
  on each of the 14 LSP joints in turn, MPJPE averaged over the joints; plotted to PNG.

Datasets: `synthetic` (the built-in test split) and, once built with
`python -m hkmr_jax.data.build`, `h36m_p1` / `h36m_p2` (SPIN-format valid_p1 / valid_p2).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from hkmr_jax import geometry, metrics
from hkmr_jax.data import occlusion
from hkmr_jax.models.params import RegressorOutput
from smpl_jax import skeleton

OCCLUDERS = ("bar", "circle", "rectangle")
LSP_JOINTS_J24 = tuple(range(14))  # J24 slots 0..13 are the 14 LSP joints
DOCS = (1, 2, 3, 4, 5)


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """What every evaluator needs.

    Attributes:
      predict: images uint8 [B, S, S, 3] → RegressorOutput (jitted by the caller; called
        with a fixed B so that it compiles once).
      body: the `smpl_jax.SMPL` the model predicts for.
      h36m_regressor: [17, V].
      batch_size: examples per call.
    """

    predict: Callable[[jax.Array], RegressorOutput]
    body: object
    h36m_regressor: jax.Array
    batch_size: int = 32


def predicted_j14(out: RegressorOutput, body, h36m_regressor):
    """The final estimate's 14 LSP joints, pelvis-centred, metres: [B, 14, 3]."""
    final = out.final
    vertices = body(
        betas=final.betas,
        body_pose=final.rotmat[:, 1:],
        global_orient=final.rotmat[:, :1],
        pose2rot=False,
    ).vertices
    joints, _ = geometry.j24_joints(vertices, h36m_regressor)
    return geometry.root_centred(joints)[:, list(skeleton.J24_TO_J14)]


def _batches(source, batch_size, limit):
    """Fixed-size batches (the last one padded by repeating) and their valid counts."""
    n = len(source) if limit is None else min(limit, len(source))
    for start in range(0, n, batch_size):
        idx = [min(i, n - 1) for i in range(start, start + batch_size)]
        examples = [source[i] for i in idx]
        batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
        yield batch, min(batch_size, n - start)


def _errors(ctx: EvalContext, images, batch):
    out = ctx.predict(images)
    pred = predicted_j14(out, ctx.body, ctx.h36m_regressor)
    gt = jnp.asarray(batch["joints_3d"][:, list(skeleton.J24_TO_J14), :3])
    return metrics.mpjpe(pred, gt) * 1000.0, metrics.pa_mpjpe(pred, gt) * 1000.0


def evaluate(ctx: EvalContext, source, transform=None, limit=None) -> dict:
    """MPJPE / PA-MPJPE (mm) and seconds per image on `source`.

    Args:
      ctx: EvalContext.
      source: random access: `len()` and `[i] -> example dict` (docs/CONTRACT_data.md).
      transform: optional (images, batch) → images, e.g. an occluder.
      limit: evaluate the first `limit` examples only.
    """
    mpjpe, pa, seconds, count = [], [], 0.0, 0
    for batch, valid in _batches(source, ctx.batch_size, limit):
        images = jnp.asarray(batch["image"])
        if transform is not None:
            images = transform(images, batch)
        if count == 0:  # compile outside the timed region
            jax.block_until_ready(_errors(ctx, images, batch))
        start = time.perf_counter()
        e, p = _errors(ctx, images, batch)
        e, p = np.asarray(e)[:valid], np.asarray(p)[:valid]  # waits for the device
        seconds += time.perf_counter() - start
        mpjpe.append(e)
        pa.append(p)
        count += valid
    mpjpe, pa = np.concatenate(mpjpe), np.concatenate(pa)
    return {
        "mpjpe_mm": float(mpjpe.mean()),
        "pa_mpjpe_mm": float(pa.mean()),
        "num_examples": count,
        "seconds_per_image": seconds / max(count, 1),
    }


def _occluded(kind):
    def transform(images, batch):
        return occlusion.occlude_test_set(images, batch["keypoints"], batch["example_id"], kind)

    return transform


def _centred_on_joint(kind, doc, joint):
    def transform(images, batch):
        size = images.shape[1]
        centers = occlusion.joint_centers(jnp.asarray(batch["keypoints"]), joint, size)
        keys = occlusion.example_keys(batch["example_id"], stream=joint)
        return occlusion.occlude(images, kind, doc, centers, keys)

    return transform


def standard(ctx, source, limit=None, **_):
    return evaluate(ctx, source, limit=limit)


def occluded(ctx, source, limit=None, kinds=OCCLUDERS, **_):
    return {kind: evaluate(ctx, source, _occluded(kind), limit) for kind in kinds}


def doc_sweep(ctx, source, limit=None, kinds=OCCLUDERS, joints=LSP_JOINTS_J24, **_):
    """{kind: {doc: MPJPE averaged over the occluded joints}} (paper Fig. 6)."""
    result = {}
    for kind in kinds:
        result[kind] = {}
        for doc in DOCS:
            per_joint = [
                evaluate(ctx, source, _centred_on_joint(kind, doc, j), limit)["mpjpe_mm"]
                for j in joints
            ]
            result[kind][str(doc)] = float(np.mean(per_joint))
    return result


EVALUATORS: dict[str, Callable] = {
    "standard": standard,
    "occluded": occluded,
    "doc_sweep": doc_sweep,
}


def run_evaluator(name: str, ctx: EvalContext, source, **kwargs) -> dict:
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator {name!r}; choose one of {sorted(EVALUATORS)}.")
    return EVALUATORS[name](ctx, source, **kwargs)


def write_json(result: dict, path) -> Path:
    """Write `result` as JSON atomically (temporary name + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plot_doc_sweep(sweeps: dict[str, dict], path) -> Path:
    """Paper Fig. 6: MPJPE vs degree of occlusion, one panel per occluder kind.

    Args:
      sweeps: {model label: doc_sweep result}.
      path: PNG to write (atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({k for s in sweeps.values() for k in s}, key=OCCLUDERS.index)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for label, sweep in sweeps.items():
            docs = sorted(sweep[kind], key=int)
            ax.plot([int(d) for d in docs], [sweep[kind][d] for d in docs], "o-", label=label)
        ax.set_title(kind)
        ax.set_xlabel("degree of occlusion")
        ax.set_xticks(DOCS)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("MPJPE (mm)")
    axes[0][-1].legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def format_table(results: dict[str, dict]) -> str:
    """A plain-text table of {dataset: {'standard': ..., 'occluded': ...}} results."""
    lines = [f"{'dataset':<14} {'setting':<10} {'MPJPE':>8} {'PA-MPJPE':>9} {'s/img':>8}"]
    for dataset, result in results.items():
        rows = []
        if "standard" in result:
            rows.append(("standard", result["standard"]))
        rows += [(k, v) for k, v in result.get("occluded", {}).items()]
        for setting, r in rows:
            lines.append(
                f"{dataset:<14} {setting:<10} {r['mpjpe_mm']:>8.2f} {r['pa_mpjpe_mm']:>9.2f} "
                f"{r['seconds_per_image']:>8.4f}"
            )
    return "\n".join(lines)

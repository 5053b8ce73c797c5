"""Evaluation: MPJPE / PA-MPJPE clean and under synthetic occlusions, the DoC sweep, 3DPW's
mesh errors, invisible joints, LSP segmentation, speed (`EVALUATORS`, run by `hkmr-eval`
and by training's `config.evals`).

SPIN's protocol: the last iteration's mesh through a 17-joint Human3.6M regressor, centred
on the pelvis; its 14 LSP joints against the root-centred `joints_3d` (docs/CONTRACT_data.md),
in millimetres. Each evaluator's protocol and the datasets: docs/evaluation.md.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import smpl_jax
from hkmr_jax import geometry, metrics, segmentation
from hkmr_jax.data import occlusion
from hkmr_jax.models.params import RegressorOutput
from smpl_jax import skeleton

OCCLUDERS = ("bar", "circle", "rectangle")
LSP_JOINTS_J24 = tuple(range(14))  # J24 slots 0..13 are the 14 LSP joints
DOCS = (1, 2, 3, 4, 5)
#: `invisible`'s PCK threshold as a fraction of the crop side.
PCK_FRACTION = 0.05
_J14 = list(skeleton.J24_TO_J14)
_PELVIS = geometry.PELVIS_J24


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


def predicted_vertices(out: RegressorOutput, body):
    """The final estimate's mesh (no translation), metres: [B, V, 3]."""
    final = out.final
    return body(
        betas=final.betas,
        body_pose=final.rotmat[:, 1:],
        global_orient=final.rotmat[:, :1],
        pose2rot=False,
    ).vertices


def _centred_j14_and_pelvis(vertices, h36m_regressor):
    joints, _ = geometry.j24_joints(vertices, h36m_regressor)
    pelvis = joints[:, _PELVIS : _PELVIS + 1]
    return (joints - pelvis)[:, _J14], pelvis


def predicted_j14(out: RegressorOutput, body, h36m_regressor):
    """The final estimate's 14 LSP joints, pelvis-centred, metres: [B, 14, 3]."""
    return _centred_j14_and_pelvis(predicted_vertices(out, body), h36m_regressor)[0]


def predicted_keypoints(out: RegressorOutput, body, h36m_regressor):
    """The final estimate's J24 keypoints in the crop's [-1, 1] coordinates.

    Returns:
      (keypoints [B, 24, 2]: `geometry.weak_perspective` of the mesh's J24 joints with the
      predicted camera, mask [24]: 1 on the 17 slots a mesh predicts).
    """
    joints, mask = geometry.j24_joints(predicted_vertices(out, body), h36m_regressor)
    return geometry.weak_perspective(joints, out.final.camera), mask


def _batches(source, batch_size, limit):
    """Fixed-size batches (the last one padded by repeating) and their valid counts."""
    n = len(source) if limit is None else min(limit, len(source))
    for start in range(0, n, batch_size):
        idx = [min(i, n - 1) for i in range(start, start + batch_size)]
        examples = [source[i] for i in idx]
        batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
        yield batch, min(batch_size, n - start)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """What `evaluate` compares.

    Attributes:
      target: (ctx, batch) → the batch's ground truth (computed outside the timed region).
      errors: (ctx, RegressorOutput, target) → {name: per-example errors [B]}; each is
        averaged over the examples.
    """

    target: Callable[[EvalContext, dict], Any]
    errors: Callable[[EvalContext, RegressorOutput, Any], dict[str, jax.Array]]


def _first_example_id(batch, bad) -> int:
    return int(np.asarray(batch["example_id"])[np.argmax(bad)])


def _joints_target(ctx: EvalContext, batch):
    if "has_3d" in batch and not np.all(batch["has_3d"] > 0):
        raise ValueError(
            f"example {_first_example_id(batch, batch['has_3d'] <= 0)} has no 3D joints "
            "(has_3d = 0): the joint evaluators (standard, occluded, doc_sweep) compare "
            "with `joints_3d`; for SMPL ground truth (3DPW) use the '3dpw' evaluator."
        )
    return jnp.asarray(batch["joints_3d"][:, _J14, :3])


def _joint_errors(ctx: EvalContext, out: RegressorOutput, gt):
    pred = predicted_j14(out, ctx.body, ctx.h36m_regressor)
    return {
        "mpjpe_mm": metrics.mpjpe(pred, gt) * 1000.0,
        "pa_mpjpe_mm": metrics.pa_mpjpe(pred, gt) * 1000.0,
    }


#: The H36M / synthetic protocol: the 14 LSP joints against `joints_3d`.
JOINTS = Protocol(_joints_target, _joint_errors)


def _run(protocol: Protocol, ctx: EvalContext, images, target):
    return protocol.errors(ctx, ctx.predict(images), target)


def evaluate(ctx: EvalContext, source, transform=None, limit=None, protocol=JOINTS) -> dict:
    """Errors averaged over the examples (MPJPE / PA-MPJPE in mm by default) and seconds
    per image (prediction and errors, not the ground truth) on `source`.

    Args:
      ctx: EvalContext.
      source: random access: `len()` and `[i] -> example dict` (docs/CONTRACT_data.md).
      transform: optional (images, batch) → images, e.g. an occluder.
      limit: evaluate the first `limit` examples only.
      protocol: what to compare (`JOINTS`, or `smpl_protocol(...)` for 3DPW).
    """
    errors, seconds, count = collections.defaultdict(list), 0.0, 0
    for batch, valid in _batches(source, ctx.batch_size, limit):
        images = jnp.asarray(batch["image"])
        if transform is not None:
            images = transform(images, batch)
        target = protocol.target(ctx, batch)
        if count == 0:  # compile outside the timed region
            jax.block_until_ready(_run(protocol, ctx, images, target))
        start = time.perf_counter()
        result = _run(protocol, ctx, images, target)
        result = {k: np.asarray(v)[:valid] for k, v in result.items()}  # waits for the device
        seconds += time.perf_counter() - start
        for k, v in result.items():
            errors[k].append(v)
        count += valid
    if not count:
        raise ValueError("evaluate: the source has no examples.")
    summary = {k: float(np.concatenate(v).mean()) for k, v in errors.items()}
    return {**summary, "num_examples": count, "seconds_per_image": seconds / count}


# --------------------------------------------------------------------------------- 3DPW

#: Example `gender` → 0 (the run's body), 1 (male), 2 (female).
_GENDERS = {"": 0, "m": 1, "male": 1, "f": 2, "female": 2}


def gender_codes(batch) -> np.ndarray:
    """[B] int: 0 no gender (the run's body), 1 male, 2 female, from `batch['gender']`
    (str or bytes: 'm' / 'f' as in SPIN's 3DPW file, '' or no key: none)."""
    if "gender" not in batch:
        return np.zeros(len(batch["image"]), np.int32)
    codes = []
    for g, example_id in zip(batch["gender"], batch["example_id"]):
        g = (g.decode() if isinstance(g, bytes) else str(g)).strip().lower()
        if g not in _GENDERS:
            raise ValueError(
                f"example {int(example_id)}: unknown gender {g!r}; expected 'm', 'f' or ''."
            )
        codes.append(_GENDERS[g])
    return np.asarray(codes, np.int32)


def _smpl_target(ctx: EvalContext, batch, male, female):
    has_smpl = np.asarray(batch.get("has_smpl", np.ones(len(batch["image"]))))
    if not np.all(has_smpl > 0):
        raise ValueError(
            f"example {_first_example_id(batch, has_smpl <= 0)} has no SMPL ground truth "
            "(has_smpl = 0): the '3dpw' evaluator builds the true mesh from pose / betas."
        )
    codes = gender_codes(batch)
    pose, betas = jnp.asarray(batch["pose"]), jnp.asarray(batch["betas"])
    vertices = None
    for code, body in enumerate((ctx.body, male, female)):
        rows = codes == code
        if not rows.any():
            continue
        v = body(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
        vertices = v if vertices is None else jnp.where(rows[:, None, None], v, vertices)
    j14, pelvis = _centred_j14_and_pelvis(vertices, ctx.h36m_regressor)
    return j14, vertices - pelvis


def _smpl_errors(ctx: EvalContext, out: RegressorOutput, target):
    gt_j14, gt_vertices = target
    vertices = predicted_vertices(out, ctx.body)
    pred_j14, pelvis = _centred_j14_and_pelvis(vertices, ctx.h36m_regressor)
    return {
        "mpjpe_mm": metrics.mpjpe(pred_j14, gt_j14) * 1000.0,
        "pa_mpjpe_mm": metrics.pa_mpjpe(pred_j14, gt_j14) * 1000.0,
        "pve_mm": metrics.pve(vertices - pelvis, gt_vertices) * 1000.0,
    }


def smpl_protocol(male, female) -> Protocol:
    """3DPW's protocol with these gendered models (`smpl_jax.SMPL`, same mesh as the
    run's body): ground truth from each example's pose / betas / gender."""
    return Protocol(lambda ctx, batch: _smpl_target(ctx, batch, male, female), _smpl_errors)


_LOADED_BODIES: dict[str, object] = {}


def _body(spec, ctx: EvalContext, name: str):
    if isinstance(spec, str | os.PathLike):
        path = os.fspath(spec)
        if path not in _LOADED_BODIES:
            _LOADED_BODIES[path] = smpl_jax.load(path)
        spec = _LOADED_BODIES[path]
    if spec.num_vertices != ctx.body.num_vertices:
        raise ValueError(
            f"{name} has {spec.num_vertices} vertices but the run's body has "
            f"{ctx.body.num_vertices}: give the gendered models of the run's body (e.g. "
            "SMPL's basicModel_m / _f files with SMPL_NEUTRAL)."
        )
    return spec


def gendered_bodies(ctx: EvalContext, body_model_male=None, body_model_female=None):
    """(male, female) models from paths or `smpl_jax.SMPL`s; neither given: the run's
    body for both, with a printed note; only one given: ValueError."""
    if body_model_male is None and body_model_female is None:
        print(
            "note: 3dpw evaluator: no body_model_male / body_model_female given; the "
            "ground-truth meshes use the run's own body for both genders."
        )
        return ctx.body, ctx.body
    if body_model_male is None or body_model_female is None:
        raise ValueError(
            "give both body_model_male and body_model_female (or neither, to use the "
            "run's body for both genders)."
        )
    return (_body(body_model_male, ctx, "body_model_male"),
            _body(body_model_female, ctx, "body_model_female"))  # fmt: skip


def pw3d(ctx, source, limit=None, body_model_male=None, body_model_female=None, **_):
    """SPIN's 3DPW protocol: MPJPE, PA-MPJPE and PVE (mm) against gendered SMPL meshes."""
    male, female = gendered_bodies(ctx, body_model_male, body_model_female)
    return evaluate(ctx, source, limit=limit, protocol=smpl_protocol(male, female))


# ------------------------------------------------------------------------ invisible joints


def joint_sets(batch) -> tuple[np.ndarray, np.ndarray]:
    """(invisible, visible): [B, 24] bool, the annotated joints that are hidden / seen.

    With a `visible` [B, 24] key: annotated = keypoint confidence > 0, split by `visible`
    (an annotated joint with `visible` < 0, unknown, raises a ValueError: an MPII split
    built without MPII's annotation file). Without: invisible = a 3D joint exists
    (`joints_3d[..., 3] > 0`), keypoint confidence 0 and the keypoint inside the crop;
    visible = confidence > 0.
    """
    keypoints = np.asarray(batch["keypoints"])
    labelled = keypoints[..., 2] > 0
    if "visible" in batch:
        flags = np.asarray(batch["visible"])
        unknown = labelled & (flags < 0)
        if unknown.any():
            row = int(np.argmax(unknown.any(axis=-1)))
            ids = batch.get("example_id")
            example = f"example {int(ids[row])}" if ids is not None else f"batch row {row}"
            raise ValueError(
                f"{example} has annotated joints of unknown visibility (visible = "
                "-1): its dataset was built without MPII's annotation file. Rebuild it with "
                "the flags: delete its folder, then python -m hkmr_jax.data.build --dataset "
                "mpii --mpii_annotations <path>/mpii_human_pose_v1_u12_1.mat --manual_dir "
                "... --data_dir ..."
            )
        seen = flags > 0
        return labelled & ~seen, labelled & seen
    inside = np.all(np.abs(keypoints[..., :2]) <= 1.0, axis=-1)
    exists = np.asarray(batch["joints_3d"])[..., 3] > 0
    return exists & ~labelled & inside, labelled


def invisible(ctx, source, limit=None, pck_fraction=PCK_FRACTION, **_):
    """2D error of invisible (and, for comparison, visible) joints, pixels and PCK (%).

    Returns:
      {mpjpe_px, pck, num_joints, pck_threshold_px, num_examples,
       visible: {mpjpe_px, pck, num_joints}}; mpjpe_px and pck are None without joints.
    """
    sums = {"invisible": np.zeros(3), "visible": np.zeros(3)}  # distance, hits, joints
    count, threshold = 0, None
    for batch, valid in _batches(source, ctx.batch_size, limit):
        images = jnp.asarray(batch["image"])
        size = images.shape[1]  # square crops
        threshold = pck_fraction * size
        pred, mask = predicted_keypoints(ctx.predict(images), ctx.body, ctx.h36m_regressor)
        gt = np.asarray(batch["keypoints"])[:valid, :, :2]
        dist = np.linalg.norm(np.asarray(pred)[:valid] - gt, axis=-1) * (size / 2.0)
        for name, joints in zip(("invisible", "visible"), joint_sets(batch)):
            joints = joints[:valid] & (np.asarray(mask) > 0)
            sums[name] += [dist[joints].sum(), (dist[joints] <= threshold).sum(), joints.sum()]
        count += valid
    if not count:
        raise ValueError("invisible: the source has no examples.")

    def summary(distance, hits, n):
        return {
            "mpjpe_px": float(distance / n) if n else None,
            "pck": float(100.0 * hits / n) if n else None,
            "num_joints": int(n),
        }

    return {
        **summary(*sums["invisible"]),
        "pck_threshold_px": threshold,
        "num_examples": count,
        "visible": summary(*sums["visible"]),
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


# ----------------------------------------------------------------- LSP segmentation

_SEG_KEYS = ("seg_mask", "seg_parts")


def _seg_batches(source, batch_size, limit):
    """Like `_batches`, but the true maps (sizes differ per image) stay lists."""
    n = len(source) if limit is None else min(limit, len(source))
    for start in range(0, n, batch_size):
        idx = [min(i, n - 1) for i in range(start, start + batch_size)]
        examples = [source[i] for i in idx]
        missing = [int(e["example_id"]) for e in examples if not all(k in e for k in _SEG_KEYS)]
        if missing:
            raise ValueError(
                f"example {missing[0]} has no true segmentation (seg_mask / seg_parts): "
                "lsp_seg needs LSP's test split built with UP-3D's masks (python -m "
                "hkmr_jax.data.build --dataset lsp --splits test, masks under "
                "manual_dir/upi-s1h/) or the synthetic set."
            )
        batch = {k: np.stack([e[k] for e in examples]) for k in examples[0] if k not in _SEG_KEYS}
        batch.update({k: [e[k] for e in examples] for k in _SEG_KEYS})
        yield batch, min(batch_size, n - start)


def _part_labels(ctx, part_labels=None, vertex_texture=None, cube_parts=None):
    if (vertex_texture is None) != (cube_parts is None):
        raise ValueError("give both vertex_texture and cube_parts (SPIN's data files), or neither.")
    if vertex_texture is not None and part_labels is not None:
        raise ValueError("give part_labels or vertex_texture + cube_parts, not both.")
    if vertex_texture is not None:
        parts = segmentation.PartLabels.from_spin_texture(vertex_texture, cube_parts)
    elif part_labels is not None:
        parts = segmentation.PartLabels.from_file(part_labels)
    else:
        parts = segmentation.PartLabels.from_body(ctx.body)
    parts.check(ctx.body.num_vertices, len(np.asarray(ctx.body.faces)))
    return parts


def lsp_seg(ctx, source, limit=None, part_labels=None, vertex_texture=None, cube_parts=None,
            render_size=224, workers=None, **_):  # fmt: skip
    """Paper Table 5 (SPIN's LSP protocol): FB and body-part accuracy (%) and F1.

    The final estimate's mesh is rendered with SPIN's camera (`hkmr_jax.segmentation`).
    Examples with a crop box (`center`, `scale`: SPIN-format LSP) are rendered at
    `render_size` and uncropped into the original image; the others (the synthetic set,
    whose crop is the whole image) are rendered at their true maps' size, no uncrop.
    Parts: `part_labels` (a [V] .npy), or SPIN's `vertex_texture` + `cube_parts`, or (by
    default) the run's body's skinning weights (`segmentation.skinning_parts`).

    Returns:
      `SegmentationScores.summary()` plus seconds_per_image (prediction, rendering,
      uncrop and scoring), render_size (the side of the rendered crops: `render_size`
      for uncropped data, the image size for the synthetic set) and part_source.
    """
    parts = _part_labels(ctx, part_labels, vertex_texture, cube_parts)
    if getattr(source, "segmentation", None) is False:  # a synthetic set: add its truth
        source = source.with_segmentation()
    faces = np.asarray(ctx.body.faces)
    scores = segmentation.SegmentationScores()
    seconds, compiled, sizes = 0.0, False, set()
    for batch, valid in _seg_batches(source, ctx.batch_size, limit):
        images = jnp.asarray(batch["image"])
        if not compiled:  # compile outside the timed region
            jax.block_until_ready(predicted_vertices(ctx.predict(images), ctx.body))
            compiled = True
        start = time.perf_counter()
        out = ctx.predict(images)
        vertices = np.asarray(predicted_vertices(out, ctx.body))[:valid]
        cameras = np.asarray(out.final.camera)[:valid]
        uncropped = "center" in batch
        size = render_size if uncropped else batch["seg_mask"][0].shape[0]
        sizes.add(int(size))
        masks, labels = segmentation.render_parts_batch(
            vertices, faces, cameras, parts, size, workers=workers
        )
        for i in range(valid):
            gt_mask, gt_parts = batch["seg_mask"][i], batch["seg_parts"][i]
            mask, label = masks[i].astype(np.uint8), labels[i]
            if uncropped:
                box = batch["center"][i], batch["scale"][i], gt_mask.shape
                mask = segmentation.uncrop(mask, *box)
                label = segmentation.uncrop(label, *box)
            scores.add(label, gt_parts, mask, gt_mask)
        seconds += time.perf_counter() - start
    summary = scores.summary()
    return {
        **summary,
        "seconds_per_image": seconds / summary["num_examples"],
        "render_size": max(sizes),  # the crop side rendered (synthetic: its image size)
        "part_source": parts.source,
    }


EVALUATORS: dict[str, Callable] = {
    "standard": standard,
    "occluded": occluded,
    "doc_sweep": doc_sweep,
    "3dpw": pw3d,
    "invisible": invisible,
    "lsp_seg": lsp_seg,
}


def run_evaluator(name: str, ctx: EvalContext, source, **kwargs) -> dict:
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator {name!r}; choose one of {sorted(EVALUATORS)}.")
    return EVALUATORS[name](ctx, source, **kwargs)

"""The per-example best-fit store of SPIN's training loop (SPIN's ``FitsDict``), as arrays.

A pytree of fixed-size arrays, one block per dataset, addressed by the data contract's
(``dataset_id``, ``example_id``): `create`, `lookup`, `update` (SPIN's keep-the-better
rule; ``axis_name=`` under ``shard_map``), `select_targets`, `to_arrays`/`from_arrays`
for checkpoints. Stored poses are in the original frame: `to_batch_frame` and
`to_original_frame` apply `data.augment`'s pose transforms. Details: docs/smplify.md.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hkmr_jax.data import augment
from smpl_jax import array_files

__all__ = [
    "SMPLIFY_THRESHOLD",
    "DatasetFits",
    "FitStore",
    "create",
    "from_arrays",
    "load_spin_static_fits",
    "lookup",
    "select_targets",
    "set_fits",
    "to_arrays",
    "to_batch_frame",
    "to_original_frame",
    "update",
]

#: SPIN's ``smplify_threshold``: a fit supervises when its error is below this (pixels²
#: of the 224-px crop, robustified; `smplify.SMPLifyResult.reprojection_error`).
SMPLIFY_THRESHOLD = 100.0

_FIELDS = ("pose", "betas", "error", "fitted")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DatasetFits:
    """One dataset's fits.

    Attributes:
      pose: [N, 72] SMPL axis-angle, global orientation first.
      betas: [N, NB].
      error: [N] the fit's reprojection error when it was made (+inf: none yet).
      fitted: [N] bool, whether the entry holds a fit (from SMPLify or `set_fits`).
    """

    pose: jax.Array
    betas: jax.Array
    error: jax.Array
    fitted: jax.Array

    @property
    def size(self) -> int:
        return self.error.shape[0]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FitStore:
    """Fits of every dataset; ``fits[k]`` belongs to dataset id k, named ``names[k]``."""

    fits: tuple[DatasetFits, ...]
    names: tuple[str, ...] = dataclasses.field(metadata=dict(static=True))

    def dataset_id(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"dataset {name!r} is not in this fit store; it holds {self.names}.")
        return self.names.index(name)


def create(sizes: Mapping[str, int], num_betas: int = 10, dtype=jnp.float32) -> FitStore:
    """An empty store: zeros, error +inf, nothing fitted.

    Args:
      sizes: dataset name → number of examples, **in dataset-id order** (the order of the
        data pipeline's dataset list).
      num_betas: width of the betas.
    """
    fits = []
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"size of dataset {name!r} must be an integer ≥ 0, got {n!r}.")
        fits.append(
            DatasetFits(
                pose=jnp.zeros((n, 72), dtype),
                betas=jnp.zeros((n, num_betas), dtype),
                error=jnp.full((n,), jnp.inf, dtype),
                fitted=jnp.zeros((n,), bool),
            )
        )
    return FitStore(tuple(fits), tuple(sizes))


def _addresses(store: FitStore, dataset, indices):
    """(dataset, example indices [B]) → (dataset ids int32 [B], indices [B]); `dataset` is
    a name, a scalar id or an id per example."""
    indices = jnp.asarray(indices)
    if indices.ndim != 1:
        raise ValueError(f"indices must have shape [B], got {tuple(indices.shape)}.")
    return _dataset_ids(store, dataset, indices.shape[0]), indices


def _dataset_ids(store: FitStore, dataset, batch: int):
    """A name, a scalar id or an id per example → int32 [batch]."""
    if isinstance(dataset, str):
        dataset = store.dataset_id(dataset)
    ids = jnp.asarray(dataset, jnp.int32)
    if ids.ndim == 0:
        return jnp.broadcast_to(ids, (batch,))
    if ids.shape != (batch,):
        raise ValueError(f"dataset ids must be a scalar or [{batch}], got {tuple(ids.shape)}.")
    return ids


def _check_rows(name, x, batch, width=None):
    x = jnp.asarray(x)
    ok = x.shape[:1] == (batch,) and (x.ndim == 1 if width is None else x.shape[1:] == (width,))
    if not ok:
        want = f"[{batch}]" if width is None else f"[{batch}, {width}]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}.")
    return x


def lookup(store: FitStore, dataset, indices):
    """The stored fits of a batch.

    Args:
      dataset: a dataset name, a scalar id, or int [B] ids per example.
      indices: int [B] example ids within their datasets.

    Returns:
      (pose [B, 72], betas [B, NB], error [B], fitted [B] bool); zeros / +inf / False for
      ids the store does not hold.
    """
    ids, indices = _addresses(store, dataset, indices)
    batch = indices.shape[0]
    first = store.fits[0] if store.fits else None
    if first is None:
        raise ValueError("the fit store holds no dataset.")
    pose = jnp.zeros((batch, 72), first.pose.dtype)
    betas = jnp.zeros((batch, first.betas.shape[1]), first.betas.dtype)
    error = jnp.full((batch,), jnp.inf, first.error.dtype)
    fitted = jnp.zeros((batch,), bool)
    for d, fits in enumerate(store.fits):
        if fits.size == 0:
            continue
        here = (ids == d) & (indices >= 0) & (indices < fits.size)
        i = jnp.clip(indices, 0, fits.size - 1)
        pose = jnp.where(here[:, None], fits.pose[i], pose)
        betas = jnp.where(here[:, None], fits.betas[i], betas)
        error = jnp.where(here, fits.error[i], error)
        fitted = jnp.where(here, fits.fitted[i], fitted)
    return pose, betas, error, fitted


def update(
    store: FitStore,
    dataset,
    indices,
    new_pose,
    new_betas,
    new_error,
    *,
    current_error=None,
    axis_name: str | None = None,
) -> FitStore:
    """Replace stored fits by new ones where the new one reprojects better (SPIN's rule).

    A new fit for example b replaces the stored one iff ``new_error[b] < baseline[b]``,
    with baseline the stored error, or ``current_error[b]`` when given (SPIN recomputes
    the stored fit's error against each batch's augmented keypoints and compares with
    that: `smplify.SMPLify.fitting_error`). Non-finite new errors never replace. When the
    same (dataset, example) appears several times, the improving candidate with the lowest
    new error wins, ties to the earliest position (after gathering, device order).

    Args:
      dataset: a dataset name, a scalar id, or int [B] ids.
      indices: int [B] example ids.
      new_pose: [B, 72]; new_betas: [B, NB]; new_error: [B].
      current_error: optional [B] baseline errors (see above).
      axis_name: inside ``shard_map``/``pmap``/``vmap`` over that axis, gather every
        device's fits first, so that every replica applies the same update; the result
        is axis-invariant (it may leave ``shard_map`` with ``out_specs=P()``).

    Returns:
      The updated store (a new pytree; donate the old one under jit).
    """
    ids, indices = _addresses(store, dataset, indices)
    batch = indices.shape[0]
    nb = store.fits[0].betas.shape[1] if store.fits else new_betas.shape[-1]
    new_pose = _check_rows("new_pose", new_pose, batch, 72)
    new_betas = _check_rows("new_betas", new_betas, batch, nb)
    new_error = _check_rows("new_error", new_error, batch)
    if current_error is not None:
        current_error = _check_rows("current_error", current_error, batch)
    if axis_name is not None:
        gather = functools.partial(_gather_invariant, axis_name=axis_name)
        ids, indices, new_pose, new_betas, new_error = map(
            gather, (ids, indices, new_pose, new_betas, new_error)
        )
        if current_error is not None:
            current_error = gather(current_error)
        batch = indices.shape[0]

    new_error = jnp.where(jnp.isfinite(new_error), new_error, jnp.inf)
    if current_error is None:
        _, _, baseline, _ = lookup(store, ids, indices)
    else:
        baseline = current_error
    improves = new_error < baseline  # false for +inf (non-finite) new errors
    # Among candidates for the same target, b loses to c when c improves and has a lower
    # error, or the same error at an earlier position. [B, B] comparisons: no [N] scratch.
    pos = jnp.arange(batch)
    same = (ids[:, None] == ids[None, :]) & (indices[:, None] == indices[None, :])
    err_b, err_c = new_error[:, None], new_error[None, :]
    beaten = (
        same
        & improves[None, :]
        & ((err_c < err_b) | ((err_c == err_b) & (pos[None] < pos[:, None])))
    )
    write = improves & ~jnp.any(beaten, axis=1)

    fits = []
    for d, old in enumerate(store.fits):
        n = old.size
        ok = write & (ids == d) & (indices >= 0) & (indices < n)
        target = jnp.where(ok, indices, n)  # n is out of range: dropped
        fits.append(
            DatasetFits(
                pose=old.pose.at[target].set(new_pose.astype(old.pose.dtype), mode="drop"),
                betas=old.betas.at[target].set(new_betas.astype(old.betas.dtype), mode="drop"),
                error=old.error.at[target].set(new_error.astype(old.error.dtype), mode="drop"),
                fitted=old.fitted.at[target].set(True, mode="drop"),
            )
        )
    return FitStore(tuple(fits), store.names)


def _gather_invariant(x, axis_name):
    """Concatenate every device's ``x`` along axis 0, as a replicated (axis-invariant)
    value: each device writes its rows into a zero block at its offset and the blocks
    are summed, exactly (x + 0 = x). Unlike ``all_gather``, whose result counts as
    device-varying, a ``psum`` result may leave ``shard_map`` with ``out_specs=P()``."""
    n, i = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)
    dtype = x.dtype
    if dtype == jnp.bool_:
        x = x.astype(jnp.int32)
    block = jnp.zeros((n * x.shape[0], *x.shape[1:]), x.dtype)
    block = jax.lax.dynamic_update_slice_in_dim(block, x, i * x.shape[0], axis=0)
    return jax.lax.psum(block, axis_name).astype(dtype)


def select_targets(
    fit_pose, fit_betas, fit_error, gt_pose, gt_betas, has_smpl, threshold=SMPLIFY_THRESHOLD
):
    """SPIN's supervision rule: the ground truth where ``has_smpl``, else the best fit,
    which counts only when its error is below ``threshold``.

    Args:
      fit_pose: [B, 72]; fit_betas: [B, NB]; fit_error: [B] (after this step's update).
      gt_pose: [B, 72]; gt_betas: [B, NB]; has_smpl: [B] (bool or 0/1).
      threshold: SPIN's ``smplify_threshold`` (100).

    Returns:
      (pose [B, 72], betas [B, NB], valid [B] bool): ``valid = (error < threshold) |
      has_smpl``.
    """
    has = jnp.asarray(has_smpl) > 0
    pose = jnp.where(has[:, None], gt_pose, fit_pose)
    betas = jnp.where(has[:, None], gt_betas, fit_betas)
    valid = (jnp.asarray(fit_error) < threshold) | has
    return pose, betas, valid


def _check_pose(pose):
    pose = jnp.asarray(pose)
    if pose.ndim < 1 or pose.shape[-1] != 72:
        raise ValueError(f"pose must be SMPL axis-angle [..., 72], got {tuple(pose.shape)}.")
    return pose


def _flip(pose, flip):
    """`augment.flip_pose` where `flip` (an involution)."""
    flip = jnp.broadcast_to(jnp.asarray(flip) > 0, pose.shape[:-1])
    return jnp.where(flip[..., None], augment.flip_pose(pose, jnp), pose)


def to_batch_frame(pose, rotation_deg, flip):
    """Stored poses (the examples' original frame) → the frame of a batch's augmentation
    (SPIN's ``FitsDict.__getitem__``): rotate the global orientation by the batch's
    rotation, then flip where the example was flipped; the pose labels of
    `hkmr_jax.data.augment` undergo the same (`augment.transform_pose`).

    Args:
      pose: [..., 72] SMPL axis-angle, global orientation first.
      rotation_deg: [...] (or a scalar) SPIN's `rot`, degrees (the batch's
        `augment_rotation`).
      flip: [...] (or a scalar) bool or 0/1 (the batch's `augment_flip`).

    Returns:
      [..., 72]; `to_original_frame` undoes it.
    """
    pose = _check_pose(pose)
    return _flip(augment.rotate_pose(pose, rotation_deg, jnp), flip)


def to_original_frame(pose, rotation_deg, flip):
    """Poses in a batch's augmented frame (e.g. this batch's SMPLify fits) → the examples'
    original frame, for `update` (SPIN's ``FitsDict.__setitem__``): un-flip, then rotate
    by −rot. The inverse of `to_batch_frame` (same arguments)."""
    pose = _check_pose(pose)
    return augment.rotate_pose(_flip(pose, flip), -jnp.asarray(rotation_deg, pose.dtype), jnp)


def set_fits(store: FitStore, dataset: str | int, pose, betas, error=None) -> FitStore:
    """Fill one dataset's block with initial fits (SPIN's static fits), marking them fitted.

    Args:
      dataset: its name or id.
      pose: [N, 72]; betas: [N, NB] with N the dataset's size.
      error: [N] their errors, or None for +inf (any new finite fit replaces them; or
        compare against recomputed errors with `update(..., current_error=...)`).
    """
    d = store.dataset_id(dataset) if isinstance(dataset, str) else int(dataset)
    if not 0 <= d < len(store.fits):
        raise KeyError(f"dataset id {d} is not in this fit store ({len(store.fits)} datasets).")
    old = store.fits[d]
    n, nb = old.size, old.betas.shape[1]
    pose = _check_rows(f"pose of {store.names[d]!r}", pose, n, 72).astype(old.pose.dtype)
    betas = _check_rows(f"betas of {store.names[d]!r}", betas, n, nb).astype(old.betas.dtype)
    if error is None:
        error = jnp.full((n,), jnp.inf, old.error.dtype)
    error = _check_rows(f"error of {store.names[d]!r}", error, n).astype(old.error.dtype)
    fits = list(store.fits)
    fits[d] = DatasetFits(pose, betas, error, jnp.ones((n,), bool))
    return FitStore(tuple(fits), store.names)


def to_arrays(store: FitStore) -> dict[str, dict[str, jax.Array]]:
    """{name: {'pose', 'betas', 'error', 'fitted'}}: a plain pytree for checkpointing."""
    return {
        name: {f: getattr(fits, f) for f in _FIELDS}
        for name, fits in zip(store.names, store.fits, strict=True)
    }


def from_arrays(arrays: Mapping[str, Mapping], names: Sequence[str]) -> FitStore:
    """Rebuild a store from `to_arrays`'s dict, datasets in the id order ``names``."""
    fits = []
    for name in names:
        if name not in arrays:
            raise KeyError(f"no fits for dataset {name!r} in the arrays (found {sorted(arrays)}).")
        block = arrays[name]
        missing = [f for f in _FIELDS if f not in block]
        if missing:
            raise KeyError(f"fits of {name!r} lack {missing}.")
        n = np.shape(block["error"])[0]
        pose = _check_rows(f"{name!r} pose", block["pose"], n, 72)
        betas = jnp.asarray(block["betas"])
        if betas.ndim != 2 or betas.shape[0] != n:
            raise ValueError(f"{name!r} betas must have shape [{n}, NB], got {betas.shape}.")
        error = _check_rows(f"{name!r} error", block["error"], n)
        fitted = _check_rows(f"{name!r} fitted", block["fitted"], n).astype(bool)
        fits.append(DatasetFits(pose, betas, error, fitted))
    return FitStore(tuple(fits), tuple(names))


def load_spin_static_fits(path, num_betas: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """SPIN's static fits (``data/static_fits/<dataset>_fits.npy``, [N, 72 + 10]) →
    (pose [N, 72], betas [N, num_betas]). Read without pickle."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"static fits not found: {path!r} (SPIN ships them as data/static_fits/"
            "<dataset>_fits.npy)."
        )
    fits = array_files.numeric(array_files.load_npy(path, what="static fits"), path)
    if fits.ndim != 2 or fits.shape[1] != 72 + num_betas:
        raise ValueError(f"{path}: expected an [N, {72 + num_betas}] array, got {fits.shape}.")
    if not np.all(np.isfinite(fits)):
        raise ValueError(f"{path}: the fits contain NaN or infinite values.")
    return fits[:, :72].astype(np.float32), fits[:, 72:].astype(np.float32)

"""SPIN's fitting in the training loop: the run's fitter (`make_fitter`), the empty fit store
of its datasets (`initial_fits`) and one step's pose/shape targets (`fit_targets`).
The choices are written down in docs/smplify.md."""

from __future__ import annotations

import jax.numpy as jnp

from hkmr_jax.data import pipeline
from hkmr_jax.fitting import fit_store, smplify
from hkmr_jax.models.params import RegressorOutput

#: Datasets with more examples than this get no stored fits (e.g. the synthetic train
#: stream): their fits are used in the step that makes them and not kept.
MAX_STORED_FITS = 4_000_000


def make_fitter(config, body, regressor, prior) -> smplify.SMPLify:
    """The SMPLify fitter of `config.fitting`, for `train_lib.Trainer`. Works with
    `config.data.augment`: the step moves stored fits to and from each batch's
    augmentation (`fit_targets`)."""
    fitting = config.fitting
    settings = smplify.SMPLifyConfig(**dict(fitting.smplify))
    vae = prior if settings.pose_prior == "vae" else None
    if settings.pose_prior == "vae" and vae is None:
        raise ValueError(
            "config.fitting.smplify.pose_prior='vae' needs config.prior='vae' (the frozen "
            "VAE is SMPLify's pose prior); or set fitting.smplify.pose_prior to 'gmm' "
            "(with fitting.gmm_path) or 'none'."
        )
    return smplify.SMPLify.create(body, regressor, settings, vae=vae,
                                  gmm=fitting.get("gmm_path"))  # fmt: skip


def initial_fits(config) -> dict:
    """The empty fit store (`fit_store.to_arrays` layout) of the training datasets."""
    sizes = {str(k): n for k, n in enumerate(pipeline.dataset_sizes(config))
             if n <= MAX_STORED_FITS}  # fmt: skip
    if not sizes:
        return {}
    num_betas = int(config.model.mean_params.get("num_betas", 10))
    return fit_store.to_arrays(fit_store.create(sizes, num_betas))


def fit_targets(fitter, fits, final: RegressorOutput, batch, threshold: float):
    """SPIN's in-the-loop fitting for one device's batch (SPIN's trainer.py, ported).

    SMPLify starts from the regressor's final estimate (`final`, gradient stopped); the
    stored best fit of each example (`fits`, `fit_store.to_arrays` layout, replicated)
    is re-scored on this batch's keypoints with its own least-squares camera; the better
    of the two is kept in the store and, where its error is below `threshold`, is the
    pose/shape target (the ground truth where `has_smpl`).

    Frames (SPIN's `FitsDict`): the store holds poses in the examples' original frame,
    while this batch's keypoints, labels and new fits are in its augmented frame (the
    batch's `augment_rotation` / `augment_flip`; taken as 0 when absent). Stored poses
    are moved into the batch's frame (`fit_store.to_batch_frame`) before they are
    re-scored and used as targets, and new fits back (`fit_store.to_original_frame`)
    before they are stored.

    Returns:
      (batch with `pose`, `betas`, `has_smpl` replaced by the targets and their validity,
      (the updated store, metrics)).
    """
    ids, indices, keypoints = batch["dataset_id"], batch["example_id"], batch["keypoints"]
    no_augment = jnp.zeros(ids.shape, keypoints.dtype)
    rot = batch.get(pipeline.AUGMENT_ROTATION, no_augment)
    flip = batch.get(pipeline.AUGMENT_FLIP, no_augment)
    new = fitter.fit_from_regressor(final, keypoints)
    if fits:
        # Datasets without stored fits (streams) have no arrays (orbax cannot save empty
        # ones): give them empty blocks so that dataset ids stay positions.
        empty = fit_store.to_arrays(fit_store.create(
            {str(k): 0 for k in range(1 + max(map(int, fits)))}, new.betas.shape[-1]
        ))  # fmt: skip
        store = fit_store.from_arrays({**empty, **fits}, tuple(empty))
        old_pose, old_betas, _, fitted = fit_store.lookup(store, ids, indices)
        old_pose = fit_store.to_batch_frame(old_pose, rot, flip)
        old_error = fitter.refit_error(old_pose, old_betas, keypoints)
        old_error = jnp.where(fitted, old_error, jnp.inf)
        store = fit_store.update(store, ids, indices,
                                 fit_store.to_original_frame(new.pose, rot, flip), new.betas,
                                 new.reprojection_error, current_error=old_error,
                                 axis_name="data")  # fmt: skip
        fits = {k: v for k, v in fit_store.to_arrays(store).items() if k in fits}
    else:
        old_pose, old_betas = jnp.zeros_like(new.pose), jnp.zeros_like(new.betas)
        old_error = jnp.full_like(new.reprojection_error, jnp.inf)
    better = new.reprojection_error < old_error
    pose = jnp.where(better[:, None], new.pose, old_pose)
    betas = jnp.where(better[:, None], new.betas, old_betas)
    error = jnp.where(better, new.reprojection_error, old_error)
    pose, betas, valid = fit_store.select_targets(
        pose, betas, error, batch["pose"], batch["betas"], batch["has_smpl"], threshold
    )
    targets = dict(batch, pose=pose, betas=betas, has_smpl=valid.astype(batch["betas"].dtype))
    no_smpl = batch["has_smpl"] <= 0
    count = jnp.maximum(jnp.sum(no_smpl), 1)
    metrics = {
        # Over the examples without SMPL ground truth (the ones fits supervise).
        "fit/valid_fraction": jnp.sum(valid & no_smpl) / count,
        "fit/improved_fraction": jnp.sum(better & no_smpl) / count,
        "fit/pixel_error": jnp.mean(new.pixel_error),
    }
    return targets, (fits, metrics)


__all__ = ["MAX_STORED_FITS", "fit_targets", "initial_fits", "make_fitter"]

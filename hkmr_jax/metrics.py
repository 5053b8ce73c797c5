"""Evaluation metrics, per example, in the units of the inputs (metres in, ×1000 for mm).

* `mpjpe`: mean per-joint position error, no alignment (SPIN/HKMR's "MPJPE").
* `pa_mpjpe`: after Procrustes alignment per example — rotation (no reflection), isotropic
  scale and translation fitted to the ground truth (SPIN's "reconstruction error").
* `pve`: per-vertex error, where ground-truth meshes exist.
* `pck`: percentage of correct keypoints within a threshold (2D, pixels or normalised).
"""

from __future__ import annotations

import jax.numpy as jnp


def mpjpe(pred, gt, valid=None):
    """pred, gt: [B, J, D]; valid: optional [B, J] weights → [B] mean joint distance."""
    dist = jnp.linalg.norm(pred - gt, axis=-1)
    if valid is None:
        return jnp.mean(dist, axis=-1)
    return jnp.sum(dist * valid, -1) / jnp.maximum(jnp.sum(valid, -1), 1e-12)


def procrustes_align(pred, gt):
    """Similarity transform of `pred` onto `gt` per example (Umeyama 1991, no reflection).

    Args:
      pred, gt: [B, J, 3].

    Returns:
      [B, J, 3]: s·R·pred + t minimising Σ‖gt − (s·R·pred + t)‖².
    """
    mu_p, mu_g = pred.mean(-2, keepdims=True), gt.mean(-2, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = jnp.einsum("bji,bjk->bik", g, p)  # Σ g pᵀ
    u, sigma, vt = jnp.linalg.svd(cov)
    # Flip the last singular direction if needed so that det(R) = +1 (no reflection).
    d = jnp.sign(jnp.linalg.det(u @ vt))
    flip = jnp.concatenate([jnp.ones_like(d)[:, None].repeat(2, 1), d[:, None]], axis=1)
    rot = u @ (flip[:, :, None] * vt)
    scale = jnp.sum(sigma * flip, -1) / jnp.sum(p * p, axis=(-2, -1))
    return scale[:, None, None] * jnp.einsum("bik,bjk->bji", rot, p) + mu_g


def pa_mpjpe(pred, gt):
    """pred, gt: [B, J, 3] → [B] MPJPE after per-example Procrustes alignment."""
    return mpjpe(procrustes_align(pred, gt), gt)


def pve(pred_vertices, gt_vertices):
    """[B, V, 3] each → [B] mean per-vertex distance."""
    return mpjpe(pred_vertices, gt_vertices)


def pck(pred, gt, visible, threshold):
    """pred, gt: [B, K, 2]; visible: [B, K] → [B] fraction of visible keypoints within
    `threshold` (same units as the inputs); 0 where an example has no visible keypoint."""
    hit = (jnp.linalg.norm(pred - gt, axis=-1) <= threshold) * visible
    return jnp.sum(hit, -1) / jnp.maximum(jnp.sum(visible, -1), 1)

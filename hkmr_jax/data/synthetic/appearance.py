"""The synthetic people's appearance: part colours, backgrounds, the part of each vertex.

Clothing-like colours per body part (and the hair) and textured backgrounds
(docs/synthetic_data.md, "Appearance"). Samplers take an example's `Draws`;
`background` renders a sampled background as [S, S, 3] float32.
"""

from __future__ import annotations

import numpy as np

from hkmr_jax.data.synthetic._draws import Draws
from smpl_jax import skeleton

# Clothing groups; every SMPL part (skinning argmax) belongs to one, the hair is part 24.
_SKIN, _TOP, _BOTTOM, _SHOES, _HAIR = range(5)
_HAIR_PART = 24
_PART_GROUP = np.array([
    _BOTTOM, _BOTTOM, _BOTTOM, _TOP, _BOTTOM, _BOTTOM, _TOP, _SHOES, _SHOES, _TOP, _SHOES,
    _SHOES, _SKIN, _TOP, _TOP, _SKIN, _TOP, _TOP, _TOP, _TOP, _SKIN, _SKIN, _SKIN, _SKIN,
    _HAIR,
])  # fmt: skip
_FOREARMS, _SHINS = (18, 19), (4, 5)


def _hsv_to_rgb(hsv):
    """[..., 3] HSV in [0, 1] → RGB in [0, 1]."""
    h, s, v = hsv[..., 0] % 1.0, hsv[..., 1], hsv[..., 2]
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0, 1)


def sample_colours(d: Draws) -> np.ndarray:
    """[25, 3] RGB in [0, 1]: a colour per SMPL part and the hair, clothing-like."""
    u = d.uniform(shape=(5, 3))
    flags = d.uniform(shape=(4,))
    jitter = d.uniform([-0.03, -0.08, 0.82], [0.03, 0.08, 1.12], (len(_PART_GROUP), 3))
    hsv = np.empty((5, 3))
    hsv[_SKIN] = [0.02 + 0.08 * u[0, 0], 0.25 + 0.4 * u[0, 1], 0.35 + 0.6 * u[0, 2]]
    hsv[_TOP] = [u[1, 0], 0.1 + 0.8 * u[1, 1], 0.15 + 0.8 * u[1, 2]]
    if flags[0] < 0.4:  # denim
        hsv[_BOTTOM] = [0.57 + 0.07 * u[2, 0], 0.3 + 0.4 * u[2, 1], 0.2 + 0.45 * u[2, 2]]
    else:
        hsv[_BOTTOM] = [u[2, 0], 0.05 + 0.7 * u[2, 1], 0.1 + 0.7 * u[2, 2]]
    hsv[_SHOES] = [u[3, 0], 0.6 * u[3, 1], 0.05 + 0.65 * u[3, 2]]
    hsv[_HAIR] = [0.02 + 0.1 * u[4, 0], 0.3 + 0.5 * u[4, 1], 0.06 + 0.55 * u[4, 2]]
    if flags[1] < 0.1:  # grey or white hair
        hsv[_HAIR, 1:] = [0.05, 0.55 + 0.4 * u[4, 2]]
    group = _PART_GROUP.copy()
    if flags[2] < 0.4:  # short sleeves
        group[list(_FOREARMS)] = _SKIN
    if flags[3] < 0.25:  # shorts
        group[list(_SHINS)] = _SKIN
    # Each part a little off its group's colour, so that parts stay distinguishable.
    part = hsv[group]
    part = np.stack([part[:, 0] + jitter[:, 0], np.clip(part[:, 1] + jitter[:, 1], 0, 1),
                     np.clip(part[:, 2] * jitter[:, 2], 0, 1)], axis=1)  # fmt: skip
    return _hsv_to_rgb(part).astype(np.float32)


_BG_BLOBS, _BG_GRADIENT, _BG_STRIPES, _BG_TILES = range(4)


def sample_background(d: Draws) -> dict:
    return {
        "kind": min(int(d.uniform(0, 4)), 3),
        "colours": _hsv_to_rgb(d.uniform([0.0, 0.0, 0.12], [1.0, 0.7, 1.0], (3, 3))),
        "grid": d.uniform(shape=(6, 6, 3)),
        "cells": min(int(d.uniform(2, 7)), 6),
        "angle": d.uniform(0, np.pi, (2,)),
        "frequency": d.uniform([1.5, 1.0], [7.0, 5.0]),
        "phase": d.uniform(0, 2 * np.pi, (2,)),
        "sharpness": float(d.uniform(1.0, 6.0)),
        "floor": bool(d.uniform() < 0.35),
        "horizon": float(d.uniform(0.0, 0.8)),
        "shade": float(d.uniform(0.15, 0.45)),
    }


def bilinear_matrix(cells: int, size: int) -> np.ndarray:
    """[size, cells] weights that upsample `cells` samples to `size` pixels, bilinearly."""
    x = (np.arange(size) + 0.5) / size * (cells - 1)
    i = np.minimum(np.floor(x).astype(int), cells - 2)
    t = x - i
    m = np.zeros((size, cells), np.float32)
    m[np.arange(size), i] = 1 - t
    m[np.arange(size), i + 1] = t
    return m


def _sine(x, frequency, angle, phase) -> np.ndarray:
    """[S, S] sin(frequency · (cos(angle)·x_col + sin(angle)·y_row) + phase), separably."""
    px = frequency * np.cos(angle) * x + phase
    py = frequency * np.sin(angle) * x
    return np.outer(np.cos(py), np.sin(px)) + np.outer(np.sin(py), np.cos(px))


def vertex_parts(body) -> np.ndarray:
    """[V] part per vertex: the argmax of its skinning weights; the hair is part 24.

    The hair: head-part vertices of the rest mesh in the upper 45 % of the head above its
    joint, or behind the joint's plane and above the chin.
    """
    parts = np.argmax(np.asarray(body.weights), axis=1)
    v = np.asarray(body.v_template)
    head = skeleton.JOINT_NAMES.index("head")
    on_head = parts == head
    if on_head.any():
        joint = np.asarray(body.joint_template)[head]
        rel = v - joint
        top = rel[on_head, 1].max()
        hair = on_head & (
            (rel[:, 1] > 0.45 * top) | ((rel[:, 2] < -0.01) & (rel[:, 1] > -0.2 * top))
        )
        parts[hair] = _HAIR_PART
    return parts


def background(b: dict, grid_x, upsample) -> np.ndarray:
    """[S, S, 3] float32 RGB in [0, 1]: the background `b` of `sample_background`.

    Args:
      grid_x: [S] pixel centres in [-1, 1]; upsample: cells → [S, cells] `bilinear_matrix`.
    """
    x = grid_x
    c0, c1, c2 = b["colours"].astype(np.float32)
    kind = b["kind"]
    if kind == _BG_BLOBS:
        m, n = upsample[b["cells"]], b["cells"]
        g = b["grid"][:n, :n].astype(np.float32) * 0.8 + c0 * 0.2
        # Bilinear upsampling is separable: two matrix products (rows, then columns).
        rows = (m @ g.reshape(n, n * 3)).reshape(-1, n, 3)  # [S, n, 3]
        return np.ascontiguousarray((rows.transpose(0, 2, 1) @ m.T).transpose(0, 2, 1))
    # Patterns along directions at angles a0 and a0 + 90° (or a1 + 90° for tiles); a
    # sine of a sum of x and y terms is two outer products: no [S, S] transcendental.
    a0, a1 = b["angle"]
    if kind == _BG_GRADIENT:
        t = (np.cos(a0) * x)[None, :] + (np.sin(a0) * x)[:, None]
        t = t * 0.5 + 0.5
    else:
        f0, f1 = np.pi * b["frequency"]
        t = _sine(x, f0 if kind == _BG_STRIPES else f1, a0, b["phase"][0])
        if kind == _BG_TILES:
            t *= _sine(x, f1, a1 + np.pi / 2, b["phase"][1])
        # A soft square wave: clip a steep multiple of the sine.
        t = np.clip(b["sharpness"] * t, -1.0, 1.0) * 0.5 + 0.5
    image = c0 + t.astype(np.float32)[..., None] * (c1 - c0)
    if b["floor"]:
        below = x >= b["horizon"]
        depth = np.clip((x[below] - b["horizon"]) * 2.0, 0, 1)[:, None, None]
        image[below] = c2 * (1.0 - b["shade"] * (1.0 - depth))
    return image.astype(np.float32)

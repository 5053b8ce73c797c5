"""Meshes per second of the rasteriser (`hkmr_jax.render`), NumPy vs a jit-able JAX version.

    python benchmarks/render.py [--sizes 128 224] [--no-jax] [--clock cpu]

Meshes: the built-in body in its rest pose (13,568 faces; SMPL has 13,776) and UV spheres
of 6,888 and 13,776 faces, each framed to fill ~85% of a square crop, as in a training
crop. Times `rasterize` alone (projection and shading excluded) and the whole
`render_mesh` (project + rasterise + smooth shading), one mesh at a time.

The JAX version is the natural fixed-shape design: every face tests a fixed block×block
grid of pixel centres from its bounding box's corner and scatters its depth into the
z-buffer with ``.at[].min``; a second scatter picks the winning face. The block is the
smallest power of two that holds this mesh's largest face (a fixed shape must allow for
the worst face); "agree" is the share of pixels whose face id matches NumPy's.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from hkmr_jax import render
from smpl_jax import synthetic


def uv_sphere(num_faces: int, radius: float = 1.0):
    """A closed UV sphere with exactly `num_faces` triangles (num_faces = 2·n·(m − 1))."""
    n = 42  # longitudes: 2·42 divides both 6,888 and 13,776
    m = num_faces // (2 * n) + 1  # latitude rings of quads, plus the two caps
    assert 2 * n * (m - 1) == num_faces, num_faces
    theta = np.linspace(0, np.pi, m + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1)
    verts = np.concatenate([[[0, 1, 0]], ring.reshape(-1, 3), [[0, -1, 0]]]) * radius
    idx = 1 + np.arange((m - 1) * n).reshape(m - 1, n)
    nxt = np.roll(idx, -1, axis=1)
    faces = [np.stack([np.zeros(n, int), nxt[0], idx[0]], 1)]
    for r in range(m - 2):
        faces.append(np.stack([idx[r], nxt[r], nxt[r + 1]], 1))
        faces.append(np.stack([idx[r], nxt[r + 1], idx[r + 1]], 1))
    last = len(verts) - 1
    faces.append(np.stack([np.full(n, last), idx[-1], nxt[-1]], 1))
    return verts, np.concatenate(faces)


@functools.partial(jax.jit, static_argnames=("size", "block"))
def rasterize_jax(xy, z, faces, size, block=8):
    """[H, W] face id and depth by fixed-block scatter; see the module docstring."""
    h, w = size
    tri, tz = xy[faces], z[faces]
    x0, y0 = tri[:, 0, 0], tri[:, 0, 1]
    ex1, ey1 = tri[:, 1, 0] - x0, tri[:, 1, 1] - y0
    ex2, ey2 = tri[:, 2, 0] - x0, tri[:, 2, 1] - y0
    area2 = ex1 * ey2 - ex2 * ey1
    inv = jnp.where(jnp.abs(area2) > 1e-12, 1.0 / area2, 0.0)
    lo = jnp.ceil(tri.min(axis=1) - 0.5).astype(jnp.int32)
    hi = jnp.floor(tri.max(axis=1) - 0.5).astype(jnp.int32)
    off = jnp.arange(block)
    px = lo[:, 0, None, None] + off[None, None, :]
    py = lo[:, 1, None, None] + off[None, :, None]
    cx, cy = (px + 0.5) - x0[:, None, None], (py + 0.5) - y0[:, None, None]
    l1 = (cx * ey2[:, None, None] - cy * ex2[:, None, None]) * inv[:, None, None]
    l2 = (cy * ex1[:, None, None] - cx * ey1[:, None, None]) * inv[:, None, None]
    l0 = 1.0 - l1 - l2
    inside = (
        (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (inv[:, None, None] != 0)
        & (px <= hi[:, 0, None, None]) & (py <= hi[:, 1, None, None])
        & (px >= 0) & (py >= 0) & (px < w) & (py < h)
    )  # fmt: skip
    zc = l0 * tz[:, 0, None, None] + l1 * tz[:, 1, None, None] + l2 * tz[:, 2, None, None]
    zc = jnp.where(inside, zc, jnp.inf).reshape(-1)
    pix = jnp.where(inside, py * w + px, h * w).reshape(-1)  # h*w: a dump slot
    zbuf = jnp.full(h * w + 1, jnp.inf).at[pix].min(zc)
    fid = jnp.broadcast_to(jnp.arange(len(faces))[:, None, None], inside.shape).reshape(-1)
    win = jnp.where(inside.reshape(-1) & (zc == zbuf[pix]), fid, -1)
    face_id = jnp.full(h * w + 1, -1).at[pix].max(win)
    return face_id[:-1].reshape(h, w), zbuf[:-1].reshape(h, w)


def _jax_run(args, size, block):
    return jax.block_until_ready(rasterize_jax(*args, size, block))


_CLOCK = time.perf_counter


def _time(fn, rounds=5, min_seconds=0.2):
    """Best seconds per call over `rounds` rounds (the least disturbed by other load)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        n, start = 0, _CLOCK()
        while (elapsed := _CLOCK() - start) < min_seconds or n < 2:
            fn()
            n += 1
        best = min(best, elapsed / n)
    return best


def _meshes():
    body = synthetic.load_builtin()
    out = body(global_orient=jnp.array([[np.pi, 0.0, 0.0]]))  # upright, facing the camera
    yield "built-in body", np.asarray(out.vertices[0], np.float64), np.asarray(body.faces)
    for f in (6888, 13776):
        yield "sphere", *uv_sphere(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX version")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this process's CPU time, steadier on a shared machine (NumPy here is "
        "single-threaded; XLA may use several threads, which CPU time adds up)",
    )
    args = parser.parse_args(argv)
    global _CLOCK
    _CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"device for JAX: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    print(f"{'mesh':>14} {'faces':>6} {'px':>5} {'numpy rast/s':>13} {'render_mesh/s':>14} "
          f"{'jax rast/s':>11} {'block':>6} {'agree %':>8}")  # fmt: skip
    for name, verts, faces in _meshes():
        extent = np.ptp(verts[:, :2], axis=0).max()
        centre = (verts[:, :2].max(0) + verts[:, :2].min(0)) / 2
        cam = render.Camera.weak_perspective(1.7 / extent, *(-1.7 / extent * centre))
        for size in args.sizes:
            xy, z = render.project(verts, cam, (size, size))
            rast = functools.partial(render.rasterize, xy, z, faces, (size, size))
            whole = functools.partial(render.render_mesh, verts, faces, cam, (size, size))
            t_np, t_rm = _time(rast), _time(whole)
            jax_col = agree_col = block = "-"
            if not args.no_jax:
                # The block must hold the largest face's bounding box: a power of two ≥ it.
                box = np.ptp(xy[faces], axis=1).max()
                block = int(2 ** np.ceil(np.log2(box + 1)))
                args_j = (jnp.asarray(xy, jnp.float32), jnp.asarray(z, jnp.float32), faces)
                fn = functools.partial(_jax_run, args_j, (size, size), block)
                jax_col = f"{1 / _time(fn):,.0f}"
                ref = render.rasterize(xy, z, faces, (size, size)).face_id
                agree_col = f"{100 * np.mean(np.asarray(fn()[0]) == ref):.2f}"
            print(f"{name:>14} {len(faces):>6} {size:>5} {1 / t_np:>13,.0f} {1 / t_rm:>14,.0f} "
                  f"{jax_col:>11} {block:>6} {agree_col:>8}")  # fmt: skip


if __name__ == "__main__":
    main()

"""``hkmr-render-body``: the built-in body (or a SMPL file) in a few poses and shapes, one PNG.

The README's first picture (docs/body.png): every panel shares one scale and one floor line,
so heights compare truthfully. Drawn with the NumPy rasteriser `hkmr_jax.render`.
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

import smpl_jax
from hkmr_jax import render
from smpl_jax import synthetic
from smpl_jax.skeleton import JOINT_NAMES

#: Poses for the picture: axis-angle (radians) per joint in SMPL's frame (x: the body's
#: left, y: up, z: forward), relative to the parent; joints not listed stay at rest.
#: Knees flex about +x, hips flex (thigh forward) about -x; the left arm hangs down
#: with -z, the right arm with +z.
POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "rest (T-pose)": {},
    "walking": {
        "left_hip": (-0.45, 0.0, 0.0),
        "left_knee": (0.15, 0.0, 0.0),
        "right_hip": (0.3, 0.0, 0.0),
        "right_knee": (0.55, 0.0, 0.0),
        "right_ankle": (-0.2, 0.0, 0.0),
        "left_shoulder": (0.5, 0.0, -1.25),
        "right_shoulder": (-0.6, 0.0, 1.25),
        "left_elbow": (0.0, -0.2, 0.0),
        "right_elbow": (0.0, 0.5, 0.0),
        "spine1": (0.05, 0.0, 0.0),
    },
    "arms raised": {
        "left_shoulder": (0.0, 0.0, 1.1),
        "right_shoulder": (0.0, 0.0, -1.1),
        "left_elbow": (0.0, -0.2, 0.0),
        "right_elbow": (0.0, 0.2, 0.0),
    },
    "crouching": {
        "pelvis": (0.3, 0.0, 0.0),
        "spine1": (0.15, 0.0, 0.0),
        "left_hip": (-2.0, 0.0, -0.2),
        "right_hip": (-2.0, 0.0, 0.2),
        "left_knee": (2.2, 0.0, 0.0),
        "right_knee": (2.2, 0.0, 0.0),
        "left_ankle": (-0.5, 0.0, 0.0),
        "right_ankle": (-0.5, 0.0, 0.0),
        "left_shoulder": (0.0, -1.25, -0.3),
        "right_shoulder": (0.0, 1.25, 0.3),
        "left_elbow": (0.0, -0.3, 0.0),
        "right_elbow": (0.0, 0.3, 0.0),
    },
}

#: Arms relaxed (an A-pose), for comparing shapes.
A_POSE = {"left_shoulder": (0.0, 0.0, -0.95), "right_shoulder": (0.0, 0.0, 0.95)}

#: Shapes for the picture: betas (index: value), in the A-pose. The built-in body's betas:
#: 0 height, 1 girth (see `smpl_jax.synthetic`).
SHAPES: dict[str, dict[int, float]] = {
    "tall (beta0 +2.5)": {0: 2.5},
    "short (beta0 -2.5)": {0: -2.5},
    "heavy (beta1 +3)": {1: 3.0},
    "thin (beta1 -2.5)": {1: -2.5},
}

#: Yaw (radians about the body's vertical axis) per picture, so the 3-D poses read well.
_YAW = {"walking": 0.8, "crouching": 1.1}


def _pose_vector(pose: dict) -> np.ndarray:
    """[72] axis-angle vector (global orientation first) from a joint-name dict."""
    theta = np.zeros((len(JOINT_NAMES), 3))
    for name, aa in pose.items():
        if name not in JOINT_NAMES:
            raise ValueError(f"unknown joint {name!r}; valid names: {', '.join(JOINT_NAMES)}.")
        theta[JOINT_NAMES.index(name)] = aa
    return theta.reshape(-1)


_QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def body_grid(body, cell: int = 300, columns: int = 4, supersample: int = 2) -> np.ndarray:
    """Render `body` in `POSES` and `SHAPES` into one [rows·cell, columns·cell, 3] image.

    All panels share one scale and one floor line, so heights compare truthfully.
    """
    names = list(POSES) + list(SHAPES)
    thetas, betas = [], []
    for name in names:
        thetas.append(_pose_vector(POSES.get(name, A_POSE)))
        b = np.zeros(body.num_betas)
        for i, value in SHAPES.get(name, {}).items():
            if i < body.num_betas:
                b[i] = value
        betas.append(b)
    thetas = jnp.asarray(np.stack(thetas), body.dtype)
    betas = jnp.asarray(np.stack(betas), body.dtype)

    def forward(body, b, t):
        return body(betas=b, body_pose=t[:, 3:], global_orient=t[:, :3]).vertices

    # A one-shot program: XLA's cheapest optimisation level halves its compile time,
    # which dominates this command's run time on a small CPU.
    try:
        compiled = jax.jit(forward, compiler_options=_QUICK_COMPILE)
        compiled = compiled.lower(body, betas, thetas).compile()
    except Exception:  # an XLA backend without these options: the default compile
        compiled = jax.jit(forward)
    verts = np.asarray(compiled(body, betas, thetas))
    faces = np.asarray(body.faces)

    cams = []
    for name in names:
        yaw = _YAW.get(name, 0.0)
        c, s = np.cos(yaw), np.sin(yaw)
        cams.append(render.SMPL_TO_CAMERA @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]))
    rotated = [v @ r.T for v, r in zip(verts, cams, strict=True)]
    # One scale for every panel: the largest extent fills 84% of a cell (NDC half-width 1).
    extent = max(float(np.ptp(v[:, a])) for v in rotated for a in (0, 1))
    scale = 2 * 0.84 / extent
    rows = -(-len(names) // columns)
    sheet = np.full((rows * cell, columns * cell, 3), 255, np.uint8)
    background = _backdrop(cell)
    for i, (name, v, r) in enumerate(zip(names, rotated, cams, strict=True)):
        tx = -scale * (v[:, 0].max() + v[:, 0].min()) / 2
        ty = 0.9 - scale * v[:, 1].max()  # feet (largest camera y) on a common floor line
        cam = render.Camera.weak_perspective(scale, tx, ty, rotation=r)
        feet, _ = render.project(verts[i][v[:, 1] > v[:, 1].max() - 0.06], cam, (cell, cell))
        background_i = _shadow(background, feet, cell)
        image = render.render_mesh(
            verts[i],
            faces,
            cam,
            (cell, cell),
            specular=0.12,
            background=background_i,
            supersample=supersample,
        )
        render.caption(image, name)
        row, col = divmod(i, columns)
        sheet[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = image
    return sheet


def _backdrop(cell):
    """[cell, cell, 3] uint8: a soft vertical grey-blue gradient, like a studio wall."""
    t = np.linspace(0.0, 1.0, cell)[:, None, None]
    top, bottom = np.array([246, 247, 250]), np.array([214, 218, 226])
    image = top + (bottom - top) * t
    return np.broadcast_to(np.round(image), (cell, cell, 3)).astype(np.uint8)


def _shadow(background, feet_px, cell):
    """Darken a soft ellipse under the feet ([N, 2] pixels) so that the body stands."""
    x0, x1 = feet_px[:, 0].min(), feet_px[:, 0].max()
    rx, ry = (x1 - x0) / 2 + 0.05 * cell, 0.025 * cell
    cy = feet_px[:, 1].max()
    yy, xx = np.mgrid[0:cell, 0:cell] + 0.5
    d2 = ((xx - (x0 + x1) / 2) / rx) ** 2 + ((yy - cy) / ry) ** 2
    shade = 1.0 - 0.3 * np.exp(-2.0 * d2)
    return np.round(background * shade[..., None]).astype(np.uint8)


def main(argv=None) -> int:
    """``hkmr-render-body``: the built-in body in a few poses and shapes, as one PNG."""
    parser = argparse.ArgumentParser(
        prog="hkmr-render-body",
        description="Render the built-in body (or a SMPL file) in a few poses and shapes.",
    )
    parser.add_argument("--model", help="a SMPL .pkl/.npz (default: the built-in body)")
    parser.add_argument("--out", default="body.png", help="output PNG (default: body.png)")
    parser.add_argument("--cell", type=int, default=300, help="panel size in pixels")
    args = parser.parse_args(argv)
    if args.cell < 32:
        parser.error(f"--cell must be at least 32 pixels, got {args.cell}.")

    try:
        body = smpl_jax.load(args.model) if args.model else synthetic.load_builtin()
    except (OSError, ValueError) as e:  # missing or malformed file: say so, no traceback
        print(f"hkmr-render-body: {e}", file=sys.stderr)
        return 2
    sheet = body_grid(body, cell=args.cell)
    path = render.write_png(args.out, sheet)
    print(f"wrote {path} ({sheet.shape[1]}×{sheet.shape[0]} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

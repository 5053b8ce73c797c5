"""A z-buffered triangle rasteriser for posed body meshes, in vectorised NumPy.

Used by the synthetic training data, the demo and segmentation. `project` → `rasterize`
→ `shade` compose; `render_mesh` is the one-call version; `keypoint_visibility`,
`draw_keypoints`, `caption` and `write_png` finish pictures. Camera frame x right, y down,
z forward (HMR's and SPIN's); SMPL's frame is y up, so pass ``rotation=SMPL_TO_CAMERA``
or a global orientation of ``(π, 0, 0)``. Conventions, usage and speed: docs/render.md.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import NamedTuple

import numpy as np

from smpl_jax import atomic_files

#: Rotation taking SMPL's frame (y up, facing +z) into the camera frame (y down, z away
#: from the camera): 180° about x, as SPIN applies to its datasets.
SMPL_TO_CAMERA = np.diag([1.0, -1.0, -1.0])

#: Unit vector towards the light in the camera frame: above, left of and behind the camera.
LIGHT_DIR = (-0.35, -0.55, -0.75)

#: Default body colour (RGB in [0, 1]): a light clay.
BODY_COLOR = (0.78, 0.74, 0.70)

_WEAK, _PERSPECTIVE = "weak_perspective", "perspective"


@dataclasses.dataclass(frozen=True, eq=False)
class Camera:
    """A weak-perspective or perspective camera; build one with the class methods.

    Attributes:
      kind: ``"weak_perspective"`` or ``"perspective"``.
      scale: weak perspective's s (NDC units per metre); unused by perspective.
      translation: [3] weak perspective: ``(tx, ty, 0)`` in NDC; perspective: metres,
        added after the rotation.
      focal: [2] ``(fx, fy)`` in pixels (perspective only).
      center: [2] principal point ``(cx, cy)`` in pixels, or None for the image centre.
      rotation: [3, 3] applied to points first (world → camera frame).
    """

    kind: str
    scale: float = 1.0
    translation: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    focal: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(2))
    center: np.ndarray | None = None
    rotation: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))

    @classmethod
    def weak_perspective(cls, scale, tx=0.0, ty=0.0, rotation=None) -> Camera:
        """HMR's camera: ``ndc = scale·X_xy + (tx, ty)`` after `rotation`."""
        scale = float(scale)
        if not np.isfinite(scale) or scale == 0:
            raise ValueError(f"weak-perspective scale must be finite and non-zero, got {scale}.")
        return cls(
            kind=_WEAK,
            scale=scale,
            translation=_vector("translation", [tx, ty, 0.0], 3),
            rotation=_rotation(rotation),
        )

    @classmethod
    def perspective(cls, focal=5000.0, translation=(0.0, 0.0, 0.0), center=None, rotation=None):
        """SPIN's camera: ``pixel = f·(R·X + t)_xy / (R·X + t)_z + center``.

        Args:
          focal: focal length in pixels, a scalar or ``(fx, fy)``.
          translation: [3] metres.
          center: ``(cx, cy)`` in pixels; None: the image centre.
          rotation: [3, 3] or None (identity).
        """
        focal = np.broadcast_to(np.asarray(focal, np.float64), (2,)).copy()
        if not np.all(np.isfinite(focal) & (focal > 0)):
            raise ValueError(f"focal length must be positive and finite, got {focal}.")
        return cls(
            kind=_PERSPECTIVE,
            translation=_vector("translation", translation, 3),
            focal=focal,
            center=None if center is None else _vector("center", center, 2),
            rotation=_rotation(rotation),
        )

    def as_perspective(self, size, focal=5000.0) -> Camera:
        """The perspective camera that matches this weak-perspective one near z = 0 (SPIN).

        Args:
          size: (H, W) of the image the camera is used with.
          focal: focal length in pixels.
        """
        if self.kind != _WEAK:
            raise ValueError("as_perspective converts a weak-perspective camera only.")
        h, w = _size(size)
        tz = 2.0 * focal / (self.scale * min(h, w))
        t = np.array([*(self.translation[:2] / self.scale), tz])
        return Camera.perspective(focal, t, None, self.rotation)


def _vector(name, value, n):
    value = np.asarray(value, np.float64)
    if value.shape != (n,) or not np.all(np.isfinite(value)):
        raise ValueError(f"camera {name} must be {n} finite numbers, got {value.tolist()}.")
    return value


def _rotation(rotation):
    if rotation is None:
        return np.eye(3)
    r = np.asarray(rotation, np.float64)
    if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-5):
        raise ValueError(f"camera rotation must be a [3, 3] rotation matrix, got shape {r.shape}.")
    return r


def _size(size) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}.") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {(h, w)}.")
    return h, w


def _points(name, points, width):
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != width:
        raise ValueError(f"{name} must have shape [N, {width}], got {list(points.shape)}.")
    return points


def project(points, camera: Camera, size):
    """Project 3-D points to pixels.

    Args:
      points: [N, 3] in the frame the camera's rotation expects (metres).
      camera: a `Camera`.
      size: (H, W) of the image, pixels.

    Returns:
      pixels [N, 2] as continuous (x, y) image coordinates, and depth [N] (the
      camera-frame z: smaller is nearer; for perspective, > 0 in front of the camera).
    """
    h, w = _size(size)
    points = _points("points", points, 3)
    cam = points @ camera.rotation.T
    if camera.kind == _WEAK:
        ndc = camera.scale * cam[:, :2] + camera.translation[:2]
        pixels = np.array([w / 2, h / 2]) + ndc * (min(h, w) / 2)
        return pixels, cam[:, 2]
    cam = cam + camera.translation
    center = np.array([w / 2, h / 2]) if camera.center is None else camera.center
    with np.errstate(divide="ignore", invalid="ignore"):  # points at z = 0 become inf
        pixels = camera.focal * cam[:, :2] / cam[:, 2:] + center
    return pixels, cam[:, 2]


def to_camera_frame(points, camera: Camera):
    """[N, 3] points in the camera frame (x right, y down, z forward), e.g. for `shade`."""
    points = _points("points", points, 3) @ camera.rotation.T
    return points + camera.translation if camera.kind == _PERSPECTIVE else points


class Fragments(NamedTuple):
    """What `rasterize` sees at every pixel.

    Attributes:
      face_id: [H, W] int32, the nearest face covering the pixel centre, -1 if none.
      depth: [H, W] float32, its depth there, +inf where no face.
      barycentrics: [H, W, 3] float32, weights of the face's three vertices (sum to 1 on
        covered pixels, 0 elsewhere); depth = Σ weights · vertex depths.
    """

    face_id: np.ndarray
    depth: np.ndarray
    barycentrics: np.ndarray


def rasterize(
    vertices_px, depth, faces, size, *, perspective_correct=False, cull_backfaces=False
) -> Fragments:
    """Z-buffered rasterisation of a triangle mesh, sampling pixel centres.

    Args:
      vertices_px: [V, 2] continuous (x, y) pixel coordinates, e.g. from `project`.
      depth: [V] depth per vertex; the smallest depth wins.
      faces: [F, 3] int vertex indices.
      size: (H, W).
      perspective_correct: interpolate linearly in 3-D (1/depth is linear on screen)
        instead of on screen; right for a perspective camera, where depth is the
        camera-frame z. Weak perspective is affine: leave it False.
      cull_backfaces: skip faces wound counter-clockwise on screen (x right, y down),
        i.e. whose normal (v1−v0)×(v2−v0) points away from the viewer; only a speed-up
        for closed, outward-oriented meshes (SMPL).

    Returns:
      `Fragments`. Degenerate (zero-area) faces cover nothing; faces partly outside the
      image are clipped to it. Where faces tie in depth (shared edges), the higher face
      index wins, so the result never depends on the order of operations.

    How: per face and pixel row, the span of pixel centres inside the triangle (from its
    three edge functions) yields only covered (face, pixel) fragments; depth is a per-face
    plane in screen space; ``np.minimum.at`` keeps each pixel's nearest fragment.

    Raises:
      ValueError: on wrong shapes, face indices out of range, or non-finite coordinates
        of a vertex that a face uses.
    """
    h, w = _size(size)
    xy = _points("vertices_px", vertices_px, 2)
    z = np.asarray(depth, np.float64)
    if z.shape != (len(xy),):
        raise ValueError(
            f"depth must have shape [{len(xy)}] (one per vertex), got {list(z.shape)}."
        )
    faces = _faces(faces, len(xy))

    if not (np.isfinite(xy).all() and np.isfinite(z).all()):
        bad = ~(np.isfinite(xy).all(axis=1) & np.isfinite(z))[faces].all(axis=1)
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} faces use vertices with non-finite pixel coordinates or "
                f"depth (first: face {int(np.argmax(bad))}); drop those faces (e.g. the ones "
                "behind a perspective camera) before rasterising."
            )
    # Column by column: NumPy reduces a length-3 axis much slower than it combines arrays.
    xs, ys = xy[:, 0][faces], xy[:, 1][faces]  # [F, 3] each
    x0, y0 = xs[:, 0], ys[:, 0]
    ex1, ey1 = xs[:, 1] - x0, ys[:, 1] - y0
    ex2, ey2 = xs[:, 2] - x0, ys[:, 2] - y0
    area2 = ex1 * ey2 - ex2 * ey1  # twice the signed screen area; < 0: faces the viewer
    # Pixel centres j + 0.5 inside each face's bounding box, clipped to the image.
    x_lo = np.maximum(np.ceil(np.minimum(np.minimum(x0, xs[:, 1]), xs[:, 2]) - 0.5), 0)
    y_lo = np.maximum(np.ceil(np.minimum(np.minimum(y0, ys[:, 1]), ys[:, 2]) - 0.5), 0)
    x_hi = np.minimum(np.floor(np.maximum(np.maximum(x0, xs[:, 1]), xs[:, 2]) - 0.5), w - 1)
    y_hi = np.minimum(np.floor(np.maximum(np.maximum(y0, ys[:, 1]), ys[:, 2]) - 0.5), h - 1)
    keep = (np.abs(area2) > 1e-12) & (x_hi >= x_lo) & (y_hi >= y_lo)
    if cull_backfaces:
        keep &= area2 < 0
    (idx,) = np.nonzero(keep)

    face_id = np.full((h, w), -1, np.int32)
    zbuf = np.full((h, w), np.inf, np.float32)
    bary = np.zeros((h, w, 3), np.float32)
    if len(idx) == 0:
        return Fragments(face_id, zbuf, bary)

    # Barycentrics as affine functions of the pixel centre: l = a·x + b·y + c per face.
    inv = 1.0 / area2[idx]
    a1, b1 = ey2[idx] * inv, -ex2[idx] * inv
    a2, b2 = -ey1[idx] * inv, ex1[idx] * inv
    c1 = -(a1 * x0[idx] + b1 * y0[idx])
    c2 = -(a2 * x0[idx] + b2 * y0[idx])
    a0, b0, c0 = -(a1 + a2), -(b1 + b2), 1.0 - c1 - c2
    x_lo, y_lo = x_lo[idx].astype(np.int64), y_lo[idx].astype(np.int64)
    x_hi, y_hi = x_hi[idx].astype(np.int64), y_hi[idx].astype(np.int64)

    # Scanlines: for every (face, pixel row) the span of pixel centres inside the face,
    # so that only covered pixels are generated (bounding boxes hold 2-7× as many).
    ny = y_hi - y_lo + 1
    r_face = np.repeat(np.arange(len(idx)), ny)  # indexes the kept faces
    row = np.arange(len(r_face)) - np.repeat(np.cumsum(ny) - ny, ny) + y_lo[r_face]
    cy = row + 0.5
    left = np.full(len(row), -np.inf)
    right = np.full(len(row), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for a, b, c in ((a0, b0, c0), (a1, b1, c1), (a2, b2, c2)):
            # Edge function a·x + k ≥ 0 on this row: a bound on x, or all / nothing.
            ar, kr = a[r_face], b[r_face] * cy + c[r_face]
            bound = -kr / ar
            left = np.where(ar > 0, np.maximum(left, bound), left)
            right = np.where(ar < 0, np.minimum(right, bound), right)
            right = np.where((ar == 0) & (kr < 0), -np.inf, right)
    # Centres j + 0.5 in [left, right], within the clipped box; a 1e-7 px slack so that a
    # centre on an edge shared by two faces is never missed by both.
    xl, xh = x_lo[r_face], x_hi[r_face]
    col0 = np.maximum(np.ceil(np.clip(left - 0.5 - 1e-7, xl - 1, xh + 1)).astype(np.int64), xl)
    col1 = np.minimum(np.floor(np.clip(right - 0.5 + 1e-7, xl - 1, xh + 1)).astype(np.int64), xh)
    nx = np.maximum(col1 - col0 + 1, 0)
    owner = np.repeat(r_face, nx)
    px = np.repeat(col0, nx) + np.arange(len(owner)) - np.repeat(np.cumsum(nx) - nx, nx)
    py = np.repeat(row, nx)
    pix = py * w + px

    # Depth per fragment from a per-face plane: depth (or, for perspective, 1/depth) is an
    # affine function of the pixel centre, like the barycentrics.
    tz = z[faces[idx]]  # [K, 3]
    if perspective_correct:
        tz = 1.0 / tz
    d1, d2 = tz[:, 1] - tz[:, 0], tz[:, 2] - tz[:, 0]
    za, zb, zc = a1 * d1 + a2 * d2, b1 * d1 + b2 * d2, tz[:, 0] + c1 * d1 + c2 * d2
    frag_z = za[owner] * (px + 0.5) + zb[owner] * (py + 0.5) + zc[owner]
    if perspective_correct:
        frag_z = 1.0 / frag_z

    # Z-buffer: the nearest depth per pixel, then among fragments at that depth (shared
    # edges and vertices tie) the highest face index, so that the result is deterministic.
    zmin = np.full(h * w, np.inf)
    np.minimum.at(zmin, pix, frag_z)
    (near,) = np.nonzero(frag_z == zmin[pix])
    kept = owner[near]
    best = np.full(h * w, -1, np.int64)
    np.maximum.at(best, pix[near], kept)
    win = near[kept == best[pix[near]]]  # one fragment per covered pixel

    # Barycentrics of the winners only.
    o, cx, cy = owner[win], px[win] + 0.5, py[win] + 0.5
    l1 = a1[o] * cx + b1[o] * cy + c1[o]
    l2 = a2[o] * cx + b2[o] * cy + c2[o]
    lam = np.stack([1.0 - l1 - l2, l1, l2], axis=1)
    if perspective_correct:  # screen weights → weights of the 3-D triangle
        lam *= tz[o] * frag_z[win, None]
    pix = pix[win]
    face_id.reshape(-1)[pix] = idx[o]
    zbuf.reshape(-1)[pix] = frag_z[win]
    bary.reshape(-1, 3)[pix] = np.clip(lam, 0.0, 1.0)
    return Fragments(face_id, zbuf, bary)


def _faces(faces, num_vertices):
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape [F, 3], got {list(faces.shape)}.")
    if faces.size and not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices, got dtype {faces.dtype}.")
    faces = faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise ValueError(
            f"faces index vertices {faces.min()}..{faces.max()}, but there are only "
            f"{num_vertices} vertices (valid: 0..{num_vertices - 1})."
        )
    return faces


def vertex_normals(vertices, faces) -> np.ndarray:
    """[V, 3] unit normals: the area-weighted average of the adjacent faces' normals."""
    vertices = _points("vertices", vertices, 3)
    faces = _faces(faces, len(vertices))
    fn = _face_normals(vertices, faces)  # length = twice the area
    # One bincount over (vertex, component) slots sums every face into its 3 corners.
    slots = (faces[:, :, None] * 3 + np.arange(3)).reshape(-1)
    weights = np.broadcast_to(fn[:, None, :], (len(faces), 3, 3)).reshape(-1)
    vn = np.bincount(slots, weights, minlength=3 * len(vertices)).reshape(-1, 3)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def _face_normals(vertices, faces):
    """[F, 3] (v1 − v0) × (v2 − v0), written out: np.cross is slow on small last axes."""
    a = vertices[faces[:, 1]] - vertices[faces[:, 0]]
    b = vertices[faces[:, 2]] - vertices[faces[:, 0]]
    return np.stack(
        [
            a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
            a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
            a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0],
        ],
        axis=1,
    )


def _rgb(colors, num_vertices, num_faces):
    """Colours as float [V or F, 3] in [0, 1], plus whether they are per vertex."""
    c = np.asarray(BODY_COLOR if colors is None else colors)
    scale = 255.0 if np.issubdtype(c.dtype, np.integer) else 1.0
    c = c.astype(np.float64) / scale
    if c.shape == (3,):
        return np.broadcast_to(c, (num_faces, 3)), False
    if c.ndim == 2 and c.shape[1] == 3 and c.shape[0] in (num_vertices, num_faces):
        return c, c.shape[0] == num_vertices  # per vertex wins if V == F
    raise ValueError(
        f"colors must be one RGB [3], per vertex [{num_vertices}, 3] or per face "
        f"[{num_faces}, 3], got {list(c.shape)}."
    )


def _background(background, h, w):
    if background is None:
        return np.full((h, w, 3), 255, np.uint8)
    b = np.asarray(background)
    if b.shape == (3,):
        b = np.broadcast_to(b, (h, w, 3))
    if b.shape != (h, w, 3):
        raise ValueError(f"background must be RGB [3] or an image [{h}, {w}, 3], got {b.shape}.")
    if not np.issubdtype(b.dtype, np.integer):
        b = np.clip(np.round(b * 255.0), 0, 255)
    return b.astype(np.uint8)


def shade(
    fragments: Fragments,
    vertices,
    faces,
    colors=None,
    *,
    light_dir=LIGHT_DIR,
    ambient=0.4,
    diffuse=0.6,
    specular=0.0,
    smooth=True,
    background=None,
) -> np.ndarray:
    """Lambertian + ambient (+ optional Blinn-Phong) shading of rasterised fragments.

    Lighting is two-sided: a normal facing away from the viewer is flipped, so open or
    inconsistently oriented meshes still shade sensibly.

    Args:
      fragments: from `rasterize`.
      vertices: [V, 3] in the camera frame (see `to_camera_frame`); only their normals
        are used, so a translation does not matter.
      faces: [F, 3] int.
      colors: None (a light clay), one RGB [3], per vertex [V, 3] or per face [F, 3];
        floats in [0, 1] or integers in [0, 255].
      light_dir: [3] direction towards the light, camera frame (x right, y down, z away).
      ambient, diffuse, specular: weights of the three terms.
      smooth: interpolate vertex normals (True) or use flat face normals.
      background: None (white), one RGB [3] or an image [H, W, 3], uint8 or float in [0, 1].

    Returns:
      [H, W, 3] uint8; pixels that no face covers are exactly the background.
    """
    face_id, _, bary = fragments
    h, w = face_id.shape
    vertices = _points("vertices", vertices, 3)
    faces = _faces(faces, len(vertices))
    out = _background(background, h, w).copy()
    covered = face_id >= 0
    fid = face_id[covered]
    lam = bary[covered].astype(np.float64)  # [P, 3]
    if len(fid) == 0:
        return out
    if smooth:
        normal = np.einsum("pk,pkc->pc", lam, vertex_normals(vertices, faces)[faces[fid]])
    else:
        normal = _face_normals(vertices, faces[fid])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    normal *= np.where(normal[:, 2:] > 0, -1.0, 1.0)  # two-sided: face the camera (-z)
    light = np.asarray(light_dir, np.float64)
    light = light / np.linalg.norm(light)
    intensity = ambient + diffuse * np.clip(normal @ light, 0.0, None)

    rgb, per_vertex = _rgb(colors, len(vertices), len(faces))
    color = np.einsum("pk,pkc->pc", lam, rgb[faces[fid]]) if per_vertex else rgb[fid]
    color = color * intensity[:, None]
    if specular:
        half = light + np.array([0.0, 0.0, -1.0])  # towards the light + towards the viewer
        half /= np.linalg.norm(half)
        color = color + specular * np.clip(normal @ half, 0.0, None)[:, None] ** 32
    out[covered] = np.clip(np.round(color * 255.0), 0, 255).astype(np.uint8)
    return out


def part_image(fragments: Fragments, faces, part_labels) -> np.ndarray:
    """[H, W] int32 part label per pixel (-1: background).

    Each pixel takes the label of the vertex of its face with the largest barycentric
    weight, so part borders follow the mesh rather than cutting faces in half.

    Args:
      fragments: from `rasterize`.
      faces: [F, 3] int.
      part_labels: [V] int label per vertex (e.g. the argmax of SMPL's skinning weights).
    """
    labels = np.asarray(part_labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"part_labels must be [V] integers, got {labels.dtype} {labels.shape}.")
    faces = _faces(faces, len(labels))
    face_id, _, bary = fragments
    out = np.full(face_id.shape, -1, np.int32)
    covered = face_id >= 0
    corner = np.argmax(bary[covered], axis=1)
    out[covered] = labels[faces[face_id[covered], corner]]
    return out


def render_mesh(
    vertices,
    faces,
    camera: Camera,
    size,
    colors=None,
    *,
    light_dir=LIGHT_DIR,
    ambient=0.4,
    diffuse=0.6,
    specular=0.0,
    smooth=True,
    background=None,
    part_labels=None,
    supersample: int = 1,
):
    """Render a mesh: project, rasterise, shade and composite over a background.

    Args:
      vertices: [V, 3] (metres) in the frame the camera's rotation expects. For a body
        in SMPL's own frame use ``camera.rotation = SMPL_TO_CAMERA`` (module docstring).
      faces: [F, 3] int.
      camera: a `Camera`.
      size: (H, W) of the output image.
      colors, light_dir, ambient, diffuse, specular, smooth, background: as in `shade`.
      part_labels: optional [V] int label per vertex; if given, a part image is returned
        too (see `part_image`).
      supersample: render at this many times the resolution and average k×k blocks
        (anti-aliasing for pictures); the part image takes each block's centre sample.

    Returns:
      [H, W, 3] uint8, or (that, [H, W] int32 part image) if `part_labels` is given.
      Faces with a vertex at or behind a perspective camera's centre are not drawn.
    """
    h, w = _size(size)
    k = int(supersample)
    if k < 1:
        raise ValueError(f"supersample must be a positive integer, got {supersample}.")
    vertices = _points("vertices", vertices, 3)
    faces = _faces(faces, len(vertices))
    xy, z = project(vertices, camera, (h, w))
    xy = xy * k  # continuous pixel coordinates scale exactly with the resolution
    if camera.kind == _PERSPECTIVE:
        front = (z[faces] > 1e-6).all(axis=1)
        if not front.all():
            c = None if colors is None else np.asarray(colors)
            if c is not None and c.ndim == 2 and len(c) == len(faces) != len(vertices):
                colors = c[front]  # per-face colours follow their faces
            faces = faces[front]
        xy[~(np.isfinite(xy).all(axis=1) & (z > 1e-6))] = 0.0  # now unused by any face
    frags = rasterize(xy, z, faces, (h * k, w * k), perspective_correct=camera.kind == _PERSPECTIVE)
    back = _background(background, h, w)
    image = shade(
        frags,
        to_camera_frame(vertices, camera),
        faces,
        colors,
        light_dir=light_dir,
        ambient=ambient,
        diffuse=diffuse,
        specular=specular,
        smooth=smooth,
        background=np.repeat(np.repeat(back, k, axis=0), k, axis=1) if k > 1 else back,
    )
    if k > 1:
        image = image.reshape(h, k, w, k, 3).astype(np.float32).mean(axis=(1, 3))
        image = np.round(image).astype(np.uint8)
        covered = (frags.face_id >= 0).reshape(h, k, w, k).any(axis=(1, 3))
        image[~covered] = back[~covered]  # exact background where no face reached
    if part_labels is None:
        return image
    parts = part_image(frags, faces, part_labels)
    return image, parts[k // 2 :: k, k // 2 :: k]


def keypoint_visibility(points, camera: Camera, depth_image, tol=0.15) -> np.ndarray:
    """Which 3-D points are not hidden by the rendered surface (a depth test).

    Args:
      points: [K, 3] keypoints in the same frame as the rendered vertices.
      camera: the `Camera` used for rendering.
      depth_image: [H, W] depth from `rasterize` (+inf where no surface).
      tol: depth slack in depth units (metres): a point at most `tol` behind the surface
        at its pixel still counts as visible. Joints lie inside the body: a limb's
        3-6 cm, the spine's up to ~15 cm behind the skin facing the camera, while a joint
        hidden by another body part is usually 20 cm or more behind it. The default
        (0.15) keeps the spine visible from the front; 0.06 suits limbs only.

    Returns:
      [K] bool: inside the image, in front of the camera, and not behind the surface.
    """
    depth_image = np.asarray(depth_image)
    if depth_image.ndim != 2:
        raise ValueError(f"depth_image must be [H, W], got {list(depth_image.shape)}.")
    h, w = depth_image.shape
    xy, z = project(points, camera, (h, w))
    with np.errstate(invalid="ignore"):
        col = np.floor(xy[:, 0])
        row = np.floor(xy[:, 1])
        inside = np.isfinite(xy).all(axis=1) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    if camera.kind == _PERSPECTIVE:
        inside &= z > 0
    surface = np.full(len(z), np.inf)
    surface[inside] = depth_image[row[inside].astype(int), col[inside].astype(int)]
    return inside & (z <= surface + tol)


def _disk(radius):
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dx**2 + dy**2 <= radius**2 + 1e-9
    return dy[keep], dx[keep]


def _stamp(image, centers, radius, color):
    """Paint discs of `radius` px at float (x, y) `centers` [N, 2] (clipped to the image)."""
    if len(centers) == 0:
        return
    h, w = image.shape[:2]
    dy, dx = _disk(radius)
    c = np.floor(centers).astype(np.int64)
    rows = (c[:, 1:2] + dy).reshape(-1)
    cols = (c[:, 0:1] + dx).reshape(-1)
    ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    image[rows[ok], cols[ok]] = color


def draw_keypoints(
    image,
    keypoints_px,
    visible=None,
    parents=None,
    *,
    radius=2.0,
    thickness=1.0,
    color=(230, 40, 40),
    hidden_color=(150, 150, 150),
    bone_color=(40, 160, 230),
) -> np.ndarray:
    """Draw keypoints as dots and, given a tree, bones as lines (for contact sheets).

    Args:
      image: [H, W, 3] uint8; not modified.
      keypoints_px: [K, 2] (x, y) continuous pixel coordinates; rows with NaN are skipped.
      visible: [K] bool or None (all visible); hidden points and their bones are drawn in
        `hidden_color`.
      parents: [K] parent index per keypoint (-1: none), e.g. `smpl_jax.skeleton.PARENTS`.
      radius: dot radius in pixels.
      thickness: bone width in pixels.
      color, hidden_color, bone_color: RGB uint8 triples.

    Returns:
      A new [H, W, 3] uint8 image.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3], got {list(out.shape)}.")
    kp = _points("keypoints_px", keypoints_px, 2)
    vis = np.ones(len(kp), bool) if visible is None else np.asarray(visible, bool)
    if vis.shape != (len(kp),):
        raise ValueError(f"visible must be [{len(kp)}] booleans, got {list(vis.shape)}.")
    finite = np.isfinite(kp).all(axis=1)
    if parents is not None:
        parents = np.asarray(parents, np.int64)
        if parents.shape != (len(kp),) or parents.max(initial=-1) >= len(kp):
            raise ValueError(f"parents must be [{len(kp)}] indices (-1: root), got {parents}.")
        child = np.nonzero((parents >= 0) & finite)[0]
        child = child[finite[parents[child]]]
        for shown, col in ((False, hidden_color), (True, bone_color)):
            sel = child[(vis[child] & vis[parents[child]]) == shown]
            a, b = kp[sel], kp[parents[sel]]
            steps = int(np.ceil(np.max(np.abs(b - a), initial=0.0) * 2)) + 1
            t = np.linspace(0.0, 1.0, steps)[None, :, None]
            _stamp(out, (a[:, None] + t * (b - a)[:, None]).reshape(-1, 2), thickness / 2, col)
    _stamp(out, kp[finite & ~vis], radius, hidden_color)
    _stamp(out, kp[finite & vis], radius, color)
    return out


def caption(image, text):
    """Draw `text` near the top of `image` in place if Pillow has a font, else do nothing."""
    try:  # lazy: Pillow (or its font) is optional here; without it, no caption
        from PIL import Image, ImageDraw, ImageFont

        font = ImageFont.load_default(size=max(10, image.shape[0] // 22))
    except (ImportError, OSError, TypeError):
        return
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    draw.text((image.shape[1] // 2, 6), text, fill=(70, 70, 70), font=font, anchor="ma")
    image[...] = np.asarray(pil)


def write_png(path, image) -> pathlib.Path:
    """Write `image` as PNG atomically (`smpl_jax.atomic_files`)."""
    import imageio.v3 as iio  # lazy, heavy (~80 modules): the rasteriser is NumPy only

    data = iio.imwrite("<bytes>", np.asarray(image, np.uint8), extension=".png")
    return atomic_files.write_bytes(path, data)

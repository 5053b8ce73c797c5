"""Body-part silhouettes of a mesh and SPIN's LSP segmentation scores (paper Table 5).

SPIN's protocol (its `eval.py`, dataset `lsp`): `PartLabels` (from skinning weights, a
label file or SPIN's texture and part cube) → `render_parts` with SPIN's camera
(`spin_camera`) → `uncrop` into the whole image → `SegmentationScores` (FB and parts
accuracy and F1). Camera, parts, uncrop and scores in detail: docs/lsp_seg.md; the
contact sheet of predictions: `hkmr_jax.tools.lsp_seg_sheet`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib

import numpy as np

from hkmr_jax import render
from smpl_jax import skeleton

#: SPIN's labels: index = label (0 background); the built-in parts: `skinning_parts`.
PART_NAMES = skeleton.PART_NAMES
NUM_CLASSES = len(PART_NAMES)  # 7, background included
#: Ground-truth part label meaning "not annotated" (UP-3D's annotations).
IGNORE = 255
#: SPIN's focal length (pixels) and render resolution.
FOCAL = 5000.0
RENDER_SIZE = 224
#: NMR's far plane (its `Renderer` default, which SPIN keeps): surface farther than this
#: many metres is not drawn, so a predicted scale s < 2f / (224 · 100) ≈ 0.45 renders
#: nothing in SPIN's evaluation; `render_parts` does the same at any size (the plane
#: moves with t_z ∝ 1 / size, so that the same people vanish).
FAR = 100.0

#: The built-in body's six parts: each SMPL joint's skinning region → part.
JOINT_TO_PART = skeleton.JOINT_TO_PART

# NMR's clamp of texture coordinates below T - 1 (its rasterizer's default eps).
_NMR_EPS = 1e-4


def skinning_parts(weights) -> np.ndarray:
    """uint8 [V] part label (1…6) of each vertex: its dominant skinning joint's part
    (`smpl_jax.skeleton.vertex_parts`; weights [V, 24] in SMPL's joint order)."""
    return skeleton.vertex_parts(weights)


def _load_npy(path, what: str) -> np.ndarray:
    """An .npy of plain numbers (never pickled objects), or ValueError naming the file."""
    path = pathlib.Path(path).expanduser()
    try:
        value = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist.") from None
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(
            f"cannot read {what} {path}: not an .npy of plain numbers ({e})."
        ) from None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iufb":
        raise ValueError(f"{what} {path} must hold a numeric array, got {type(value).__name__}.")
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class PartLabels:
    """Where a rendered pixel's part label comes from: per-vertex labels, or SPIN's
    per-face texture and lookup cube. Build with the class methods.

    Attributes:
      vertex: uint8 [V] labels 0…6, or None.
      texture: float32 [F, T, T, T, 3] NMR colour cubes, or None.
      cube: uint8 [N, N, N] colour (⌊100·rgb⌋) → label, or None.
      source: what it was made from (for messages).
    """

    vertex: np.ndarray | None = None
    texture: np.ndarray | None = None
    cube: np.ndarray | None = None
    source: str = ""

    @classmethod
    def from_body(cls, body) -> PartLabels:
        """The six parts of a body from its skinning weights (`skinning_parts`)."""
        return cls(vertex=skinning_parts(body.weights), source="skinning weights")

    @classmethod
    def from_file(cls, path) -> PartLabels:
        """A per-vertex label ``.npy`` [V] of integers 0…6."""
        labels = _load_npy(path, "part label file")
        if labels.ndim != 1 or labels.dtype.kind not in "iub":
            raise ValueError(
                f"part label file {path} must be a 1-D integer array [V] (one label 0-6 per "
                f"vertex), got {labels.dtype} {list(labels.shape)}."
            )
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise ValueError(
                f"part label file {path} has labels {int(labels.min())}..{int(labels.max())}; "
                f"valid: 0..{NUM_CLASSES - 1} ({', '.join(PART_NAMES)})."
            )
        return cls(vertex=labels.astype(np.uint8), source=str(path))

    @classmethod
    def from_spin_texture(cls, vertex_texture, cube_parts) -> PartLabels:
        """SPIN's ``data/vertex_texture.npy`` and ``data/cube_parts.npy`` (docs/lsp_seg.md)."""
        texture = _load_npy(vertex_texture, "vertex texture")
        if texture.ndim == 6 and texture.shape[0] == 1:
            texture = texture[0]  # NMR's leading batch axis
        if (
            texture.ndim != 5
            or texture.shape[-1] != 3
            or not (texture.shape[1] == texture.shape[2] == texture.shape[3] >= 1)
        ):
            raise ValueError(
                f"vertex texture {vertex_texture} must be NMR's [1, F, T, T, T, 3] (a T×T×T "
                f"RGB cube per face), got {list(texture.shape)}."
            )
        texture = texture.astype(np.float32)
        if not np.isfinite(texture).all() or texture.min() < 0:
            raise ValueError(
                f"vertex texture {vertex_texture} must hold finite colours ≥ 0 (RGB in [0, 1])."
            )
        cube = _load_npy(cube_parts, "part cube")
        if cube.ndim != 3:
            raise ValueError(
                f"part cube {cube_parts} must be 3-D (quantised R, G, B → part), got "
                f"{list(cube.shape)}."
            )
        if (
            cube.size == 0
            or not np.all(cube == np.round(cube))
            or cube.min() < 0
            or (cube.max() >= NUM_CLASSES)
        ):
            raise ValueError(f"part cube {cube_parts} must hold whole labels 0..{NUM_CLASSES - 1}.")
        # Interpolated colours stay within each channel's range: check the largest index.
        top = np.floor(100 * texture.reshape(-1, 3).max(axis=0)).astype(np.int64)
        if np.any(top >= np.array(cube.shape)):
            raise ValueError(
                f"vertex texture {vertex_texture} has colours up to {top.tolist()} / 100, "
                f"outside part cube {cube_parts} of shape {list(cube.shape)}: are the two "
                "files from the same SPIN data folder?"
            )
        return cls(texture=texture, cube=cube.astype(np.uint8),
                   source=f"{vertex_texture} + {cube_parts}")  # fmt: skip

    def check(self, num_vertices: int, num_faces: int) -> None:
        """ValueError when these labels do not fit a mesh of this size."""
        if self.vertex is not None and len(self.vertex) != num_vertices:
            raise ValueError(
                f"part labels ({self.source}) have {len(self.vertex)} vertices, the mesh "
                f"{num_vertices}: give the labels of the run's body."
            )
        if self.texture is not None and len(self.texture) != num_faces:
            raise ValueError(
                f"vertex texture ({self.source}) has {len(self.texture)} faces, the mesh "
                f"{num_faces}: SPIN's texture fits SMPL's mesh (13,776 faces) only."
            )

    def pixel_labels(self, frags: render.Fragments, faces) -> np.ndarray:
        """uint8 [H, W]: the part of every pixel (0 where no face is)."""
        face_id, _, bary = frags
        out = np.zeros(face_id.shape, np.uint8)
        covered = face_id >= 0
        fid = face_id[covered]
        if self.vertex is not None:
            corner = np.argmax(bary[covered], axis=1)
            out[covered] = self.vertex[faces[fid, corner]]
            return out
        # NMR's texture sampling: trilinear in the face's colour cube at w · (T − 1).
        t = self.texture.shape[1]
        coord = np.clip(bary[covered] * np.float32(t - 1), 0.0, t - 1 - _NMR_EPS)
        low = coord.astype(np.int64)
        frac = (coord - low).astype(np.float32)
        colour = np.zeros((len(fid), 3), np.float32)
        for corner in range(8):
            bits = np.array([(corner >> k) & 1 for k in range(3)])
            w = np.prod(np.where(bits, frac, 1.0 - frac), axis=1, dtype=np.float32)
            i = np.minimum(low + bits, t - 1)
            colour += w[:, None] * self.texture[fid, i[:, 0], i[:, 1], i[:, 2]]
        q = np.floor(np.float32(100) * colour).astype(np.int64)
        out[covered] = self.cube[q[:, 0], q[:, 1], q[:, 2]]
        return out


def spin_camera(camera, size: int = RENDER_SIZE, focal: float = FOCAL) -> render.Camera:
    """SPIN's perspective camera for a predicted weak-perspective ``(s, ρx, ρy)``.

    Translation ``(ρx / s, ρy / s, 2f / (size · s))`` (SPIN's ``(tx, ty, 2f/(res·s))`` in
    HMR's ``s·(X + t)`` convention), principal point at the image centre.
    """
    s, rx, ry = (float(c) for c in np.asarray(camera).reshape(3))
    if not (np.isfinite([s, rx, ry]).all() and s != 0):
        raise ValueError(f"camera must be finite with a non-zero scale, got {[s, rx, ry]}.")
    return render.Camera.perspective(focal, (rx / s, ry / s, 2.0 * focal / (size * s)))


def render_parts(vertices, faces, camera, parts: PartLabels, size: int = RENDER_SIZE,
                 *, focal: float = FOCAL, far: float = FAR,
                 cull_backfaces: bool = True):  # fmt: skip
    """Silhouette and part map of one mesh under SPIN's camera, one sample per pixel.

    Args:
      vertices: [V, 3] the mesh in the camera frame (no translation), metres.
      faces: [F, 3] int.
      camera: [3] weak-perspective ``(s, ρx, ρy)`` (`geometry.weak_perspective`).
      parts: `PartLabels`.
      size: the square image side, pixels.
      far: NMR's far plane in metres for a `RENDER_SIZE` render (scaled by
        RENDER_SIZE / size otherwise): pixels whose nearest surface lies beyond it are
        background; None: no limit.
      cull_backfaces: skip faces turned away from the camera; on a closed, outward-facing
        mesh (SMPL, the built-in body) the nearest surface is always a front face, so the
        result is the same and rendering twice as fast.

    Returns:
      (mask bool [size, size]: covered pixels, labels uint8 [size, size]: 0…6).
    """
    faces = np.asarray(faces, np.int64)
    cam = spin_camera(camera, size, focal)
    # `render.project` written out for this camera (identity rotation): x = f·X/Z + c.
    points = np.asarray(vertices, np.float64) + cam.translation
    z = points[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = points[:, :2] * (focal / z)[:, None] + size / 2.0
    front = None if z.min() > 1e-6 else (z[faces] > 1e-6).all(axis=1)
    if front is not None:  # a vertex at or behind the camera: drop its faces
        xy = np.where((z > 1e-6)[:, None] & np.isfinite(xy), xy, 0.0)
        faces_drawn = faces[front]
        index = np.flatnonzero(front)
    else:
        faces_drawn, index = faces, None
    frags = render.rasterize(xy, z, faces_drawn, (size, size), perspective_correct=True,
                             cull_backfaces=cull_backfaces)  # fmt: skip
    if index is not None:  # face ids of the full mesh, for per-face textures
        fid = frags.face_id
        frags = frags._replace(face_id=np.where(fid >= 0, index[np.maximum(fid, 0)], -1))
    if far is not None:
        far = far * RENDER_SIZE / size
        if np.any(frags.depth[frags.face_id >= 0] > far):
            frags = frags._replace(face_id=np.where(frags.depth > far, -1, frags.face_id))
    return frags.face_id >= 0, parts.pixel_labels(frags, faces)


def render_parts_batch(vertices, faces, cameras, parts: PartLabels, size: int = RENDER_SIZE,
                       *, workers: int | None = None, **kwargs):  # fmt: skip
    """`render_parts` of a batch, meshes spread over threads (NumPy releases the GIL).

    Args:
      vertices: [B, V, 3]; cameras: [B, 3]; workers: threads (None: the CPU count).

    Returns:
      (masks bool [B, size, size], labels uint8 [B, size, size]).
    """
    vertices = np.asarray(vertices, np.float64)
    cameras = np.asarray(cameras, np.float64)
    faces = np.asarray(faces, np.int64)
    parts.check(vertices.shape[1], len(faces))
    workers = (os.cpu_count() or 1) if workers is None else int(workers)

    def one(b):
        return render_parts(vertices[b], faces, cameras[b], parts, size, **kwargs)

    if workers <= 1 or len(vertices) <= 1:
        results = [one(b) for b in range(len(vertices))]
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, range(len(vertices))))
    masks = np.stack([m for m, _ in results]) if results else np.zeros((0, size, size), bool)
    labels = np.stack([p for _, p in results]) if results else np.zeros((0, size, size), np.uint8)
    return masks, labels


# ------------------------------------------------------------------------------- uncrop


def _spin_transform(point, center, scale, res, invert: bool):
    """SPIN's `utils/imutils.transform` (rot = 0): pixel ↔ crop, 1-based, truncated."""
    h = 200.0 * float(scale)
    t = np.array([[res[1] / h, 0.0, res[1] * (-float(center[0]) / h + 0.5)],
                  [0.0, res[0] / h, res[0] * (-float(center[1]) / h + 0.5)],
                  [0.0, 0.0, 1.0]])  # fmt: skip
    if invert:
        t = np.linalg.inv(t)
    p = t @ np.array([point[0] - 1.0, point[1] - 1.0, 1.0])
    return p[:2].astype(int) + 1  # astype(int) truncates towards zero, as SPIN's


def uncrop(image, center, scale, orig_shape) -> np.ndarray:
    """SPIN's ``uncrop``: a crop ([res, res] uint8) back into an image of `orig_shape`.

    Args:
      image: uint8 [h, w] label or mask crop (as rendered, e.g. 224 × 224).
      center: [2] the crop box's centre (x, y), source pixels.
      scale: box side / 200.
      orig_shape: (H, W) of the original image.

    Returns:
      uint8 [H, W]: the crop resized (nearest neighbour) to its box and pasted; zero
      outside the box.
    """
    import PIL.Image

    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"uncrop takes a uint8 [h, w] map, got {image.dtype} {image.shape}.")
    res = image.shape
    orig_h, orig_w = (int(v) for v in orig_shape[:2])
    ul = _spin_transform([1, 1], center, scale, res, True) - 1
    br = _spin_transform([res[0] + 1, res[1] + 1], center, scale, res, True) - 1
    crop_h, crop_w = int(br[1] - ul[1]), int(br[0] - ul[0])
    if crop_h <= 0 or crop_w <= 0:
        raise ValueError(f"uncrop: the box (center {center}, scale {scale}) is empty.")
    out = np.zeros((orig_h, orig_w), np.uint8)
    new_x = max(0, -ul[0]), min(br[0], orig_w) - ul[0]
    new_y = max(0, -ul[1]), min(br[1], orig_h) - ul[1]
    old_x = max(0, ul[0]), min(orig_w, br[0])
    old_y = max(0, ul[1]), min(orig_h, br[1])
    if old_x[1] <= old_x[0] or old_y[1] <= old_y[0]:
        return out  # the box lies outside the image
    # scipy.misc.imresize(img, shape, interp='nearest') was PIL's NEAREST resize.
    resized = np.asarray(PIL.Image.fromarray(image).resize((crop_w, crop_h), PIL.Image.NEAREST))
    out[old_y[0] : old_y[1], old_x[0] : old_x[1]] = resized[new_y[0] : new_y[1],
                                                           new_x[0] : new_x[1]]  # fmt: skip
    return out


# ------------------------------------------------------------------------------- scores


class SegmentationScores:
    """SPIN's accumulators: FB and part tp / fp / fn and pixel counts over a set."""

    def __init__(self):
        self.fb = np.zeros((3, 2), np.int64)  # tp, fp, fn per class (background, body)
        self.parts = np.zeros((3, NUM_CLASSES), np.int64)
        self.fb_correct = self.fb_pixels = self.parts_correct = self.parts_pixels = 0
        self.num_examples = 0

    def add(self, pred_parts, gt_parts, pred_mask, gt_mask) -> None:
        """One example, all maps [H, W] of the same size.

        Args:
          pred_parts: uint8 predicted labels 0…6.
          gt_parts: uint8 true labels 0…6, 255 = ignore.
          pred_mask, gt_mask: foreground (any value > 0 is foreground).
        """
        shapes = {np.shape(a) for a in (pred_parts, gt_parts, pred_mask, gt_mask)}
        if len(shapes) != 1:
            raise ValueError(f"prediction and ground truth differ in size: {sorted(shapes)}.")
        pm, gm = np.asarray(pred_mask) > 0, np.asarray(gt_mask) > 0
        self.fb_correct += int((pm == gm).sum())
        self.fb_pixels += gm.size
        for c, (g, p) in enumerate(((~gm, ~pm), (gm, pm))):
            self.fb[:, c] += [(g & p).sum(), (~g & p).sum(), (g & ~p).sum()]
        gp, p = np.asarray(gt_parts), np.asarray(pred_parts).astype(np.int64)
        if p.min(initial=0) < 0 or p.max(initial=0) >= NUM_CLASSES:
            raise ValueError(f"predicted part labels must be 0..{NUM_CLASSES - 1}.")
        ignore = gp == IGNORE
        g = np.where(ignore, 0, gp).astype(np.int64)
        if g.min(initial=0) < 0 or g.max(initial=0) >= NUM_CLASSES:
            raise ValueError(f"true part labels must be 0..{NUM_CLASSES - 1} or {IGNORE}.")
        # SPIN loops over the classes; a joint histogram of the pixels whose truth is not
        # ignored gives the same tp / fp / fn (it clears the prediction where gt is 255).
        keep = ~ignore
        joint = np.bincount(g[keep] * NUM_CLASSES + p[keep], minlength=NUM_CLASSES**2)
        joint = joint.reshape(NUM_CLASSES, NUM_CLASSES)  # [true, predicted]
        tp = np.diag(joint)
        self.parts += [tp, joint.sum(axis=0) - tp, joint.sum(axis=1) - tp]
        # Accuracy: both maps with 255 → 0, over every pixel.
        self.parts_correct += int((g == p).sum())
        self.parts_pixels += g.size
        self.num_examples += 1

    @staticmethod
    def _f1(counts) -> list[float | None]:
        tp, fp, fn = counts
        denom = 2 * tp + fp + fn
        return [float(2 * t / d) if d else None for t, d in zip(tp, denom)]

    def summary(self) -> dict:
        """{fb_accuracy (%), fb_f1, parts_accuracy (%), parts_f1, parts_f1_per_class,
        num_pixels, num_examples}; F1 is the mean over classes (a class with no true and
        no predicted pixel has no F1 and is left out of the mean; SPIN's would be NaN)."""
        if not self.num_examples:
            raise ValueError("no examples were scored.")
        fb, parts = self._f1(self.fb), self._f1(self.parts)

        def mean(values):
            values = [v for v in values if v is not None]
            return float(np.mean(values)) if values else None

        return {
            "fb_accuracy": 100.0 * self.fb_correct / self.fb_pixels,
            "fb_f1": mean(fb),
            "parts_accuracy": 100.0 * self.parts_correct / self.parts_pixels,
            "parts_f1": mean(parts),
            "parts_f1_per_class": dict(zip(PART_NAMES, parts, strict=True)),
            "num_pixels": int(self.fb_pixels),
            "num_examples": int(self.num_examples),
        }

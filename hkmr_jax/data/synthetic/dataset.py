"""`SyntheticDataset`: rendered people with exact SMPL, 3D-joint and keypoint labels.

Example ``i`` of a split is a pure function of ``(seed, split, i)``, the pose law and
`block_size`; `sample_parameters` draws all but what depends on the mesh, a jitted SMPL
forward gives the mesh and joints, the NumPy rasteriser draws the crop. Labels,
determinism, batching: docs/synthetic_data.md.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hkmr_jax import geometry, render, segmentation
from hkmr_jax.data.synthetic import appearance, pose_law
from hkmr_jax.data.synthetic._draws import Draws
from hkmr_jax.data.synthetic.pose_law import POSE_SPREAD, YAW_RANGE_DEG, check_pose_law
from smpl_jax import synthetic as builtin

#: Split name → id in the seed stream (the examples of different splits are disjoint).
SPLITS: dict[str, int] = {"train": 0, "test": 1}
#: Default lengths: train is as long as any run asks for; test is a fixed benchmark.
DEFAULT_LENGTH: dict[str, int] = {"train": 2**31, "test": 1000}

#: Crop sizes accepted (pixels); 64-224 is the intended range.
MIN_SIZE, MAX_SIZE = 32, 1024

#: Camera: the person's larger extent fills this share of the crop; centre offset bound.
FILL_RANGE = (0.60, 0.95)
OFFSET_MAX = 0.04  # share of the crop width, i.e. ±0.08 in [-1, 1] coordinates
BETA_CLIP = 2.5

#: Parents of the J24 slots that carry an H36M joint, for drawing bones (-1: none).
J24_PARENTS: tuple[int, ...] = (
    1, 2, 14, 14, 3, 4, 7, 8, 12, 12, 9, 10, 16, -1, -1, -1, 14, 12, 17, -1, -1, -1, -1, -1,
)  # fmt: skip

_, J24_MASK = geometry.j24_from_h36m(np.zeros((17, 3), np.float32))
#: 1 on the 17 J24 slots that carry a Human3.6M joint, else 0 (float32 [24]).
J24_MASK = np.asarray(J24_MASK, np.float32)


def sample_parameters(
    rng: np.random.Generator,
    yaw_range: float = YAW_RANGE_DEG,
    pose_spread: float = POSE_SPREAD,
) -> dict[str, np.ndarray]:
    """Draw everything about one example except what depends on its mesh.

    The same numbers are drawn in the same order whatever their values (and whatever the
    pose law: `yaw_range` in degrees and `pose_spread`, docs/synthetic_data.md), so
    each parameter depends only on the generator's seed and the law.

    Returns:
      dict: pose float32 [72], betas float32 [10], light [3] (unit, camera frame, towards
      the light), ambient, diffuse, fill, offset [2], colours [25, 3] (RGB per part),
      background dict, noise (grain amplitude, window offset [2]).
    """
    d = Draws(rng)
    yaw_range, pose_spread = check_pose_law(yaw_range, pose_spread)
    body = pose_law.sample_body_pose(d, pose_spread)  # [23, 3]
    betas = np.clip(d.normal(10), -BETA_CLIP, BETA_CLIP)
    orientation = pose_law.sample_global_orientation(d, yaw_range)
    pose = np.concatenate([orientation, body.reshape(-1)])

    # Light from the camera's side (−z), mostly from above (−y).
    lx, ly, lz = d.uniform([-1.0, -1.0, 0.3], [1.0, 0.3, 1.0])
    light = np.array([lx, ly, -lz])
    ambient, diffuse = d.uniform([0.3, 0.45], [0.6, 0.8])
    fill = d.uniform(*FILL_RANGE)
    offset = d.uniform(-2 * OFFSET_MAX, 2 * OFFSET_MAX, (2,))
    return {
        "pose": pose.astype(np.float32),
        "betas": betas.astype(np.float32),
        "light": (light / np.linalg.norm(light)).astype(np.float32),
        "ambient": float(ambient),
        "diffuse": float(diffuse),
        "fill": float(fill),
        "offset": offset,
        "colours": appearance.sample_colours(d),
        "background": appearance.sample_background(d),
        "noise": (float(d.uniform(0.004, 0.03)), d.uniform(shape=(2,))),
    }


@jax.jit
def _forward_block(body, regressor, betas, pose):
    """One batched SMPL forward: the mesh, its J24 joints and its image-plane extent.

    Args:
      body: `smpl_jax.SMPL`.
      regressor: [17, V] Human3.6M joint regressor.
      betas: [B, 10].
      pose: [B, 72] (global orientation in the camera frame).

    Returns:
      vertices [B, V, 3] (camera frame, metres), J24 joints [B, 24, 3] (not centred), and
      the bounding box of the vertices' x, y [B, 4] (x_min, y_min, x_max, y_max), metres.
    """
    v = body(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    joints, _ = geometry.j24_joints(v, regressor)
    box = jnp.concatenate([v[..., :2].min(axis=1), v[..., :2].max(axis=1)], axis=-1)
    return v, joints, box


class SyntheticDataset:
    """Rendered people with SMPL, 3D-joint and keypoint labels (docs/synthetic_data.md).

    A random-access source (``len`` and ``ds[i]``), usable as
    ``grain.MapDataset.source(ds)``; picklable (worker processes rebuild their caches).

    Args:
      split: ``"train"`` or ``"test"`` (disjoint seed streams).
      size: crop size S in pixels (64-224 intended; 32-1024 accepted).
      seed: non-negative int; the whole dataset is a function of it.
      length: number of examples; None: 2**31 for train, 1000 for test.
      body: an `smpl_jax.SMPL` (float32, ≥ 10 betas); None: the built-in body.
      h36m_regressor: [17, V] Human3.6M regressor (SPIN's ``J_regressor_h36m.npy`` for
        SMPL); None: the built-in body's (only allowed with ``body=None``).
      dataset_id: the value of every example's ``dataset_id``.
      block_size: examples per batched SMPL forward (a fixed batch shape, compiled once);
        1 suits random access, 16 sequential reads (docs/synthetic_data.md).
      yaw_range: degrees of yaw drawn, centred on facing the camera (360: every view).
      pose_spread: each body-pose component's σ as a share of its range (1/3: the full
        law; docs/synthetic_data.md).
      segmentation: also give each example its true ``seg_mask`` uint8 [S, S] (1 on the
        body) and ``seg_parts`` uint8 [S, S] (SPIN's part labels 0…6), rendered by
        `hkmr_jax.segmentation.render_parts` from the true mesh and camera (the
        `lsp_seg` evaluator's ground truth; `with_segmentation()` turns it on).

    Raises:
      ValueError: an unknown split, or a size, seed, length, pose law or regressor out of
        range.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 128,
        seed: int = 0,
        length: int | None = None,
        body=None,
        h36m_regressor=None,
        *,
        dataset_id: int = 0,
        block_size: int = 1,
        yaw_range: float = YAW_RANGE_DEG,
        pose_spread: float = POSE_SPREAD,
        segmentation: bool = False,
    ):
        if split not in SPLITS:
            raise ValueError(
                f"unknown split {split!r} of the synthetic dataset; valid: {', '.join(SPLITS)}."
            )
        if not MIN_SIZE <= int(size) <= MAX_SIZE:
            raise ValueError(f"size must be {MIN_SIZE}-{MAX_SIZE} pixels, got {size}.")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}.")
        length = DEFAULT_LENGTH[split] if length is None else int(length)
        if length <= 0:
            raise ValueError(f"length must be positive, got {length}.")
        if int(block_size) < 1:
            raise ValueError(f"block_size must be positive, got {block_size}.")
        self.yaw_range, self.pose_spread = check_pose_law(yaw_range, pose_spread)
        self.builtin_body = body is None
        if body is None:
            body = builtin.load_builtin()
            if h36m_regressor is None:
                h36m_regressor = builtin.h36m_regressor()
        elif h36m_regressor is None:
            raise ValueError(
                "a custom body needs its Human3.6M regressor: pass h36m_regressor=[17, V] "
                "(for SMPL, SPIN's J_regressor_h36m.npy)."
            )
        regressor = np.asarray(h36m_regressor, np.float32)
        if regressor.shape != (17, body.num_vertices):
            raise ValueError(
                f"h36m_regressor must be [17, {body.num_vertices}] (17 Human3.6M joints × the "
                f"body's vertices), got {list(regressor.shape)}."
            )
        if body.num_betas < 10:
            raise ValueError(f"the body must have at least 10 betas, got {body.num_betas}.")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.length, self.dataset_id, self.block_size = length, int(dataset_id), int(block_size)
        self.body = body
        self.regressor = regressor
        self.segmentation = bool(segmentation)
        self._setup()

    def _setup(self):
        """Per-process derived state: tables, caches, the lock (not pickled)."""
        faces = np.asarray(self.body.faces, np.int64)
        self.faces = faces
        self._regressor_j = jnp.asarray(self.regressor)
        self.face_part = appearance.vertex_parts(self.body)[faces[:, 0]]
        if self.segmentation:
            self._seg_parts = segmentation.PartLabels.from_body(self.body)
        s = self.size
        self._grid_x = ((np.arange(s) + 0.5) / s * 2 - 1).astype(np.float32)
        self._upsample = {c: appearance.bilinear_matrix(c, s) for c in range(2, 7)}
        # Grain: one fixed tile of N(0, 1) noise; each example adds a window of it.
        self._grain = np.random.default_rng(12345).standard_normal((2 * s, 2 * s, 3))
        self._grain = self._grain.astype(np.float32)
        # Forward outputs per example index, least recently used first.
        self._cache: collections.OrderedDict[int, tuple] = collections.OrderedDict()
        self._cache_size = 4 * self.block_size
        self._lock = threading.Lock()

    _STATE = ("split", "size", "seed", "length", "dataset_id", "block_size", "yaw_range",
              "pose_spread", "body", "regressor", "builtin_body", "segmentation")  # fmt: skip

    def __getstate__(self):
        # The definition only: workers rebuild tables, caches and the lock in `_setup`.
        return {k: self.__dict__[k] for k in self._STATE}

    def __setstate__(self, state):
        state.setdefault("segmentation", False)
        self.__dict__.update(state)
        self._setup()

    def with_segmentation(self) -> SyntheticDataset:
        """The same examples, each also with its true ``mask`` and ``parts`` maps."""
        state = self.__getstate__()
        state["segmentation"] = True
        other = SyntheticDataset.__new__(SyntheticDataset)
        other.__setstate__(state)
        return other

    def __len__(self) -> int:
        return self.length

    def config(self) -> dict:
        """What defines the examples (recorded by `cache`)."""
        return {
            "split": self.split,
            "size": self.size,
            "seed": self.seed,
            "block_size": self.block_size,
            "dataset_id": self.dataset_id,
            "yaw_range": self.yaw_range,
            "pose_spread": self.pose_spread,
            "body": "builtin" if self.builtin_body else "custom",
        }

    def __repr__(self) -> str:
        return (f"SyntheticDataset(split={self.split!r}, size={self.size}, seed={self.seed}, "
                f"length={self.length}, yaw_range={self.yaw_range:g}, "
                f"pose_spread={self.pose_spread:.4g})")  # fmt: skip

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        i = self._index(index)
        # Read-ahead: with block_size B > 1, the forward of i, …, i + B − 1 in one batch,
        # so that a sequential reader gets the next B − 1 for free (from the cache).
        ahead = range(i, min(i + self.block_size, self.length)) if i not in self._cache else [i]
        return self._render(i, *self._prepare(ahead)[0], False)

    def _getitems(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """grain's batched read (`SupportsBatchedReadRandomAccessDataSource`)."""
        return self.render_batch(indices)

    def rng(self, index: int) -> np.random.Generator:
        """The random generator of example `index` (its whole randomness)."""
        return np.random.default_rng([self.seed, SPLITS[self.split], index])

    def _index(self, index) -> int:
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise TypeError(f"example index must be an integer, got {index!r}.") from None
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"example {index} out of range for {self!r}.")
        return i

    def _prepare(self, indices: Sequence[int]) -> list[tuple]:
        """The parameters and forward outputs of `indices`, via the cache (thread-safe).

        The missing ones go through the jitted forward in chunks of `block_size`, the last
        chunk padded by repeating its last example, so that there is one program shape.
        """
        with self._lock:
            missing = list(dict.fromkeys(i for i in indices if i not in self._cache))
            b = self.block_size
            for start in range(0, len(missing), b):
                chunk = missing[start : start + b]
                params = [
                    sample_parameters(self.rng(i), self.yaw_range, self.pose_spread) for i in chunk
                ]
                padded = params + [params[-1]] * (b - len(chunk))
                outputs = _forward_block(
                    self.body,
                    self._regressor_j,
                    np.stack([p["betas"] for p in padded]),
                    np.stack([p["pose"] for p in padded]),
                )
                verts, joints, box = (np.asarray(o) for o in outputs)
                for k, (i, p) in enumerate(zip(chunk, params, strict=True)):
                    self._cache[i] = (p, verts[k], joints[k], box[k])
            entries = [self._cache[i] for i in indices]
            for i in indices:
                self._cache.move_to_end(i)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return entries

    def render_batch(
        self, indices: Iterable[int], *, debug: bool = False
    ) -> list[dict[str, np.ndarray]]:
        """Examples for `indices` (in that order); each is exactly ``self[i]``.

        With ``block_size`` B > 1, the forward passes of the requested examples run B at
        a time, whatever the indices (e.g. a shuffled batch).

        Args:
          indices: example indices (negative ones count from the end).
          debug: also return, per example, ``mask`` bool [S, S] (body pixels),
            ``joints_cam`` float32 [24, 3] (camera-frame J24 joints, not centred) and
            ``vertices`` float32 [V, 3] (camera frame) — not part of the data contract.

        Returns:
          list of dicts in the format of `docs/CONTRACT_data.md`, plus ``camera``.
        """
        indices = [self._index(i) for i in indices]
        entries = self._prepare(indices)
        return [self._render(i, *e, debug) for i, e in zip(indices, entries, strict=True)]

    def _render(self, index, p, verts, joints, box, debug):
        s = self.size
        # The camera: the person's larger extent fills `fill` of the crop, centred ± offset.
        extent = max(box[2] - box[0], box[3] - box[1])
        scale = 2.0 * p["fill"] / extent
        centre = np.array([box[0] + box[2], box[1] + box[3]]) / 2.0
        camera = np.array([scale, *(p["offset"] - scale * centre)], np.float32)
        # The float32 camera is the label; the image and the keypoints both use exactly it.
        cam = render.Camera.weak_perspective(*(float(c) for c in camera))
        points = verts.astype(np.float64)
        # `render.project(points, cam, (s, s))` written out: its identity rotation is an
        # exact no-op, so this is the same arithmetic (a test checks) without a [V, 3] GEMM.
        xy = (cam.scale * points[:, :2] + cam.translation[:2]) * (s / 2) + s / 2
        # Culling back faces halves the work and, on a closed outward-facing mesh such as
        # SMPL's, leaves the image unchanged.
        frags = render.rasterize(xy, points[:, 2], self.faces, (s, s), cull_backfaces=True)

        image = self._background(p["background"])
        covered = frags.face_id >= 0
        fid = frags.face_id[covered]
        image[covered] = p["colours"][self.face_part[fid]] * self._shade(verts, fid, p)[:, None]
        amplitude, (u, v) = p["noise"]
        r, c = int(u * s), int(v * s)
        image *= 255.0
        image += (255.0 * amplitude) * self._grain[r : r + s, c : c + s] + 0.5
        image = np.clip(image, 0, 255, out=image).astype(np.uint8)

        joints64 = joints.astype(np.float64)
        keypoints_xy = geometry.weak_perspective(joints64, camera.astype(np.float64))
        visible = render.keypoint_visibility(joints64, cam, frags.depth)
        keypoints = np.concatenate([keypoints_xy, (J24_MASK * visible)[:, None]], axis=1)
        keypoints[J24_MASK == 0] = 0.0
        joints_3d = np.concatenate([geometry.root_centred(joints64), J24_MASK[:, None]], 1)
        joints_3d[J24_MASK == 0] = 0.0
        example = {
            "image": image,
            "keypoints": keypoints.astype(np.float32),
            "joints_3d": joints_3d.astype(np.float32),
            "pose": p["pose"],
            "betas": p["betas"],
            "has_smpl": np.asarray(1.0, np.float32),
            "has_3d": np.asarray(1.0, np.float32),
            "dataset_id": np.asarray(self.dataset_id, np.int32),
            "example_id": np.asarray(index, np.int64),
            "camera": camera,
        }
        if self.segmentation:
            # The lsp_seg evaluator's truth: the prediction's renderer (SPIN's perspective
            # camera, f = 5000) with the true mesh and camera, at the crop's size.
            mask, parts = segmentation.render_parts(verts, self.faces, camera, self._seg_parts, s)
            example.update(seg_mask=mask.astype(np.uint8), seg_parts=parts)
        if debug:
            example.update(mask=covered, joints_cam=joints, vertices=verts)
        return example

    def _shade(self, verts, fid, p) -> np.ndarray:
        """[P] Lambert + ambient intensity of faces `fid` [P] (flat: a normal per face).

        Only the faces that won a pixel are shaded; at crop resolution a face covers about
        a pixel, so flat shading looks smooth and costs a fraction of vertex normals.
        """
        tri = verts[self.faces[fid]]  # [P, 3, 3]
        a, b = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        n = np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
                      a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                      a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)  # fmt: skip
        cos = (n @ p["light"]) / np.maximum(np.linalg.norm(n, axis=1), 1e-12)
        return p["ambient"] + p["diffuse"] * np.maximum(cos, 0.0)

    def _background(self, b) -> np.ndarray:
        """[S, S, 3] float32 RGB in [0, 1]: the sampled background `b`."""
        return appearance.background(b, self._grid_x, self._upsample)

"""LSP segmentation (paper Table 5, SPIN's protocol): parts, camera, uncrop, scores, the
`lsp_seg` evaluator on the synthetic set, all against independent NumPy references."""

from __future__ import annotations

import hashlib

import jax.numpy as jnp
import numpy as np
import pytest

from hkmr_jax import eval_lib, render, segmentation
from hkmr_jax.data import synthetic as synthetic_data
from hkmr_jax.models.params import RegressorOutput
from smpl_jax import rotation, skeleton, synthetic

PART = {name: i for i, name in enumerate(segmentation.PART_NAMES)}


@pytest.fixture(scope="module")
def body():
    return synthetic.load_builtin()


def _square(z=0.0):
    """Two triangles covering [-0.5, 0.5]² at depth z, wound to face a y-down camera."""
    v = np.array([[-0.5, -0.5, z], [0.5, -0.5, z], [0.5, 0.5, z], [-0.5, 0.5, z]])
    return v, np.array([[0, 2, 1], [0, 3, 2]])


# ------------------------------------------------------------------------------- parts


def test_skinning_parts_follow_the_written_joint_table():
    # One vertex per joint, fully weighted to it: its label is that joint's part.
    labels = segmentation.skinning_parts(np.eye(24))
    expected = {
        "left_arm": ["left_shoulder", "left_elbow", "left_wrist", "left_hand"],
        "right_arm": ["right_shoulder", "right_elbow", "right_wrist", "right_hand"],
        "head": ["neck", "head"],
        "left_leg": ["left_hip", "left_knee", "left_ankle", "left_foot"],
        "right_leg": ["right_hip", "right_knee", "right_ankle", "right_foot"],
        "torso": ["pelvis", "spine1", "spine2", "spine3", "left_collar", "right_collar"],
    }
    for part, joints in expected.items():
        for joint in joints:
            assert labels[skeleton.JOINT_NAMES.index(joint)] == PART[part], joint
    assert segmentation.PART_NAMES == ("background", "left_arm", "right_arm", "head",
                                       "left_leg", "right_leg", "torso")  # fmt: skip
    with pytest.raises(ValueError, match=r"\[V, 24\]"):
        segmentation.skinning_parts(np.eye(23))


def test_builtin_body_parts_sit_where_their_names_say(body):
    labels = segmentation.PartLabels.from_body(body).vertex
    v = np.asarray(body.v_template)  # rest pose, SMPL axes: x the body's left, y up
    assert set(np.unique(labels)) == set(range(1, 7))
    for side, sign in (("left", 1), ("right", -1)):
        assert np.all(sign * v[labels == PART[f"{side}_arm"], 0] > 0.1)  # T-pose arms
        assert np.all(sign * v[labels == PART[f"{side}_leg"], 0] > 0.0)
    assert v[labels == PART["head"], 1].min() > v[labels == PART["torso"], 1].mean()
    assert v[labels == PART["left_leg"], 1].max() < v[labels == PART["torso"], 1].max()


def test_rendered_parts_upright_and_left_arm_on_the_image_right(body):
    # SPIN's convention: a global orientation of (pi, 0, 0) turns the body upright,
    # facing the camera, so the person's left arm is on the image's right.
    pose = np.zeros((1, 72), np.float32)
    pose[0, 0] = np.pi
    verts = np.asarray(body(betas=jnp.zeros((1, 10)), body_pose=pose[:, 3:],
                            global_orient=pose[:, :3]).vertices)[0]  # fmt: skip
    parts = segmentation.PartLabels.from_body(body)
    mask, labels = segmentation.render_parts(verts, body.faces, [0.9, 0.0, 0.0], parts, 64)
    assert mask.dtype == bool and labels.dtype == np.uint8
    np.testing.assert_array_equal(mask, labels > 0)
    rows, cols = np.indices(labels.shape)
    assert cols[labels == PART["left_arm"]].min() > 32 > cols[labels == PART["right_arm"]].max()
    assert rows[labels == PART["head"]].mean() < rows[labels == PART["torso"]].mean()
    assert rows[labels == PART["torso"]].mean() < rows[labels == PART["left_leg"]].mean()


def test_spin_camera_projects_as_spin_writes_it():
    # SPIN: pixel = f·(X + (tx, ty, 2f/(res·s)))_xy / z + res/2 with (tx, ty) = ρ / s.
    s, rx, ry, res, f = 0.8, 0.1, -0.2, 224, 5000.0
    cam = segmentation.spin_camera([s, rx, ry], res)
    points = np.array([[0.3, -0.4, 0.05], [-0.2, 0.1, -0.1], [0.0, 0.0, 0.0]])
    t = np.array([rx / s, ry / s, 2 * f / (res * s)])
    p = points + t
    expected = f * p[:, :2] / p[:, 2:] + res / 2
    px, depth = render.project(points, cam, (res, res))
    np.testing.assert_allclose(px, expected, rtol=1e-12)
    np.testing.assert_allclose(depth, p[:, 2])
    # Near z = 0 it agrees with the weak-perspective camera x = s·X + ρ.
    weak = (s * points[2, :2] + [rx, ry]) * res / 2 + res / 2
    np.testing.assert_allclose(px[2], weak, atol=1e-9)
    with pytest.raises(ValueError, match="non-zero scale"):
        segmentation.spin_camera([0.0, 0.0, 0.0])


def test_culling_back_faces_leaves_the_parts_unchanged(body):
    rng = np.random.default_rng(3)
    pose = np.zeros((3, 72), np.float32)
    pose[:, 0] = np.pi
    pose[:, 3:] = rng.normal(0, 0.25, (3, 69))
    pose[1, 1] = 1.2  # turned sideways
    verts = np.asarray(body(betas=jnp.zeros((3, 10)), body_pose=pose[:, 3:],
                            global_orient=pose[:, :3]).vertices)  # fmt: skip
    parts = segmentation.PartLabels.from_body(body)
    for v in verts:
        a = segmentation.render_parts(v, body.faces, [0.9, 0.0, 0.1], parts, 96)
        b = segmentation.render_parts(v, body.faces, [0.9, 0.0, 0.1], parts, 96,
                                      cull_backfaces=False)  # fmt: skip
        np.testing.assert_array_equal(a[0], b[0])
        assert (a[1] != b[1]).sum() <= 2  # ties on edges at most


def test_spin_texture_is_sampled_trilinearly_and_looked_up_in_the_cube(tmp_path):
    # A texture linear in the cube index, c = 0.05 + 0.1·i + 0.2·j + 0.3·k per channel
    # offset: trilinear interpolation at w·(T-1) is exact, so each pixel's colour is
    # known from its barycentrics. The cube maps ⌊100 r⌋ to a label (r only).
    verts, faces = _square(z=0.0)
    t = 3
    i, j, k = np.meshgrid(np.arange(t), np.arange(t), np.arange(t), indexing="ij")
    base = 0.05 + 0.1 * i + 0.1 * j + 0.05 * k  # ≤ 0.55
    tex = np.stack([base, base * 0.5, base * 0.25], -1)[None].repeat(2, 0)  # [F, T, T, T, 3]
    tex[1] = 0.9  # the second face is flat
    cube = np.zeros((100, 100, 100), np.uint8)
    r = np.arange(100)
    cube[:] = (1 + (r // 10) % 6)[:, None, None]
    np.save(tmp_path / "tex.npy", tex[None].astype(np.float32))
    np.save(tmp_path / "cube.npy", cube)
    parts = segmentation.PartLabels.from_spin_texture(tmp_path / "tex.npy", tmp_path / "cube.npy")
    cam = [1.0, 0.0, 0.0]
    mask, labels = segmentation.render_parts(verts, faces, cam, parts, 32, cull_backfaces=False)
    # Independent reference: barycentrics of each pixel centre in face 0, from the SPIN
    # camera's projection (perspective-correct = screen weights on a fronto-parallel face).
    px, _ = render.project(verts, segmentation.spin_camera(cam, 32), (32, 32))
    yy, xx = np.mgrid[0:32, 0:32] + 0.5
    a, b, c = px[faces[0]]
    det = (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])
    w1 = ((xx - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (yy - a[1])) / det
    w2 = ((b[0] - a[0]) * (yy - a[1]) - (xx - a[0]) * (b[1] - a[1])) / det
    w0 = 1 - w1 - w2
    inside = (w0 > 1e-3) & (w1 > 1e-3) & (w2 > 1e-3)
    red = 0.05 + (0.1 * w0 + 0.1 * w1 + 0.05 * w2) * (t - 1)
    expected = 1 + (np.floor(100 * red).astype(int) // 10) % 6
    near_step = np.abs(100 * red - np.round(100 * red)) < 1e-3  # float ties at integers
    check = inside & ~near_step
    assert check.sum() > 50
    np.testing.assert_array_equal(labels[check], expected[check])
    assert mask.sum() > 0 and np.all(labels[mask & ~inside & (w0 < -1e-3)] == 1 + 9 % 6)


def test_part_files_are_checked(tmp_path, body):
    np.save(tmp_path / "labels.npy", np.full(5, 7, np.int64))
    with pytest.raises(ValueError, match=r"labels\.npy has labels 7\.\.7"):
        segmentation.PartLabels.from_file(tmp_path / "labels.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"cannot read part label file .*obj\.npy"):
        segmentation.PartLabels.from_file(tmp_path / "obj.npy")
    with pytest.raises(FileNotFoundError, match=r"missing\.npy does not exist"):
        segmentation.PartLabels.from_file(tmp_path / "missing.npy")
    np.save(tmp_path / "tex.npy", np.zeros((1, 4, 2, 2, 3, 3), np.float32))
    np.save(tmp_path / "cube.npy", np.zeros((10, 10, 10)))
    with pytest.raises(ValueError, match=r"tex\.npy must be NMR's \[1, F, T, T, T, 3\]"):
        segmentation.PartLabels.from_spin_texture(tmp_path / "tex.npy", tmp_path / "cube.npy")
    np.save(tmp_path / "tex.npy", np.full((1, 4, 2, 2, 2, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"outside part cube .*cube\.npy of shape \[10, 10, 10\]"):
        segmentation.PartLabels.from_spin_texture(tmp_path / "tex.npy", tmp_path / "cube.npy")
    good = segmentation.PartLabels.from_file(_labels(tmp_path, 4))
    with pytest.raises(ValueError, match="have 4 vertices, the mesh"):
        good.check(body.num_vertices, 10)


def _labels(tmp_path, n):
    np.save(tmp_path / "ok.npy", np.arange(n) % 7)
    return tmp_path / "ok.npy"


# ------------------------------------------------------------------------------ uncrop


def _uncrop_reference(crop, center, scale, shape):
    """Independent re-derivation of SPIN's uncrop (rot = 0): the box corners are
    trunc(c ∓ h/2) (SPIN's transform truncates towards zero), the crop is resized by
    nearest neighbour (source index ⌊(j + ½)·res / box⌋) and pasted, zero outside."""
    res = crop.shape[0]
    h = 200.0 * scale
    ul = np.trunc(np.asarray(center) - h / 2).astype(int)
    br = np.trunc(np.asarray(center) + h / 2).astype(int)
    box_w, box_h = br - ul
    out = np.zeros(shape, np.uint8)
    yy, xx = np.indices(shape)
    jx, jy = xx - ul[0], yy - ul[1]
    inside = (jx >= 0) & (jx < box_w) & (jy >= 0) & (jy < box_h)
    sx = np.floor((res / box_w) * (jx + 0.5)).astype(int)
    sy = np.floor((res / box_h) * (jy + 0.5)).astype(int)
    out[inside] = crop[sy[inside], sx[inside]]
    # Where (j + ½)·res / box is a whole number, PIL's NEAREST resize (fixed-point, as
    # scipy.misc.imresize used) may pick the source pixel below: either is right.
    fx, fy = (res / box_w) * (jx + 0.5), (res / box_h) * (jy + 0.5)
    tie = (np.abs(fx - np.round(fx)) < 1e-6) | (np.abs(fy - np.round(fy)) < 1e-6)
    return out, tie & inside


@pytest.mark.parametrize(
    "center, scale",
    [
        # (Corners off whole pixels: at a whole-pixel corner SPIN's float matrix inverse
        # may land just below it and truncate one pixel lower, which `uncrop` repeats.)
        ((80.3, 60.2), 0.5),  # inside the image, enlarged
        ((80.3, 61.7), 0.37),
        ((150.2, 110.4), 0.5),  # past the bottom-right corner
        ((10.3, 5.6), 0.6),  # past the top-left corner: negative corners truncate up
        ((80.3, 60.3), 1.4),  # larger than the image on every side
        ((400.3, 60.3), 0.5),  # entirely outside
    ],
)
def test_uncrop_matches_a_numpy_rederivation(center, scale):
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 7, (224, 224), dtype=np.uint8)
    out = segmentation.uncrop(crop, center, scale, (120, 160))
    assert out.shape == (120, 160) and out.dtype == np.uint8
    expected, tie = _uncrop_reference(crop, center, scale, (120, 160))
    assert tie.mean() < 0.05
    np.testing.assert_array_equal(out[~tie], expected[~tie])
    assert np.any(expected > 0) == ((out > 0).sum() > 0)


def test_uncrop_of_the_whole_image_box_is_the_identity():
    crop = np.random.default_rng(1).integers(0, 7, (224, 224), dtype=np.uint8)
    np.testing.assert_array_equal(segmentation.uncrop(crop, (112, 112), 224 / 200, (224, 224)),
                                  crop)  # fmt: skip


# ------------------------------------------------------------------------------ scores


def spin_scores(examples):
    """SPIN's eval.py loop, transcribed: examples are (pred_parts, gt_parts, pred_mask,
    gt_mask) maps of one size each."""
    accuracy = pixel_count = parts_accuracy = parts_pixel_count = 0
    tp, fp, fn = np.zeros(2), np.zeros(2), np.zeros(2)
    ptp, pfp, pfn = np.zeros(7), np.zeros(7), np.zeros(7)
    for pred_parts, gt_parts, pred_mask, gt_mask in examples:
        pred_mask, gt_mask = pred_mask > 0, gt_mask > 0
        accuracy += (gt_mask == pred_mask).sum()
        pixel_count += gt_mask.size
        for c in range(2):
            cgt, cpred = gt_mask == c, pred_mask == c
            tp[c] += (cgt & cpred).sum()
            fp[c] += (~cgt & cpred).sum()
            fn[c] += (cgt & ~cpred).sum()
        gt_parts, pred_parts = gt_parts.copy(), pred_parts.copy()
        for c in range(7):
            cgt, cpred = gt_parts == c, pred_parts == c
            cpred[gt_parts == 255] = 0
            ptp[c] += (cgt & cpred).sum()
            pfp[c] += (~cgt & cpred).sum()
            pfn[c] += (cgt & ~cpred).sum()
        gt_parts[gt_parts == 255] = 0
        pred_parts[pred_parts == 255] = 0
        parts_accuracy += (gt_parts == pred_parts).sum()
        parts_pixel_count += gt_parts.size
    return {
        "fb_accuracy": 100 * accuracy / pixel_count,
        "fb_f1": np.mean(2 * tp / (2 * tp + fp + fn)),
        "parts_accuracy": 100 * parts_accuracy / parts_pixel_count,
        "parts_f1": np.mean(2 * ptp / (2 * ptp + pfp + pfn)),
    }


def test_scores_equal_spins_loop_with_ignored_pixels():
    rng = np.random.default_rng(5)
    examples, scores = [], segmentation.SegmentationScores()
    for shape in ((40, 50), (33, 21), (60, 60)):
        gt = rng.integers(0, 7, shape).astype(np.uint8)
        gt[rng.random(shape) < 0.1] = 255
        noise = rng.integers(0, 7, shape)
        pred = np.where(rng.random(shape) < 0.7, np.where(gt == 255, 3, gt), noise).astype(np.uint8)
        pred_mask = (pred > 0) ^ (rng.random(shape) < 0.05)
        gt_mask = np.where(gt == 255, 1, gt > 0)
        examples.append((pred, gt, pred_mask, gt_mask))
        scores.add(pred, gt, pred_mask, gt_mask)
    got, want = scores.summary(), spin_scores(examples)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, err_msg=key)
    assert got["num_examples"] == 3 and got["num_pixels"] == 40 * 50 + 33 * 21 + 60 * 60
    perfect = segmentation.SegmentationScores()
    perfect.add(examples[0][1] % 255, examples[0][1], examples[0][3], examples[0][3])
    summary = perfect.summary()
    assert summary["fb_accuracy"] == 100.0 and summary["fb_f1"] == 1.0
    assert summary["parts_accuracy"] == 100.0 and summary["parts_f1"] == 1.0
    with pytest.raises(ValueError, match="differ in size"):
        scores.add(pred, gt[:2], pred_mask, gt_mask)


# --------------------------------------------------------------- the evaluator, synthetic


def _oracle(dataset, betas_shift=0.0, camera_shift=(0.0, 0.0, 0.0)):
    """A predictor that returns each image's true parameters (looked up by its bytes),
    optionally perturbed."""
    table = {}
    for i in range(len(dataset)):
        ex = dataset[i]
        table[hashlib.sha1(ex["image"].tobytes()).hexdigest()] = ex

    def predict(images):
        rows = [table[hashlib.sha1(np.asarray(im).tobytes()).hexdigest()] for im in images]
        pose = jnp.asarray(np.stack([r["pose"] for r in rows]).reshape(-1, 24, 3))
        betas = jnp.asarray(np.stack([r["betas"] for r in rows]) + betas_shift)
        camera = jnp.asarray(np.stack([r["camera"] for r in rows]) + np.float32(camera_shift))
        rotmat = rotation.axis_angle_to_matrix(pose)
        return RegressorOutput(pose[None], rotmat[None], betas[None], camera[None])

    return predict


@pytest.fixture(scope="module")
def synthetic_set():
    return synthetic_data.SyntheticDataset("test", size=48, length=5)


def test_lsp_seg_scores_the_truth_perfectly_on_synthetic(body, synthetic_set):
    ctx = eval_lib.EvalContext(_oracle(synthetic_set), body, synthetic.h36m_regressor(), 2)
    result = eval_lib.run_evaluator("lsp_seg", ctx, synthetic_set)
    assert result["fb_accuracy"] == 100.0 and result["fb_f1"] == 1.0
    assert result["parts_accuracy"] == 100.0 and result["parts_f1"] == 1.0
    assert result["num_examples"] == 5 and result["num_pixels"] == 5 * 48 * 48
    assert 0 < result["seconds_per_image"] < 10
    assert result["part_source"] == "skinning weights"


def test_lsp_seg_equals_a_numpy_recomputation_on_synthetic(body, synthetic_set):
    shift = (0.05, 0.03, -0.02)
    ctx = eval_lib.EvalContext(_oracle(synthetic_set, 0.8, shift), body,
                               synthetic.h36m_regressor(), 2)  # fmt: skip
    result = eval_lib.run_evaluator("lsp_seg", ctx, synthetic_set, limit=3)
    # Reference: the perturbed mesh through the renderer, scored by SPIN's loop against
    # truth maps rendered here from the examples' own labels.
    parts = segmentation.PartLabels.from_body(body)
    examples = []
    for i in range(3):
        ex = synthetic_set[i]
        pose = ex["pose"][None]
        truth = np.asarray(body(betas=ex["betas"][None], body_pose=pose[:, 3:],
                                global_orient=pose[:, :3]).vertices)[0]  # fmt: skip
        gt_mask, gt_parts = segmentation.render_parts(truth, body.faces, ex["camera"], parts, 48)
        pred = np.asarray(body(betas=ex["betas"][None] + 0.8, body_pose=pose[:, 3:],
                               global_orient=pose[:, :3]).vertices)[0]  # fmt: skip
        mask, labels = segmentation.render_parts(pred, body.faces, ex["camera"] + shift, parts, 48)
        examples.append((labels, gt_parts, mask, gt_mask))
    want = spin_scores(examples)
    assert result["fb_accuracy"] < 99.0  # the perturbation is visible
    for key, value in want.items():
        np.testing.assert_allclose(result[key], value, rtol=1e-6, err_msg=key)


def test_synthetic_truth_maps_are_the_image_silhouette_up_to_perspective(synthetic_set):
    ds = synthetic_set.with_segmentation()
    assert "seg_mask" not in synthetic_set[0]
    for ex in ds.render_batch(range(3), debug=True):
        assert ex["seg_mask"].dtype == np.uint8 and ex["seg_parts"].shape == (48, 48)
        np.testing.assert_array_equal(ex["seg_mask"] > 0, ex["seg_parts"] > 0)
        # The image is drawn with weak perspective, the truth with SPIN's f = 5000.
        assert (ex["mask"] != (ex["seg_mask"] > 0)).sum() <= 0.03 * ex["mask"].sum() + 2


def test_far_plane_hides_tiny_people_as_spins_renderer_does():
    verts, faces = _square()
    parts = segmentation.PartLabels(vertex=np.full(4, 6, np.uint8), source="test")
    # SPIN renders at 224 px: t_z = 2·5000 / (224·s) > 100 m exactly when s < 0.446; at
    # other sizes the plane moves with t_z, so the same people vanish.
    for size in (224, 48):
        for s, drawn in ((0.5, True), (0.44, False)):
            mask, labels = segmentation.render_parts(verts, faces, [s, 0, 0], parts, size,
                                                     cull_backfaces=False)  # fmt: skip
            assert mask.any() == drawn and (labels == 6).any() == drawn
    mask, _ = segmentation.render_parts(verts, faces, [0.44, 0, 0], parts, 224, far=None,
                                        cull_backfaces=False)  # fmt: skip
    assert mask.any()

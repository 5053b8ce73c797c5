"""Tests of hkmr_jax.render (rasteriser, cameras, shading, visibility, drawing), body figure."""

from __future__ import annotations

import numpy as np
import pytest

from hkmr_jax import render
from hkmr_jax.render import Camera
from hkmr_jax.tools import body_figure
from smpl_jax.skeleton import JOINT_NAMES


def icosphere(subdivisions: int = 3, radius: float = 1.0):
    """A closed unit icosphere ([V, 3], [F, 3]), faces wound counter-clockwise seen from outside."""
    t = (1 + 5**0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
             (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]  # fmt: skip
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    verts = [np.array(v, float) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        cache, new = {}, []

        def mid(a, b, cache=cache):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts) * radius, np.array(faces)


SQUARE_PX = np.array([[10.0, 20.0], [50.0, 20.0], [50.0, 60.0], [10.0, 60.0]])
SQUARE_FACES = np.array([[0, 1, 2], [0, 2, 3]])


# --- rasterize --------------------------------------------------------------------------


def test_square_covers_exactly_its_pixels():
    # Edges on integer coordinates: pixel centres 10.5 … 49.5 × 20.5 … 59.5 are inside.
    frags = render.rasterize(SQUARE_PX, np.ones(4), SQUARE_FACES, (80, 64))
    covered = frags.face_id >= 0
    assert covered.sum() == 40 * 40
    assert covered[20:60, 10:50].all()
    assert set(np.unique(frags.face_id[covered])) == {0, 1}  # the diagonal leaves no gap
    assert np.all(frags.depth[covered] == 1.0) and np.all(np.isinf(frags.depth[~covered]))
    assert np.all(frags.barycentrics[~covered] == 0)


def test_triangle_area_within_edge_error():
    # Right triangle with legs of 60 px: area 1800, boundary ~ 205 px long.
    xy = np.array([[2.3, 3.1], [62.3, 3.1], [2.3, 63.1]])
    frags = render.rasterize(xy, np.zeros(3), np.array([[0, 1, 2]]), (70, 70))
    count = int((frags.face_id == 0).sum())
    assert abs(count - 1800) <= 0.5 * 205, count


def test_z_buffer_picks_the_nearer_triangle_in_either_order():
    xy = np.array([[0, 0], [40, 0], [0, 40], [10, 10], [50, 10], [10, 50]], float)
    depth = np.array([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])  # the second triangle is nearer
    for faces, near_id in (([[0, 1, 2], [3, 4, 5]], 1), ([[3, 4, 5], [0, 1, 2]], 0)):
        frags = render.rasterize(xy, depth, np.array(faces), (60, 60))
        assert frags.face_id[15, 15] == near_id and frags.depth[15, 15] == 1.0
        assert frags.face_id[5, 5] == 1 - near_id and frags.depth[5, 5] == 2.0


def test_z_buffer_with_interpenetrating_triangles_follows_depth_per_pixel():
    # Two coplanar-on-screen triangles whose depths cross at x = 20.
    xy = np.array([[0, 0], [40, 0], [0, 40]], float)
    xy = np.concatenate([xy, xy])
    depth = np.array([0.0, 4.0, 0.0, 2.0, 2.0, 2.0])  # face 0: z = x / 10; face 1: z = 2
    frags = render.rasterize(xy, depth, np.array([[0, 1, 2], [3, 4, 5]]), (40, 40))
    assert frags.face_id[2, 10] == 0 and frags.face_id[2, 30] == 1


def test_barycentrics_sum_to_one_and_interpolate_position_and_depth():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 48, size=(3, 2))
    depth = np.array([1.0, 3.0, 7.0])
    frags = render.rasterize(xy, depth, np.array([[0, 1, 2]]), (48, 48))
    covered = frags.face_id == 0
    assert covered.sum() > 20
    lam = frags.barycentrics[covered].astype(np.float64)
    np.testing.assert_allclose(lam.sum(axis=1), 1.0, atol=1e-6)
    rows, cols = np.nonzero(covered)
    np.testing.assert_allclose(lam @ xy, np.stack([cols + 0.5, rows + 0.5], 1), atol=1e-4)
    np.testing.assert_allclose(frags.depth[covered], lam @ depth, rtol=1e-6)


def test_perspective_correct_depth_is_the_true_depth_of_the_plane():
    # A slanted 3-D triangle seen by a perspective camera: the rasterised depth at each
    # pixel must be where that pixel's ray meets the triangle's plane.
    tri = np.array([[-1.0, -1.0, 3.0], [1.5, -0.5, 6.0], [-0.5, 1.5, 4.0]])
    cam = Camera.perspective(focal=40.0)
    size = (64, 64)
    xy, z = render.project(tri, cam, size)
    frags = render.rasterize(xy, z, np.array([[0, 1, 2]]), size, perspective_correct=True)
    rows, cols = np.nonzero(frags.face_id == 0)
    assert len(rows) > 100
    rays = np.stack([(cols + 0.5 - 32) / 40, (rows + 0.5 - 32) / 40, np.ones(len(rows))], 1)
    normal = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    true_depth = (normal @ tri[0]) / (rays @ normal)
    np.testing.assert_allclose(frags.depth[rows, cols], true_depth, rtol=1e-5)
    lam = frags.barycentrics[rows, cols].astype(np.float64)
    np.testing.assert_allclose(lam @ tri, rays * true_depth[:, None], atol=1e-4)


def test_sphere_silhouette_area_is_pi_r_squared():
    verts, faces = icosphere(4)
    size = (160, 160)
    cam = Camera.weak_perspective(0.75)  # radius 1 m → 0.75 NDC → 60 px
    xy, z = render.project(verts, cam, size)
    frags = render.rasterize(xy, z, faces, size)
    area = (frags.face_id >= 0).sum()
    assert abs(area / (np.pi * 60**2) - 1) < 0.01, area
    # The nearest surface point (camera-frame z = -1) is at the centre.
    assert abs(frags.depth[80, 80] + 1.0) < 1e-3


def test_backfaces_and_degenerate_faces_do_not_crash():
    xy = np.array([[5, 5], [30, 5], [5, 30], [40, 40], [40, 40], [10, 20]], float)
    faces = np.array([[0, 1, 2], [0, 2, 1], [3, 4, 5], [3, 3, 3], [0, 1, 0]])
    frags = render.rasterize(xy, np.zeros(6), faces, (48, 48))
    assert set(np.unique(frags.face_id)) <= {-1, 0, 1}
    assert (frags.face_id >= 0).sum() > 200
    # With culling, only the face wound clockwise on screen (facing the viewer) stays.
    culled = render.rasterize(xy, np.zeros(6), faces, (48, 48), cull_backfaces=True)
    assert set(np.unique(culled.face_id)) == {-1, 1}
    assert np.array_equal(culled.face_id >= 0, frags.face_id >= 0)
    empty = render.rasterize(xy, np.zeros(6), np.zeros((0, 3), int), (8, 8))
    assert (empty.face_id == -1).all()


def test_faces_outside_the_image_are_clipped():
    xy = np.array([[-100.0, -50.0], [200.0, -50.0], [-100.0, 300.0]])
    frags = render.rasterize(xy, np.zeros(3), np.array([[0, 1, 2]]), (32, 16))
    assert (frags.face_id == 0).all()


# --- cameras ----------------------------------------------------------------------------


def test_weak_perspective_projection_of_a_known_point():
    cam = Camera.weak_perspective(0.5, 0.1, -0.2)
    xy, z = render.project(np.array([[0.4, 0.6, 2.0]]), cam, (200, 100))
    # ndc = (0.5·0.4 + 0.1, 0.5·0.6 − 0.2) = (0.3, 0.1); NDC unit = min(200, 100)/2 = 50 px.
    np.testing.assert_allclose(xy, [[50 + 0.3 * 50, 100 + 0.1 * 50]])
    np.testing.assert_allclose(z, [2.0])


def test_perspective_projection_of_a_known_point():
    cam = Camera.perspective(5000.0, translation=(0.1, 0.2, 50.0))
    xy, z = render.project(np.array([[0.4, 0.6, 2.0]]), cam, (224, 224))
    # camera frame (0.5, 0.8, 52): pixel = 5000·(0.5, 0.8)/52 + 112
    np.testing.assert_allclose(xy, [[5000 * 0.5 / 52 + 112, 5000 * 0.8 / 52 + 112]])
    np.testing.assert_allclose(z, [52.0])
    cam = Camera.perspective((100.0, 200.0), (0, 0, 1), center=(10, 20))
    xy, _ = render.project(np.array([[1.0, 1.0, 1.0]]), cam, (64, 64))
    np.testing.assert_allclose(xy, [[60.0, 120.0]])


def test_smpl_to_camera_turns_y_up_into_image_up():
    cam = Camera.weak_perspective(1.0, rotation=render.SMPL_TO_CAMERA)
    xy, z = render.project(np.array([[0.5, 0.5, 0.2]]), cam, (100, 100))
    # SMPL's (+x left of the body, +y up, +z front) → image right, image up, nearer.
    np.testing.assert_allclose(xy, [[75.0, 25.0]])
    np.testing.assert_allclose(z, [-0.2])


def test_as_perspective_matches_weak_perspective_near_the_body():
    weak = Camera.weak_perspective(0.9, 0.05, -0.1)
    persp = weak.as_perspective((224, 224), focal=5000.0)
    pts = np.random.default_rng(1).uniform(-0.8, 0.8, (20, 3)) * [1, 1, 0.01]
    xy_w, _ = render.project(pts, weak, (224, 224))
    xy_p, z_p = render.project(pts, persp, (224, 224))
    np.testing.assert_allclose(xy_p, xy_w, atol=0.05)
    np.testing.assert_allclose(persp.translation[2], 2 * 5000 / (0.9 * 224))
    assert (z_p > 0).all()


# --- visibility, shading, drawing ---------------------------------------------------------


@pytest.mark.parametrize("perspective", [False, True])
def test_keypoint_visibility_by_depth(perspective):
    verts, faces = icosphere(3)
    size = (96, 96)
    cam = Camera.weak_perspective(0.6)
    if perspective:
        cam = cam.as_perspective(size, focal=500.0)
    xy, z = render.project(verts, cam, size)
    frags = render.rasterize(xy, z, faces, size, perspective_correct=perspective)
    points = np.array(
        [
            [0.0, 0.0, -1.3],  # in front of the sphere
            [0.0, 0.0, 1.3],  # behind it
            [0.3, 0.2, 0.0],  # inside it, 0.9 m behind the front surface
            [1.4, 0.0, 1.3],  # beside it: nothing in front
            [9.0, 0.0, 0.0],  # outside the image
        ]
    )
    vis = render.keypoint_visibility(points, cam, frags.depth, tol=0.05)
    assert vis.tolist() == [True, False, False, True, False]
    # A tolerance larger than the depth behind the surface makes the inner point visible.
    assert render.keypoint_visibility(points[2:3], cam, frags.depth, tol=1.0)[0]


def _plane(depth=0.0):
    """Two triangles forming the square [-1, 1]² at z = depth, facing the camera (-z)."""
    verts = np.array([[-1, -1, depth], [1, -1, depth], [1, 1, depth], [-1, 1, depth]], float)
    return verts, np.array([[0, 1, 2], [0, 2, 3]])


def test_render_mesh_shape_dtype_and_untouched_background():
    verts, faces = icosphere(2)
    background = np.random.default_rng(0).integers(0, 256, (48, 64, 3)).astype(np.uint8)
    cam = Camera.weak_perspective(0.5)
    for k in (1, 2):
        image = render.render_mesh(
            verts, faces, cam, (48, 64), background=background, supersample=k
        )
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        xy, z = render.project(verts, cam, (48, 64))
        covered = render.rasterize(xy, z, faces, (48, 64)).face_id >= 0
        # A margin of one pixel around the silhouette for the anti-aliased edge.
        grown = covered.copy()
        grown[1:] |= covered[:-1]
        grown[:-1] |= covered[1:]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        assert np.array_equal(image[~grown], background[~grown])
        assert not np.array_equal(image[covered], background[covered])
    # Default background is white; a float RGB background is accepted.
    image = render.render_mesh(verts, faces, cam, (16, 16))
    assert (image[0, 0] == 255).all()
    image = render.render_mesh(verts, faces, cam, (16, 16), background=(0.0, 0.5, 1.0))
    assert image[0, 0].tolist() == [0, 128, 255]


def test_shading_follows_the_light_and_colors():
    verts, faces = _plane()
    cam = Camera.weak_perspective(0.5)
    style = dict(ambient=0.2, diffuse=0.8, smooth=False)
    lit = render.render_mesh(verts, faces, cam, (16, 16), light_dir=(0, 0, -1), **style)
    grazing = render.render_mesh(verts, faces, cam, (16, 16), light_dir=(1, 0, 0), **style)
    # Facing the light: ambient + diffuse = 1 → the colour itself; grazing: ambient only.
    np.testing.assert_allclose(lit[8, 8], np.round(np.array(render.BODY_COLOR) * 255), atol=1)
    np.testing.assert_allclose(grazing[8, 8], np.round(np.array(render.BODY_COLOR) * 51), atol=1)
    # Per-face and per-vertex colours (uint8); the back of the plane shades the same (two-sided).
    per_face = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    image = render.render_mesh(verts, faces, cam, (16, 16), per_face, light_dir=(0, 0, -1), **style)
    assert set(map(tuple, image[4:12, 4:12].reshape(-1, 3))) == {(255, 0, 0), (0, 0, 255)}
    # Per-vertex: black on the left edge (x = -1), white on the right, linear in between.
    per_vertex = np.array([[0, 0, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0]], float)
    image = render.render_mesh(
        verts, faces, cam, (16, 16), per_vertex, light_dir=(0, 0, -1), **style
    )
    row = image[8, 4:12, 0].astype(int)
    np.testing.assert_allclose(row, (np.arange(4, 12) + 0.5 - 4) / 8 * 255, atol=1)
    flipped = render.render_mesh(
        verts, faces[:, ::-1], cam, (16, 16), light_dir=(0, 0, -1), **style
    )
    assert np.array_equal(flipped, lit)


def test_part_image_labels_pixels_by_nearest_vertex():
    verts, faces = _plane()
    labels = np.array([0, 1, 2, 3])
    _, parts = render.render_mesh(
        verts, faces, Camera.weak_perspective(0.5), (32, 32), part_labels=labels
    )
    assert parts.shape == (32, 32) and parts.dtype == np.int32
    assert parts[0, 0] == -1
    # Vertex 0 is (-1, -1): image top-left quadrant of the square (camera y is down).
    assert parts[10, 10] == 0 and parts[10, 21] == 1 and parts[21, 21] == 2 and parts[21, 10] == 3


def test_render_mesh_behind_a_perspective_camera_is_skipped():
    verts, faces = _plane(depth=0.0)  # the square straddles nothing: all at z = 0 + t_z
    cam = Camera.perspective(50.0, translation=(0, 0, -1.0))  # everything behind the camera
    image = render.render_mesh(verts, faces, cam, (16, 16))
    assert (image == 255).all()


def test_draw_keypoints_dots_bones_and_hidden_points():
    image = np.zeros((40, 40, 3), np.uint8)
    kp = np.array([[5.5, 5.5], [30.5, 5.5], [30.5, 30.5], [np.nan, np.nan]])
    out = render.draw_keypoints(
        image, kp, visible=[True, True, False, True], parents=[-1, 0, 1, 2], radius=2
    )
    assert (image == 0).all()  # input untouched
    assert out[5, 5].tolist() == [230, 40, 40]
    assert out[30, 30].tolist() == [150, 150, 150]  # hidden keypoint
    assert out[5, 18].tolist() == [40, 160, 230]  # bone between two visible points
    assert out[18, 30].tolist() == [150, 150, 150]  # bone to a hidden point
    assert out[20, 10].tolist() == [0, 0, 0]


# --- the built-in body and the picture -------------------------------------------------------


def test_rest_pose_body_is_upright_and_faces_the_viewer():
    synthetic = pytest.importorskip("smpl_jax.synthetic")
    body = synthetic.load_builtin()
    verts = np.asarray(body.v_template, np.float64)
    joints = np.asarray(body.joint_template, np.float64)
    size = (128, 128)
    cam = Camera.weak_perspective(1.0, 0.0, 0.35, rotation=render.SMPL_TO_CAMERA)
    xy, z = render.project(verts, cam, size)
    frags = render.rasterize(xy, z, np.asarray(body.faces), size)
    jxy, _ = render.project(joints, cam, size)
    head, pelvis, ankle = (jxy[JOINT_NAMES.index(n)] for n in ("head", "pelvis", "left_ankle"))
    assert head[1] < pelvis[1] < ankle[1]  # head at the top of the image
    assert jxy[JOINT_NAMES.index("left_hand"), 0] > 64 > jxy[JOINT_NAMES.index("right_hand"), 0]
    # Facing the viewer: the visible surface at the chest is the front (SMPL z > 0), i.e.
    # camera-frame depth < 0, in front of the spine joint.
    col, row = np.floor(jxy[JOINT_NAMES.index("spine3")]).astype(int)
    assert frags.face_id[row, col] >= 0 and frags.depth[row, col] < -0.05


def test_main_writes_a_png(tmp_path, capsys):
    iio = pytest.importorskip("imageio.v3")
    pytest.importorskip("smpl_jax.synthetic")
    out = tmp_path / "sub" / "body.png"
    assert body_figure.main(["--out", str(out), "--cell", "48"]) == 0
    image = iio.imread(out)
    assert image.shape == (96, 192, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # not blank
    assert str(out) in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["body.png"]  # no temporary left behind


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(faces=np.array([[0, 1, 4]])), "only 4 vertices"),
        (dict(faces=np.array([[0, -1, 2]])), "only 4 vertices"),
        (dict(faces=np.array([[0, 1]])), r"faces must have shape \[F, 3\]"),
        (dict(faces=np.array([[0.0, 1.0, 2.0]])), "integer"),
        (dict(vertices_px=np.zeros((4, 3))), r"vertices_px must have shape \[N, 2\]"),
        (dict(depth=np.zeros(3)), "depth must have shape"),
        (dict(size=(0, 10)), "size must be positive"),
        (dict(size=10), "size must be"),
        (dict(vertices_px=np.array([[0, 0], [1, 0], [0, np.nan], [5, 5]])), "non-finite"),
    ],
)
def test_rasterize_rejects_bad_inputs(kwargs, message):
    args = dict(vertices_px=SQUARE_PX, depth=np.zeros(4), faces=SQUARE_FACES, size=(8, 8))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        render.rasterize(**args)


def test_non_finite_vertex_not_used_by_any_face_is_fine():
    xy = np.concatenate([SQUARE_PX, [[np.inf, 0.0]]])
    render.rasterize(xy, np.zeros(5), SQUARE_FACES, (8, 8))


def test_other_bad_inputs():
    verts, faces = _plane()
    cam = Camera.weak_perspective(0.5)
    with pytest.raises(ValueError, match=r"points must have shape \[N, 3\]"):
        render.project(np.zeros((3, 2)), cam, (8, 8))
    with pytest.raises(ValueError, match="scale"):
        Camera.weak_perspective(0.0)
    with pytest.raises(ValueError, match="focal"):
        Camera.perspective(-1.0)
    with pytest.raises(ValueError, match="rotation"):
        Camera.weak_perspective(1.0, rotation=np.ones((3, 3)))
    with pytest.raises(ValueError, match="colors"):
        render.render_mesh(verts, faces, cam, (8, 8), colors=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="background"):
        render.render_mesh(verts, faces, cam, (8, 8), background=np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="supersample"):
        render.render_mesh(verts, faces, cam, (8, 8), supersample=0)
    with pytest.raises(ValueError, match="part_labels"):
        render.render_mesh(verts, faces, cam, (8, 8), part_labels=np.zeros(4))
    with pytest.raises(ValueError, match="depth_image"):
        render.keypoint_visibility(verts, cam, np.zeros(8))
    with pytest.raises(ValueError, match="visible"):
        render.draw_keypoints(np.zeros((8, 8, 3)), np.zeros((2, 2)), visible=[True])
    with pytest.raises(ValueError, match="unknown joint"):
        body_figure._pose_vector({"left_elbw": (0, 0, 0)})

"""Tests of the built-in synthetic body (smpl_jax/synthetic/).

Every number asserted here is measured on the mesh itself (vertices, faces, regressed
joints), never read back from the generator's design tables.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from smpl_jax import skeleton, synthetic
from smpl_jax.synthetic import __main__ as synthetic_cli
from smpl_jax.synthetic import builtin

OFFICIAL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f", "J")  # fmt: skip
J = skeleton.JOINT_NAMES.index
H = skeleton.H36M_17_NAMES.index
MIRROR = np.array([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def body():
    return synthetic.generate(0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Point SMPL_JAX_CACHE at a fresh folder for the tests that need the cached file."""
    path = tmp_path_factory.mktemp("smpl_jax_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMPL_JAX_CACHE", str(path))
        yield path


# ----------------------------------------------------------------------- mesh helpers


def edges(faces):
    """Directed edges [3F, 2], in face order."""
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def signed_volume(verts, faces):
    p = verts[faces]
    return np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0


def face_normals(verts, faces):
    p = verts[faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def adjacent_faces(faces):
    """For each directed edge (face-major, as `edges`), the face on its other side."""
    d = edges(faces)
    n = faces.max() + 1
    key, twin = d[:, 0] * n + d[:, 1], d[:, 1] * n + d[:, 0]
    order = np.argsort(key)
    other = order[np.searchsorted(key[order], twin)]
    return np.tile(np.arange(len(faces)), 3), other % len(faces)


def winding_numbers(verts, faces, points):
    """Generalised winding number of each point (1 inside a closed outward mesh, 0 out).

    Van Oosterom & Strackee's solid angle of each triangle, summed over the mesh.
    """
    out = []
    for p in points:
        a, b, c = (verts[faces[:, i]] - p for i in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        det = np.einsum("ij,ij->i", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("ij,ij->i", a, b) * lc
               + np.einsum("ij,ij->i", b, c) * la + np.einsum("ij,ij->i", c, a) * lb)  # fmt: skip
        out.append(2.0 * np.arctan2(det, den).sum() / (4.0 * np.pi))
    return np.array(out)


def mirror_index(verts, chunk=2000):
    """Index of the vertex nearest to each vertex's mirror image (x → −x), and distance."""
    mirrored = verts * MIRROR
    sq = (verts**2).sum(1)
    idx = np.concatenate([
        (sq[None] - 2.0 * mirrored[i : i + chunk] @ verts.T).argmin(1)  # + |m|², constant
        for i in range(0, len(verts), chunk)
    ])  # fmt: skip
    return idx, np.linalg.norm(verts[idx] - mirrored, axis=1)


def shaped(body, **betas):
    """Vertices [V, 3] and regressed joints [24, 3] for betas given as b0=…, b9=…."""
    b = np.zeros(10)
    for name, value in betas.items():
        b[int(name[1:])] = value
    verts = body["v_template"] + body["shapedirs"] @ b
    return verts, body["J_regressor"] @ verts


# ----------------------------------------------------------------------- format


def test_generate_is_deterministic(body):
    again = synthetic.generate(0)
    assert again.keys() == body.keys()
    for key in body:
        assert again[key].dtype == body[key].dtype, key
        np.testing.assert_array_equal(again[key], body[key], err_msg=key)


def test_keys_shapes_and_dtypes(body):
    v, f = len(body["v_template"]), len(body["f"])
    assert set(body) == {*OFFICIAL_KEYS, "J_regressor_h36m"}
    assert 3000 <= v <= 7000
    expected = {
        "v_template": (v, 3), "shapedirs": (v, 3, 10), "posedirs": (v, 3, 207),
        "J_regressor": (24, v), "weights": (v, 24), "kintree_table": (2, 24),
        "f": (f, 3), "J": (24, 3), "J_regressor_h36m": (17, v),
    }  # fmt: skip
    for key, shape in expected.items():
        assert body[key].shape == shape, key
        want = np.uint32 if key in ("kintree_table", "f") else np.float64
        assert body[key].dtype == want, key
        if want == np.float64:
            assert np.all(np.isfinite(body[key])), key
    root = np.iinfo(np.uint32).max
    np.testing.assert_array_equal(body["kintree_table"][0], [root, *skeleton.PARENTS[1:]])
    np.testing.assert_array_equal(body["kintree_table"][1], np.arange(24))
    assert body["f"].max() == v - 1
    assert len(np.unique(body["f"])) == v  # no unused vertices


def test_other_seeds_give_other_people_with_the_same_rig(body):
    other = synthetic.generate(1)
    np.testing.assert_array_equal(other["f"], body["f"])
    assert np.abs(other["v_template"] - body["v_template"]).max() > 0.005
    assert 1.5 < np.ptp(other["v_template"][:, 1]) < 1.9
    assert 0.05 < signed_volume(other["v_template"], other["f"].astype(np.int64)) < 0.09
    np.testing.assert_allclose(other["J_regressor"] @ other["v_template"], other["J"], atol=1e-9)
    _, dist = mirror_index(other["v_template"])
    assert dist.max() < 1e-6


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed"):
        synthetic.generate(seed)


# ----------------------------------------------------------------------- the mesh


def test_mesh_is_closed_oriented_and_genus_zero(body):
    v, f = body["v_template"], body["f"].astype(np.int64)
    directed = edges(f)
    # Every directed edge once and its reverse once: closed, manifold, consistently oriented.
    assert len(np.unique(directed, axis=0)) == len(directed)
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    assert np.all(counts == 2)
    assert len(v) - len(undirected) + len(f) == 2  # Euler characteristic of a sphere
    assert 0.06 < signed_volume(v, f) < 0.08  # m³: positive means normals point outwards
    # No folds or creases: neighbouring faces never turn by more than 90°.
    n = face_normals(v, f)
    a, b = adjacent_faces(f)
    assert (n[a] * n[b]).sum(1).min() > 0.3
    areas = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert areas.min() > 1e-6  # m², no degenerate triangles


def test_framing_matches_smpl(body):
    v, joints = body["v_template"], body["J"]
    assert -1.25 < v[:, 1].min() < -1.15  # soles
    assert 0.45 < v[:, 1].max() < 0.55  # head top
    assert 1.65 < np.ptp(v[:, 1]) < 1.75
    pelvis = joints[J("pelvis")]
    assert -0.3 < pelvis[1] < -0.15 and abs(pelvis[0]) < 1e-9 and abs(pelvis[2]) < 0.05
    assert joints[J("left_hip"), 0] > 0.03 and joints[J("right_hip"), 0] < -0.03
    # Facing +z: toes in front of the ankles; the face in front of the back of the head.
    assert joints[J("left_foot"), 2] > joints[J("left_ankle"), 2] + 0.05
    # T-pose: arms straight out along ±x at shoulder height.
    for side, sign in (("left", 1), ("right", -1)):
        chain = joints[[J(f"{side}_{n}") for n in ("shoulder", "elbow", "wrist", "hand")]]
        assert np.all(np.diff(sign * chain[:, 0]) > 0.05)
        assert np.ptp(chain[:, 1]) < 0.02 and np.ptp(chain[:, 2]) < 0.02
    assert 1.6 < np.ptp(v[:, 0]) < 1.8  # arm span ≈ stature


def test_rest_mesh_and_rig_are_mirror_symmetric(body):
    v = body["v_template"]
    idx, dist = mirror_index(v)
    assert dist.max() < 1e-6
    assert len(np.unique(idx)) == len(v)  # a permutation
    flip = np.array(skeleton.FLIP_PERMUTATION)
    np.testing.assert_allclose(body["J"][flip] * MIRROR, body["J"], atol=1e-6)
    np.testing.assert_allclose(body["weights"][idx][:, flip], body["weights"], atol=1e-9)
    np.testing.assert_allclose(body["J_regressor"][flip][:, idx], body["J_regressor"], atol=1e-6)
    h36m_flip = np.array(skeleton.H36M_17_FLIP_PERMUTATION)
    np.testing.assert_allclose(
        body["J_regressor_h36m"][h36m_flip][:, idx], body["J_regressor_h36m"], atol=1e-6
    )
    # Every shape direction is symmetric.
    np.testing.assert_allclose(body["shapedirs"][idx] * MIRROR[:, None], body["shapedirs"],
                               atol=1e-9)  # fmt: skip
    # Pose correctives: mirroring conjugates R by diag(-1, 1, 1), which flips the sign of
    # feature (a, b) by m_a·m_b, and of the displacement's x by m_c.
    pd = body["posedirs"].reshape(-1, 3, 23, 3, 3)
    sign = np.einsum("c,a,b->cab", MIRROR, MIRROR, MIRROR)[:, None]
    mirrored = pd[idx][:, :, flip[1:] - 1] * sign
    np.testing.assert_allclose(mirrored, pd, atol=1e-12)


# ----------------------------------------------------------------------- rig


def test_skinning_weights_are_convex_and_smooth(body):
    w, f = body["weights"], body["f"].astype(np.int64)
    assert w.min() >= 0.0
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
    d = edges(f)
    assert np.abs(w[d[:, 0]] - w[d[:, 1]]).max() < 0.2  # no jumps across any edge
    # Every joint owns a region of skin around it.
    owner = w.argmax(1)
    for j, name in enumerate(skeleton.JOINT_NAMES):
        assert w[:, j].max() > 0.5, name
        centroid = body["v_template"][owner == j].mean(0)
        assert np.linalg.norm(centroid - body["J"][j]) < 0.3, name


@pytest.mark.parametrize("key", ["J_regressor", "J_regressor_h36m"])
def test_regressors_are_local_weighted_averages(body, key):
    reg, v = body[key], body["v_template"]
    assert reg.min() >= 0.0
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-12)
    joints = reg @ v
    for row, joint in zip(reg, joints, strict=True):
        support = np.flatnonzero(row)
        assert 20 <= len(support) <= len(v) // 4  # sparse-ish
        assert row @ np.linalg.norm(v - joint, axis=1) < 0.25  # from nearby vertices


def test_joint_template_is_regressed(body):
    np.testing.assert_allclose(body["J_regressor"] @ body["v_template"], body["J"], atol=1e-12)


def test_joints_lie_inside_the_body(body):
    v, f = body["v_template"], body["f"].astype(np.int64)
    inside = np.r_[body["J"], body["J_regressor_h36m"] @ v]
    np.testing.assert_allclose(winding_numbers(v, f, inside), 1.0, atol=1e-6)
    outside = np.array([[0.0, 0.0, 0.5], [0.0, -0.6, 0.0], [0.4, 0.0, 0.0]])
    np.testing.assert_allclose(winding_numbers(v, f, outside), 0.0, atol=1e-6)


def test_h36m_joints_coincide_with_smpl_where_they_should(body):
    h36m = body["J_regressor_h36m"] @ body["v_template"]
    smpl = body["J"]
    same = ["knee", "ankle", "shoulder", "elbow", "wrist"]
    for side in ("left", "right"):
        for n in same:
            d = np.linalg.norm(h36m[H(f"{side}_{n}")] - smpl[J(f"{side}_{n}")])
            assert d < 0.005, (side, n)
        assert np.linalg.norm(h36m[H(f"{side}_hip")] - smpl[J(f"{side}_hip")]) < 0.05
    assert np.linalg.norm(h36m[H("pelvis")] - smpl[J("pelvis")]) < 0.05
    # The rest of the H36M skeleton stacks up the spine in order.
    heights = h36m[[H(n) for n in ("pelvis", "spine", "thorax", "neck", "head_top")], 1]
    assert np.all(np.diff(heights) > 0.05)
    assert body["v_template"][:, 1].max() - h36m[H("head_top"), 1] < 0.03


def test_pose_correctives_are_local_modest_outward_bulges(body):
    pd, v = body["posedirs"], body["v_template"]
    assert 0.003 < np.abs(pd).max() <= 0.01  # m per unit feature
    knee = J("left_knee")
    # A 90° bend about x: R − I has diagonal (0, −1, −1) and off-diagonal (0, ∓1).
    r = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    feature = np.zeros((23, 3, 3))
    feature[knee - 1] = r - np.eye(3)
    delta = pd @ feature.ravel()
    size = np.linalg.norm(delta, axis=1)
    assert 0.005 < size.max() < 0.02
    moved = size > 0.001
    assert np.linalg.norm(v[moved] - body["J"][knee], axis=1).max() < 0.25
    outward = np.einsum("ij,ij->i", delta[moved], v[moved] - body["J"][knee])
    assert np.all(outward > 0)


# ----------------------------------------------------------------------- shape


def test_height_direction_and_the_range_of_statures(body):
    v0 = body["v_template"]
    tall, _ = shaped(body, b0=2.0)
    assert 0.10 < np.ptp(tall[:, 1]) - np.ptp(v0[:, 1]) < 0.16
    for k in range(10):
        for value in (-3.0, 3.0):
            stature = np.ptp(shaped(body, **{f"b{k}": value})[0][:, 1])
            assert (1.45 if k == 0 else 1.6) < stature < (1.95 if k == 0 else 1.8), (k, value)
    rng = np.random.default_rng(0)
    betas = np.r_[rng.uniform(-3, 3, (300, 10)), np.array([[3.0] * 10, [-3.0] * 10])]
    statures = np.ptp(v0[None, :, 1] + betas @ body["shapedirs"][:, 1].T, axis=1)
    assert statures.min() > 1.4 and statures.max() < 2.0


def _measure(body):
    """Named measurements of a (verts, joints) pair, over fixed sets of vertices."""
    v0, j0 = body["v_template"], body["J"]
    waist = np.flatnonzero((np.abs(v0[:, 1] - (j0[J("spine1"), 1] - 0.04)) < 0.02)
                           & (np.abs(v0[:, 0]) < 0.25))  # fmt: skip
    head = np.flatnonzero(v0[:, 1] > j0[J("neck"), 1] + 0.03)
    upper_arm = np.flatnonzero(np.abs(v0[:, 0] - 0.31) < 0.01)
    thigh = np.flatnonzero((np.abs(v0[:, 1] + 0.55) < 0.01) & (v0[:, 0] > 0))
    assert min(map(len, (waist, head, upper_arm, thigh))) >= 20

    def dist(joints, a, b):
        return np.linalg.norm(joints[J(a)] - joints[J(b)])

    def measure(v, joints):
        return {
            "stature": np.ptp(v[:, 1]),
            "top": v[:, 1].max(),
            "leg": dist(joints, "left_hip", "left_ankle"),
            "arm": dist(joints, "left_shoulder", "left_wrist"),
            "shoulders": dist(joints, "left_shoulder", "right_shoulder"),
            "hips": dist(joints, "left_hip", "right_hip"),
            "torso": joints[J("neck"), 1] - joints[J("pelvis"), 1],
            "head": np.ptp(v[head, 1]),
            "waist_width": np.ptp(v[waist, 0]),
            "belly": v[waist, 2].max(),
            "back": v[waist, 2].min(),
            "upper_arm": np.ptp(v[upper_arm, 1]),
            "thigh": np.ptp(v[thigh, 2]),
            "volume": signed_volume(v, body["f"].astype(np.int64)),
        }

    return measure


# For each direction at beta = +2: (measurement, lower, upper) bounds on its change, in
# metres (m³ for volume); `None` lists measurements that must stay put (within 2 mm).
SHAPE_EXPECTATIONS = {
    0: ([("stature", 0.10, 0.16), ("leg", 0.04, 0.08), ("arm", 0.02, 0.05),
         ("volume", 0.01, 0.02)], ()),
    1: ([("volume", 0.01, 0.02), ("waist_width", 0.02, 0.05), ("belly", 0.01, 0.03),
         ("thigh", 0.01, 0.02)], ("stature", "torso")),
    2: ([("leg", 0.015, 0.03), ("stature", 0.015, 0.03)], ("top", "torso", "arm", "hips")),
    3: ([("arm", 0.025, 0.05)], ("stature", "leg", "hips", "torso")),
    4: ([("shoulders", 0.03, 0.06)], ("stature", "hips", "leg", "torso")),
    5: ([("hips", 0.01, 0.03), ("waist_width", 0.01, 0.03)], ("stature", "shoulders", "arm")),
    6: ([("torso", 0.01, 0.03), ("stature", 0.015, 0.03)], ("leg", "arm", "hips", "head")),
    7: ([("head", 0.008, 0.02), ("top", 0.008, 0.02)], ("leg", "arm", "hips", "torso")),
    8: ([("belly", 0.015, 0.035)], ("stature", "back", "shoulders", "hips", "leg")),
    9: ([("upper_arm", 0.008, 0.02), ("thigh", 0.01, 0.025)], ("stature", "torso", "top")),
}  # fmt: skip


@pytest.mark.parametrize("k", range(10))
def test_each_shape_direction_does_what_its_name_says(body, k):
    measure = _measure(body)
    rest = measure(body["v_template"], body["J"])
    after = measure(*shaped(body, **{f"b{k}": 2.0}))
    changes, fixed = SHAPE_EXPECTATIONS[k]
    for name, lo, hi in changes:
        assert lo < after[name] - rest[name] < hi, (name, after[name] - rest[name])
    for name in fixed:
        assert abs(after[name] - rest[name]) < 0.002, (name, after[name] - rest[name])


@pytest.mark.parametrize("k", range(10))
def test_extreme_shapes_stay_human_and_unfolded(body, k):
    f = body["f"].astype(np.int64)
    a, b = adjacent_faces(f)
    for value in (-3.0, 3.0):
        v, joints = shaped(body, **{f"b{k}": value})
        assert 0.035 < signed_volume(v, f) < 0.11, value
        n = face_normals(v, f)
        assert (n[a] * n[b]).sum(1).min() > 0.3, value
        np.testing.assert_allclose(winding_numbers(v, f, joints), 1.0, atol=1e-6)
        # The thighs never touch: a gap between the legs down to the knees.
        legs = (v[:, 1] < joints[J("left_hip"), 1] - 0.1) & (v[:, 1] > joints[J("left_knee"), 1])
        assert np.abs(v[legs, 0]).min() > 0.005, value


def test_distinct_shape_directions(body):
    dirs = body["shapedirs"].reshape(-1, 10)
    assert np.linalg.norm(dirs, axis=0).min() > 0.05  # m per unit beta, all vertices
    unit = dirs / np.linalg.norm(dirs, axis=0)
    cosine = unit.T @ unit
    assert np.abs(cosine - np.eye(10)).max() < 0.9


# ----------------------------------------------------------------------- files


def test_cli_writes_an_npz_with_all_keys(tmp_path, capsys, body):
    out = tmp_path / "body.npz"
    assert synthetic_cli.main([str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    with np.load(out) as f:
        assert set(f.files) == set(body)
        for key in body:
            np.testing.assert_array_equal(f[key], body[key])


def test_cli_as_a_module_with_a_seed(tmp_path):
    out = tmp_path / "other.npz"
    result = subprocess.run([sys.executable, "-m", "smpl_jax.synthetic", str(out), "--seed", "2"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    with np.load(out) as f:
        np.testing.assert_array_equal(f["v_template"], synthetic.generate(2)["v_template"])


def test_cli_rejects_a_name_without_npz(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        synthetic_cli.main([str(tmp_path / "body.pkl")])
    assert e.value.code == 2
    assert ".npz" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_builtin_path_is_cached_and_versioned(tmp_path, monkeypatch, body):
    monkeypatch.setenv("SMPL_JAX_CACHE", str(tmp_path / "cache"))
    path = synthetic.builtin_path()
    assert path.parent == tmp_path / "cache"
    assert f"v{synthetic.GENERATOR_VERSION}" in path.name and path.suffix == ".npz"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    with np.load(path) as f:
        for key in body:
            np.testing.assert_array_equal(f[key], body[key])
    stamp = path.stat().st_mtime_ns

    def must_not_regenerate(seed=0):
        raise AssertionError("the cached file should have been reused")

    monkeypatch.setattr(builtin, "generate", must_not_regenerate)
    assert synthetic.builtin_path() == path
    assert path.stat().st_mtime_ns == stamp


def test_builtin_path_never_leaves_a_partial_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SMPL_JAX_CACHE", str(tmp_path))

    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(np, "savez", interrupted)
        with pytest.raises(KeyboardInterrupt):
            synthetic.builtin_path()
    assert not list(tmp_path.iterdir())
    path = synthetic.builtin_path()  # the next use writes it properly
    with np.load(path) as f:
        assert "J_regressor_h36m" in f.files


def test_builtin_path_names_the_variable_when_the_cache_is_unwritable(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("SMPL_JAX_CACHE", str(blocker / "cache"))
    with pytest.raises(OSError, match="SMPL_JAX_CACHE"):
        synthetic.builtin_path()


def test_h36m_regressor_from_the_cache(cache_dir, body):
    reg = synthetic.h36m_regressor()
    assert reg.shape == (17, len(body["v_template"])) and reg.dtype == np.float32
    np.testing.assert_allclose(reg, body["J_regressor_h36m"], atol=1e-7)
    assert synthetic.builtin_path().parent == cache_dir


# ----------------------------------------------------------------------- with the model

# One joint bent per body: (joint, axis-angle, the most any vertex may move, m).
BENDS = [("left_knee", (np.pi / 2, 0, 0), 1.0), ("right_elbow", (0, np.pi / 2, 0), 1.0),
         ("left_hip", (-np.pi / 2, 0, 0), 1.4), ("spine2", (0.6, 0, 0), 1.0)]  # fmt: skip


@pytest.fixture(scope="module")
def posed(cache_dir, body):
    """The built-in model's forward pass for a batch: rest, beta0 = 2, then BENDS.

    Returns (model, vertices [B, V, 3], joints [B, 24, 3], vertices without pose
    correctives [B, V, 3]), float64 numpy. One jitted call per model: an eager first
    call compiles every operation on its own and takes far longer.
    """
    import jax

    import smpl_jax

    model = synthetic.load_builtin()
    flat = smpl_jax.model_from_arrays({**body, "posedirs": np.zeros_like(body["posedirs"])})
    betas = np.zeros((2 + len(BENDS), 10), np.float32)
    betas[1, 0] = 2.0
    pose = np.zeros((2 + len(BENDS), 23, 3), np.float32)
    for row, (joint, axis_angle, _) in enumerate(BENDS, start=2):
        pose[row, J(joint) - 1] = axis_angle

    @jax.jit
    def forward(m, betas, pose):
        out = m(betas=betas, body_pose=pose)
        return out.vertices, out.joints

    verts, joints = (np.asarray(x, np.float64) for x in forward(model, betas, pose))
    verts_flat = np.asarray(forward(flat, betas, pose)[0], np.float64)
    return model, verts, joints, verts_flat


def test_load_builtin_rest_pose_reproduces_the_template(posed, body):
    import jax.numpy as jnp

    model, verts, joints, _ = posed
    assert model.dtype == jnp.float32 and model.num_betas == 10
    np.testing.assert_array_equal(model.faces, body["f"].astype(np.int32))
    np.testing.assert_allclose(verts[0], body["v_template"], atol=2e-6)
    np.testing.assert_allclose(joints[0], body["J"], atol=2e-6)
    expected = body["v_template"] + 2.0 * body["shapedirs"][:, :, 0]
    np.testing.assert_allclose(verts[1], expected, atol=2e-6)
    assert synthetic.load_builtin(num_betas=4).num_betas == 4


@pytest.mark.parametrize("bend", range(len(BENDS)), ids=[b[0] for b in BENDS])
def test_bending_one_joint_keeps_the_mesh_sound(posed, body, bend):
    joint, axis_angle, max_move = BENDS[bend]
    v0, f, j = body["v_template"], body["f"].astype(np.int64), J(joint)
    v = posed[1][2 + bend]
    assert np.all(np.isfinite(v))
    moved = np.linalg.norm(v - v0, axis=1)
    assert moved.max() < max_move
    # Skinning with one rotated joint moves a vertex at most along the chord of its arc
    # around that joint, plus the pose corrective's bulge.
    angle = np.linalg.norm(axis_angle)
    reach = np.linalg.norm(v0 - body["J"][j], axis=1)
    assert np.all(moved <= 2 * np.sin(angle / 2) * reach + 0.02)
    # Skin outside the joint's subtree and its blend region does not move at all.
    subtree = [k for k in range(24) if j in _ancestors(k)]
    still = body["weights"][:, subtree].sum(1) < 1e-9
    assert still.sum() > 1000 and moved[still].max() < 1e-5
    # Volume is kept within 2 %. Skin may crease on the inside of the bend (the groin
    # of a flexed hip, as with SMPL), but only there and only a few faces.
    assert abs(signed_volume(v, f) / signed_volume(v0, f) - 1) < 0.02
    n, (a, b) = face_normals(v, f), adjacent_faces(f)
    folded = a[(n[a] * n[b]).sum(1) < 0]
    assert len(folded) < 0.001 * len(a)
    if len(folded):
        posed_joint = posed[2][2 + bend, j]
        assert np.linalg.norm(v[f[folded]].mean(1) - posed_joint, axis=1).max() < 0.2


def _ancestors(k):
    out = {k}
    while skeleton.PARENTS[k] >= 0:
        k = skeleton.PARENTS[k]
        out.add(k)
    return out


def test_pose_correctives_reduce_the_volume_lost_by_skinning(posed, body):
    _, verts, _, verts_flat = posed
    f = body["f"].astype(np.int64)
    rest = signed_volume(body["v_template"], f)
    for row in range(2, 2 + len(BENDS)):
        lost = signed_volume(verts[row], f) - rest
        lost_flat = signed_volume(verts_flat[row], f) - rest
        assert lost_flat < 0 and abs(lost) < abs(lost_flat), BENDS[row - 2][0]

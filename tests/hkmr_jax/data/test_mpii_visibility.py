"""MPII visibility flags: a mock `mpii_human_pose_v1_u12_1.mat` + a mock SPIN `mpii_train.npz`
→ `visible` [N, 24] in J24 order, hand-computed; then through the builder to the
`invisible` evaluator's joint sets.

The mock .mat is written with `scipy.io.savemat` as MATLAB struct arrays (numpy structured
arrays), in the layout of MPII's release: `RELEASE.annolist(i).image.name`,
`.annorect(r).{objpos.{x,y}, scale, annopoints.point(k).{id, x, y, is_visible}}`,
`RELEASE.img_train`. `is_visible` comes as a number, a string '0' / '1' or empty, as in
the real file. SPIN's rows follow pose-hg-train's rule (docs/CONTRACT_data.md): centre
(objpos.x, objpos.y + 15 · scale), scale 1.25 · scale, keypoints cast to int.
"""

from __future__ import annotations

import pathlib
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.io

from hkmr_jax import eval_cli, eval_lib
from hkmr_jax.data import build as build_cli
from hkmr_jax.data import mpii_visibility, pipeline, spin_format

EMPTY = np.zeros((0, 0))  # MATLAB's []


def _structs(rows: list[dict]) -> np.ndarray:
    """A 1 × n MATLAB struct array (what savemat writes for a structured array)."""
    arr = np.empty((1, len(rows)), dtype=[(f, object) for f in rows[0]])
    for i, row in enumerate(rows):
        for field, value in row.items():
            arr[0, i][field] = value
    return arr


def _points(ox, oy, dx, flags: dict, missing=()) -> np.ndarray:
    """MPII points of one person: joint k at (ox − 30 + 4k + dx + 0.6, oy − 40 + 5k + 0.3),
    `is_visible` flags[k] (default the number 1)."""
    rows = [
        {"id": k, "x": ox - 30 + 4 * k + dx + 0.6, "y": oy - 40 + 5 * k + 0.3,
         "is_visible": flags.get(k, 1)}
        for k in range(16) if k not in missing
    ]  # fmt: skip
    return _structs(rows)


def _rect(ox, oy, scale, points) -> dict:
    return {
        "x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0,  # head box, unused
        "scale": scale, "objpos": {"x": ox, "y": oy}, "annopoints": {"point": points},
    }  # fmt: skip


# People (objpos x, y; MPII scale; point offset dx; is_visible flags; missing joints).
A1 = (100, 80, 1.0, 0, {10: 0, 5: "0", 6: "1", 9: EMPTY}, ())
B1 = (50, 60, 0.8, 0, {14: "0"}, (9,))  # head top not annotated
B2 = (150, 60, 0.8, 0, {1: 0.0, 7: "0", 4: ""}, ())  # '' (empty char): visible
D1 = (80, 80, 1.0, 0, {0: 0}, ())  # D1 and D2: one person annotated twice, 1 px apart,
D2 = (81, 80, 1.0, 10, {13: 0}, ())  # with points 10 px apart

# Hand-computed `visible` (J24 slots; MPII id → slot: 0-5 → 0-5, 6 pelvis → 14,
# 7 thorax → 15, 8 upper neck → 12, 9 head top → 13, 10-15 wrists…elbows → 6-11).
# Slots 0…15: r-ankle r-knee r-hip l-hip l-knee l-ankle, r-wrist r-elbow r-shoulder
# l-shoulder l-elbow l-wrist, neck head-top pelvis thorax; 16…23 are no MPII joint (0).
V_A1 = [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]  # l-ankle '0', r-wrist 0, head []
V_B1 = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1]  # l-elbow '0'; head top absent
V_B2 = [1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]  # r-knee 0.0, thorax '0'
V_D2 = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]  # l-shoulder 0
EXPECTED = np.array([v + [0] * 8 for v in (V_B2, V_A1, V_D2, V_B1)], np.float32)
# SPIN rows: B2, A1, D2 (but at D1's exact centre), B1 — not the .mat's order.
ROWS = [("000000002.jpg", B2, None), ("000000001.jpg", A1, None),
        ("000000004.jpg", D2, D1), ("000000002.jpg", B1, None)]  # fmt: skip


def _write_mat(path: pathlib.Path, flags_override=None) -> pathlib.Path:
    def rect(p):
        ox, oy, s, dx, flags, missing = p
        return _rect(ox, oy, s, _points(ox, oy, dx, flags_override or flags, missing))

    head_only = {k: EMPTY for k in rect(A1)}  # a person with its head box only
    head_only.update({"x1": 5.0, "y1": 6.0, "x2": 7.0, "y2": 8.0})
    annolist = _structs([
        {"image": {"name": "000000001.jpg"}, "annorect": _structs([rect(A1)])},
        {"image": {"name": "000000002.jpg"},
         "annorect": _structs([rect(B1), rect(B2), head_only])},
        # A test image: objpos and scale, no annopoints.
        {"image": {"name": "000000003.jpg"},
         "annorect": _structs([{"scale": 1.0, "objpos": {"x": 70.0, "y": 70.0}}])},
        {"image": {"name": "000000004.jpg"}, "annorect": _structs([rect(D1), rect(D2)])},
        {"image": {"name": "000000005.jpg"}, "annorect": EMPTY},  # nobody annotated
    ])  # fmt: skip
    release = {"annolist": annolist, "img_train": np.array([[1, 1, 0, 1, 1]]),
               "single_person": np.array([[1, 1, 0, 1, 0]], object)}  # fmt: skip
    scipy.io.savemat(path, {"RELEASE": release})
    return path


def _spin_rows(rows=ROWS, shift=(0.0, 0.0)) -> dict:
    """SPIN's npz content for `rows` (pose-hg-train's centre/scale rule, int keypoints)."""
    names, centers, scales, parts = [], [], [], []
    for name, person, box in rows:
        ox, oy, _, dx, _, missing = person
        bx, by, bs = (box or person)[:3]
        names.append(f"images/{name}")
        centers.append([bx + shift[0], by + 15 * bs + shift[1]])
        scales.append(1.25 * bs)
        part = np.zeros((24, 3))
        for k in range(16):
            if k not in missing:
                xy = (ox - 30 + 4 * k + dx + 0.6, oy - 40 + 5 * k + 0.3)
                part[mpii_visibility.MPII_TO_J24[k]] = [*np.array(xy, int), 1.0]
        parts.append(part)
    return {"imgname": np.array(names), "center": np.array(centers),
            "scale": np.array(scales), "part": np.array(parts)}  # fmt: skip


@pytest.fixture(scope="module")
def mat_path(tmp_path_factory) -> pathlib.Path:
    return _write_mat(tmp_path_factory.mktemp("mpii") / mpii_visibility.MAT_NAME)


def _records(tmp_path, **kwargs) -> dict:
    path = tmp_path / "mpii_train.npz"
    np.savez(path, **_spin_rows(**kwargs))
    return spin_format.read_npz(path)


# ---------------------------------------------------------------------------------------
# The reader and the matching.


def test_mpii_joint_order_matches_j24_names():
    assert mpii_visibility.MPII_NAMES == (
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "thorax", "neck", "head_top", "right_wrist", "right_elbow",
        "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    )  # fmt: skip


def test_read_annotations_keeps_people_with_a_box(mat_path):
    people = mpii_visibility.read_annotations(mat_path)
    assert sorted(people) == [f"00000000{i}.jpg" for i in range(1, 6)]
    assert [len(people[n]) for n in sorted(people)] == [1, 2, 1, 2, 0]  # head-only: out
    b2 = people["000000002.jpg"][1]
    np.testing.assert_allclose(b2.center, [150.0, 60.0 + 15 * 0.8])
    assert b2.scale == pytest.approx(1.0) and b2.index == (1, 1)
    np.testing.assert_allclose(b2.points[13], [150 - 30 + 36 + 0.6, 60 - 40 + 45 + 0.3])
    b1 = people["000000002.jpg"][0]
    assert np.isnan(b1.points[13]).all() and b1.visible[13] == 0  # head top absent
    test_image = people["000000003.jpg"][0]  # no annopoints: nothing annotated
    assert np.isnan(test_image.points).all() and not test_image.visible.any()


def test_visibility_is_exact_and_picks_the_right_person(mat_path, tmp_path):
    records = _records(tmp_path)
    visible = mpii_visibility.spin_visibility(records, mpii_visibility.read_annotations(mat_path))
    assert visible.dtype == np.float32 and visible.shape == (4, 24)
    np.testing.assert_array_equal(visible, EXPECTED)
    # Row 0 is B2 (the second person of its image), row 3 B1; row 2 sits at D1's centre
    # but carries D2's keypoints: D2 (l-shoulder hidden), not D1 (r-ankle hidden).
    assert visible[2, 9] == 0 and visible[2, 0] == 1


def test_unmatched_rows_name_the_row_image_and_fix(mat_path, tmp_path):
    people = mpii_visibility.read_annotations(mat_path)
    off = _records(tmp_path, shift=(0.0, 20.0))  # every centre 20 px off
    with pytest.raises(
        ValueError,
        match=r"row 0 of mpii_train\.npz.*000000002\.jpg.*"
        r"20\.0 px away.*objpos\.y \+ 15.*tolerance_px",
    ):
        mpii_visibility.spin_visibility(off, people, source="mpii_train.npz")
    # A larger tolerance accepts a small offset.
    near = _records(tmp_path, shift=(0.0, 1.5))
    np.testing.assert_array_equal(mpii_visibility.spin_visibility(near, people), EXPECTED)
    with pytest.raises(ValueError, match="within 1 px"):
        mpii_visibility.spin_visibility(near, people, tolerance_px=1.0)
    # An image the .mat does not have.
    rows = [("000000009.jpg", A1, None)]
    with pytest.raises(ValueError, match=r"row 0 .*no person in image '000000009\.jpg'"):
        mpii_visibility.spin_visibility(_records(tmp_path, rows=rows), people)
    # Right centre, wrong keypoints (A1's box with B1's points).
    rows = [("000000001.jpg", B1, A1)]
    with pytest.raises(
        ValueError,
        match=r"keypoints it labels are up to .* person 1 of "
        r"'000000001\.jpg'",
    ):
        mpii_visibility.spin_visibility(_records(tmp_path, rows=rows), people)


def test_bad_annotation_files_are_named(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / mpii_visibility.MAT_NAME
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*mpii_human_pose_v1_u12_2\.zip"):
        mpii_visibility.read_annotations(missing)
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"MATLAB 5.0 MAT-file, but not really" + bytes(200))
    with pytest.raises(ValueError, match=rf"Cannot read {garbage} as a MATLAB file"):
        mpii_visibility.read_annotations(garbage)
    wrong = tmp_path / "wrong.mat"
    scipy.io.savemat(wrong, {"annot": {"imgname": "a.jpg"}})
    with pytest.raises(ValueError, match=rf"{wrong} has no struct RELEASE.*\['annot'\]"):
        mpii_visibility.read_annotations(wrong)
    bad_flag = _write_mat(tmp_path / "bad_flag.mat", flags_override={3: "maybe"})
    with pytest.raises(
        ValueError,
        match=r"annolist\(1\)\.annorect\(1\) \(000000001\.jpg\), "
        r"joint 3: is_visible 'maybe'",
    ):
        mpii_visibility.read_annotations(bad_flag)
    # Without scipy: an ImportError that says how to get it.
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match="pip install scipy"):
        mpii_visibility.read_annotations(wrong)


# ---------------------------------------------------------------------------------------
# Through the builder to the evaluator.


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("spin")
    (root / "dataset_extras").mkdir()
    (root / "mpii" / "images").mkdir(parents=True)
    image = np.full((160, 200, 3), 90, np.uint8)
    for name in {name for name, _, _ in ROWS}:
        iio.imwrite(root / "mpii" / "images" / name, image, quality=95)
    np.savez(root / "dataset_extras" / "mpii_train.npz", **_spin_rows())
    return root


def _examples(source) -> dict:
    examples = [source[i] for i in range(len(source))]
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def test_built_mpii_reaches_the_invisible_evaluator(manual_dir, mat_path, tmp_path):
    out = tmp_path / "tfds"
    args = ["--dataset", "mpii", "--manual_dir", str(manual_dir), "--data_dir", str(out)]
    assert build_cli.main([*args, "--mpii_annotations", str(mat_path), "--num_workers", "0"]) == 0
    assert (out / "spin_format" / "mpii" / "1.1.0").is_dir()
    records = spin_format.load_split("mpii", "train", out)
    np.testing.assert_array_equal([records[i]["visible"] for i in range(4)], EXPECTED)
    # eval.py's 'mpii' dataset: the same source, `invisible` by default.
    assert eval_cli.DATASETS["mpii"] == ("mpii", "train")
    assert eval_cli.dataset_evaluators("mpii") == ("invisible",)
    batch = _examples(pipeline.make_source(*eval_cli.DATASETS["mpii"], {"data_dir": str(out)}))
    np.testing.assert_array_equal(batch["visible"], EXPECTED)
    hidden, seen = eval_lib.joint_sets(batch)
    labelled = batch["keypoints"][..., 2] > 0
    np.testing.assert_array_equal(hidden, labelled & (EXPECTED == 0))
    np.testing.assert_array_equal(seen, EXPECTED == 1)
    # By hand: B2 r-knee, thorax; A1 l-ankle, r-wrist; D2 l-shoulder; B1 l-elbow.
    assert [np.flatnonzero(h).tolist() for h in hidden] == [[1, 15], [5, 6], [9], [10]]
    assert seen.sum() == 4 * 16 - 6 - 1  # B1's head top is not annotated
    # Asking again for the flags reuses the build.
    assert build_cli.main([*args, "--mpii_annotations", str(mat_path)]) == 0


def test_mpii_built_without_the_mat_is_refused_by_the_evaluator(manual_dir, mat_path,
                                                                tmp_path, capsys):  # fmt: skip
    out = tmp_path / "tfds"
    spin_format.build("mpii", manual_dir, out, num_workers=0)
    record = spin_format.load_split("mpii", "train", out)[0]
    np.testing.assert_array_equal(record["visible"], -1.0)
    batch = _examples(pipeline.make_source("mpii", "train", {"data_dir": str(out)}))
    with pytest.raises(ValueError, match=r"example 0 .*unknown visibility.*--mpii_annotations"):
        eval_lib.joint_sets(batch)
    # The flags cannot be added to that build; nor given for another dataset.
    with pytest.raises(FileExistsError, match="without MPII's visibility flags"):
        spin_format.build("mpii", manual_dir, out, mpii_annotations=mat_path)
    assert build_cli.main(["--dataset", "lsp", "--manual_dir", str(manual_dir), "--data_dir",
                           str(out), "--mpii_annotations", str(mat_path)]) == 2  # fmt: skip
    assert "applies to dataset 'mpii' only, not 'lsp'" in capsys.readouterr().err


def test_build_names_a_missing_annotation_file(manual_dir, tmp_path, capsys):
    missing = tmp_path / mpii_visibility.MAT_NAME
    out = tmp_path / "tfds"
    args = ["--dataset", "mpii", "--manual_dir", str(manual_dir), "--data_dir", str(out)]
    assert build_cli.main([*args, "--mpii_annotations", str(missing)]) == 2
    assert f"MPII annotation file {missing} does not exist" in capsys.readouterr().err
    assert not (out / "spin_format" / "mpii" / "1.1.0").exists()

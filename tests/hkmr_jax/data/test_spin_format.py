"""SPIN-format TFDS builders: mock SPIN files → array_record → records equal to the input.

The mock files follow SPIN's preprocessing (`docs/CONTRACT_data.md`): an H36M validation file
with `S` only (as `h36m_valid_protocol1.npz`), an LSP test file with `part` only, and
flat-coloured JPEG images whose crops are checked against the centre/scale geometry.
"""

from __future__ import annotations

import pathlib
import re
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow_datasets as tfds

from hkmr_jax.data import build as build_cli
from hkmr_jax.data import spin_format
from tests.hkmr_jax.data.contract import example_contract

BACKGROUND = (40, 40, 40)
RED = (230, 20, 20)
H, W = 120, 160
# The red square covers pixels [40, 80) × [60, 100) (rows × columns).
SQUARE_ROWS, SQUARE_COLS = (40, 80), (60, 100)
# JPEG (source and crop, quality 95) moves flat colours by a few levels and rings at
# edges; checks stay 4+ crop pixels away from edges.
JPEG_TOL = 12


def _scene() -> np.ndarray:
    image = np.empty((H, W, 3), np.uint8)
    image[:] = BACKGROUND
    image[slice(*SQUARE_ROWS), slice(*SQUARE_COLS)] = RED
    return image


def _normalised(points, center, scale):
    """Independent reference: [-1, 1] crop coordinates of source pixel points."""
    side = 200.0 * scale
    out = np.array(points, np.float64)
    out[:, 0] = (out[:, 0] - center[0]) / (side / 2)
    out[:, 1] = (out[:, 1] - center[1]) / (side / 2)
    return out


# Box 1: side 100 px centred on the square's centre (80, 60) → the square spans
# [-0.4, 0.4] in both axes, crop pixels ~67..157. Box 2: centred at (150, 110) → the
# image ends at x = 160 and y = 120, i.e. at +0.2 (crop pixel 134), black beyond.
CENTERS = np.array([[80.0, 60.0], [150.0, 110.0], [80.0, 60.0], [70.0, 50.0]])
SCALES = np.array([0.5, 0.5, 0.5, 0.8])


def _part(center, scale, rng):
    part = np.zeros((24, 3))
    side = 200.0 * scale
    part[:, :2] = center + rng.uniform(-0.6, 0.6, (24, 2)) * side
    part[:, 2] = rng.integers(0, 2, 24)
    part[0] = [center[0], center[1], 1.0]  # box centre → (0, 0)
    part[1] = [center[0] + side / 2, center[1], 1.0]  # right edge → x = +1
    part[2] = [center[0], center[1] - side / 2, 0.0]  # top edge → y = -1, invisible
    return part


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("spin")
    (root / "dataset_extras").mkdir()
    rng = np.random.default_rng(0)
    scene = _scene()
    n = len(CENTERS)

    # H36M validation file: imgname, center, scale, S (17 joints labelled). The pelvis
    # is deliberately not at the origin so that `to_example`'s centring shows.
    (root / "h36m" / "images").mkdir(parents=True)
    names = [f"images/S9_Directions_1.54138969_{i + 1:06d}.jpg" for i in range(n)]
    for name in names:
        iio.imwrite(root / "h36m" / name, scene, quality=95)
    S = np.zeros((n, 24, 4))
    labelled = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
    S[:, labelled, :3] = rng.normal(0.0, 0.3, (n, 17, 3)) + [0.1, 0.2, 3.0]
    S[:, labelled, 3] = 1.0
    np.savez(
        root / "dataset_extras" / "h36m_valid_protocol1.npz",
        imgname=names,
        center=CENTERS,
        scale=SCALES,
        S=S,
    )

    # LSP test file: imgname, center, scale, part; images as PNG under lsp_dataset/.
    (root / "lsp_dataset" / "images").mkdir(parents=True)
    lsp_names = [f"images/im{1001 + i:04d}.png" for i in range(n)]
    for name in lsp_names:
        iio.imwrite(root / "lsp_dataset" / name, scene)
    part = np.stack([_part(c, s, rng) for c, s in zip(CENTERS, SCALES)])
    np.savez(
        root / "dataset_extras" / "lsp_dataset_test.npz",
        imgname=lsp_names,
        center=CENTERS,
        scale=SCALES,
        part=part,
    )
    return root


@pytest.fixture(scope="module")
def data_dir(manual_dir, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("tfds")
    spin_format.build("h36m", manual_dir, out, splits=["valid_p1"], num_workers=2)
    # The LSP build goes through the command line, in-process.
    rc = build_cli.main(
        ["--dataset", "lsp", "--splits", "test", "--manual_dir", str(manual_dir),
         "--data_dir", str(out)]
    )  # fmt: skip
    assert rc == 0
    return out


# ---------------------------------------------------------------------------------------
# Geometry.


def test_crop_reproduces_a_ramp_exactly_and_is_black_outside():
    # Pixel j holds j; with pixel j's centre at continuous j + 0.5, a sample at
    # continuous x must read x - 0.5 (bilinear interpolation is exact on linear data).
    ramp = np.broadcast_to(np.arange(W, dtype=np.float64), (H, W))
    for center, scale in [((80.3, 60.0), 0.5), ((130.0, 60.0), 0.8), ((100.0, 60.0), 1.12)]:
        # 1.12 · 200 / 224 = 1 source px per crop px; 0.5 and 0.8 enlarge.
        crop = spin_format.crop_image(ramp, center, scale)
        side = 200.0 * scale
        x = center[0] + ((np.arange(224) + 0.5) / 224 - 0.5) * side
        inside = (x >= 0.5) & (x <= W - 0.5)
        np.testing.assert_allclose(crop[112, inside], x[inside] - 0.5, atol=1e-3)
        outside = x > W + 0.5  # more than one pixel beyond the image: all black
        np.testing.assert_array_equal(crop[112, outside], 0.0)


def test_crop_shrinking_by_two_averages_with_a_triangle():
    # Shrinking 2×: each crop pixel is the tent-weighted mean of the 4 nearest columns
    # (weights 1/8, 3/8, 3/8, 1/8), which on a ramp is again exact.
    ramp = np.broadcast_to(np.arange(1000, dtype=np.float64), (600, 1000))
    center, scale = (500.0, 300.0), 2.24  # side 448 = 2 × 224
    crop = spin_format.crop_image(ramp, center, scale)
    x = center[0] + ((np.arange(224) + 0.5) / 224 - 0.5) * 448
    np.testing.assert_allclose(crop[100], x - 0.5, atol=1e-3)
    checker = np.indices((600, 1000)).sum(0) % 2 * 255.0  # 1-px checkerboard
    crop = spin_format.crop_image(checker, center, scale)
    np.testing.assert_allclose(crop, 127.5, atol=1e-3)  # no aliasing


def test_normalize_keypoints_centre_and_edges():
    center, scale = np.array([80.0, 60.0]), 0.5
    points = [[80.0, 60.0, 1.0], [130.0, 60.0, 1.0], [80.0, 10.0, 0.0], [30.0, 110.0, 1.0]]
    out = spin_format.normalize_keypoints(points, center, scale)
    np.testing.assert_allclose(out, [[0, 0, 1], [1, 0, 1], [0, -1, 0], [-1, 1, 1]])
    assert out.dtype == np.float32


# ---------------------------------------------------------------------------------------
# Build and read back.


def test_h36m_records_equal_the_npz(manual_dir, data_dir):
    source = spin_format.load_split("h36m", "valid_p1", data_dir)
    with np.load(manual_dir / "dataset_extras" / "h36m_valid_protocol1.npz") as z:
        npz = dict(z)
    assert len(source) == len(CENTERS)
    for i in range(len(source)):
        r = source[i]
        assert r["example_id"] == i  # stored in the npz's order
        assert r["imgname"].decode() == npz["imgname"][i]
        np.testing.assert_allclose(r["center"], npz["center"][i])
        np.testing.assert_allclose(r["scale"], npz["scale"][i], rtol=1e-6)
        np.testing.assert_allclose(r["S"], npz["S"][i], rtol=1e-6)
        # Absent keys: SPIN's defaults.
        np.testing.assert_array_equal(r["keypoints"], 0.0)
        np.testing.assert_array_equal(r["openpose"], 0.0)
        np.testing.assert_array_equal(r["pose"], 0.0)
        np.testing.assert_array_equal(r["shape"], 0.0)
        assert r["has_smpl"] == 0.0
        assert r["gender"] == b""
        assert r["image"].shape == (224, 224, 3) and r["image"].dtype == np.uint8


def test_crops_land_where_centre_and_scale_say(data_dir):
    source = spin_format.load_split("h36m", "valid_p1", data_dir)
    # Box 1: square at [-0.4, 0.4]² → crop pixels 67.2..156.8.
    img = source[0]["image"].astype(int)
    np.testing.assert_allclose(img[72:152, 72:152], np.broadcast_to(RED, (80, 80, 3)),
                               atol=JPEG_TOL)  # fmt: skip
    for region in (img[:, :62], img[:, 162:], img[:62, :], img[162:, :]):
        np.testing.assert_allclose(region, np.broadcast_to(BACKGROUND, region.shape),
                                   atol=JPEG_TOL)  # fmt: skip
    # Box 2: the image ends at +0.2 (crop pixel 134.4) in x and y; black beyond.
    img = source[1]["image"].astype(int)
    # (The square ends at x = 100, the box's left edge: the first columns blend it in.)
    np.testing.assert_allclose(img[:130, 4:130], np.broadcast_to(BACKGROUND, (130, 126, 3)),
                               atol=JPEG_TOL)  # fmt: skip
    assert np.abs(img[:, 139:]).max() <= JPEG_TOL
    assert np.abs(img[139:, :]).max() <= JPEG_TOL


def test_lsp_keypoints_normalised_and_crop_equal_in_memory_result(manual_dir, data_dir):
    source = spin_format.load_split("lsp", "test", data_dir)
    with np.load(manual_dir / "dataset_extras" / "lsp_dataset_test.npz") as z:
        npz = dict(z)
    for i in range(len(source)):
        r = source[i]
        expected = _normalised(npz["part"][i], npz["center"][i], npz["scale"][i])
        np.testing.assert_allclose(r["keypoints"], expected, atol=1e-5)
        np.testing.assert_allclose(r["keypoints"][:3], [[0, 0, 1], [1, 0, 1], [0, -1, 0]],
                                   atol=1e-6)  # fmt: skip
        # The stored JPEG decodes to the crop computed from the PNG source (lossless).
        crop = spin_format.crop_image(iio.imread(manual_dir / "lsp_dataset" / npz["imgname"][i]),
                                      npz["center"][i], npz["scale"][i])  # fmt: skip
        assert np.abs(r["image"].astype(float) - crop).mean() < 2.0


def test_to_example_follows_the_contract(data_dir):
    h36m = spin_format.load_split("h36m", "valid_p1", data_dir)[2]
    ex = spin_format.to_example(h36m, dataset_id=3)
    expected = example_contract(224)
    assert set(ex) == set(expected)
    for key, (dtype, shape) in expected.items():
        assert ex[key].dtype == dtype and ex[key].shape == shape, key
    assert ex["has_3d"] == 1.0 and ex["dataset_id"] == 3 and ex["example_id"] == 2
    labelled = h36m["S"][:, 3] > 0
    np.testing.assert_allclose(ex["joints_3d"][14, :3], 0.0)  # pelvis-centred
    np.testing.assert_allclose(
        ex["joints_3d"][labelled, :3], h36m["S"][labelled, :3] - h36m["S"][14, :3], atol=1e-6
    )
    np.testing.assert_array_equal(ex["joints_3d"][~labelled], 0.0)

    lsp = spin_format.to_example(spin_format.load_split("lsp", "test", data_dir)[0], 0)
    assert lsp["has_3d"] == 0.0 and lsp["has_smpl"] == 0.0
    np.testing.assert_array_equal(lsp["joints_3d"], 0.0)
    # Batching is a plain stack.
    batch = {k: np.stack([ex[k], lsp[k]]) for k in ex}
    assert batch["image"].shape == (2, 224, 224, 3)


def test_eval_scores_h36m_p1_with_spins_protocol(data_dir):
    """`eval.py --datasets h36m_p1` reads the built valid_p1 split (p2: valid_p2) and the
    standard evaluator compares the 14 LSP joints with `S`, centred on its pelvis: checked
    against NumPy for a constant prediction (SPIN's protocol 1; the Procrustes half is
    tested in test_metrics)."""
    import jax
    import jax.numpy as jnp

    from hkmr_jax import eval_cli, eval_lib
    from hkmr_jax.data import pipeline
    from hkmr_jax.models import params
    from smpl_jax import synthetic as builtin

    assert eval_cli.DATASETS["h36m_p1"] == ("h36m", "valid_p1")
    assert eval_cli.DATASETS["h36m_p2"] == ("h36m", "valid_p2")
    source = pipeline.make_source(*eval_cli.DATASETS["h36m_p1"], {"data_dir": str(data_dir)})
    body, regressor = builtin.load_builtin(), jnp.asarray(builtin.h36m_regressor())
    n = len(CENTERS)
    rest_upright = np.zeros((1, n, 24, 3), np.float32)
    rest_upright[..., 0, 0] = np.pi
    out = params.stack_outputs(
        jnp.asarray(rest_upright), jnp.zeros((1, n, 10)), jnp.zeros((1, n, 3)), "axis_angle"
    )
    ctx = eval_lib.EvalContext(jax.jit(lambda images: out), body, regressor, n)
    result = eval_lib.standard(ctx, source)

    pred = np.asarray(eval_lib.predicted_j14(out, body, regressor), np.float64)  # [n, 14, 3]
    raw = spin_format.load_split("h36m", "valid_p1", data_dir)
    S = np.stack([raw[i]["S"] for i in range(n)]).astype(np.float64)
    lsp14 = [*range(13), 18]  # SPIN's J24_TO_J14 (18: the H36M head); J24 slot 14: pelvis
    truth = S[:, lsp14, :3] - S[:, 14:15, :3]
    expected = np.linalg.norm(pred - truth, axis=-1).mean() * 1000
    assert result["num_examples"] == n
    np.testing.assert_allclose(result["mpjpe_mm"], expected, rtol=1e-5)


def test_reading_needs_no_tensorflow(data_dir):
    spin_format.load_split("lsp", "test", data_dir)[0]
    assert "tensorflow" not in sys.modules
    # Also readable through TFDS's own entry point (registered name spin_format/<config>).
    source = tfds.data_source("spin_format/lsp", split="test", data_dir=str(data_dir))
    assert len(source) == len(CENTERS)


def test_missing_keys_get_spin_defaults(tmp_path):
    n = 2
    path = tmp_path / "3dpw_test.npz"
    np.savez(path, imgname=["a.jpg", "b.jpg"], center=np.zeros((n, 2)), scale=np.ones(n),
             pose=np.ones((n, 72)), shape=np.ones((n, 10)), gender=["m", "f"])  # fmt: skip
    r = spin_format.read_npz(path)
    # SPIN's BaseDataset: SMPL parameters without `has_smpl` are usable.
    np.testing.assert_array_equal(r["has_smpl"], 1.0)
    np.testing.assert_array_equal(r["part"], np.zeros((n, 24, 3)))
    np.testing.assert_array_equal(r["openpose"], np.zeros((n, 25, 3)))
    np.testing.assert_array_equal(r["S"], np.zeros((n, 24, 4)))
    assert list(r["gender"]) == ["m", "f"]
    np.savez(path, imgname=["a.jpg", "b.jpg"], center=np.zeros((n, 2)), scale=np.ones(n))
    r = spin_format.read_npz(path)
    np.testing.assert_array_equal(r["has_smpl"], 0.0)
    np.testing.assert_array_equal(r["pose"], np.zeros((n, 72)))
    np.testing.assert_array_equal(r["shape"], np.zeros((n, 10)))
    assert list(r["gender"]) == ["", ""]


# ---------------------------------------------------------------------------------------
# User errors.


def test_unknown_dataset_name_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ValueError, match="h36m, mpii, lsp, lspet, coco2014, mpi_inf_3dhp, 3dpw"):
        spin_format.build("h36mm", tmp_path, tmp_path)
    with pytest.raises(ValueError, match="valid splits: train, valid_p1, valid_p2"):
        spin_format.load_split("h36m", "test", tmp_path)
    assert build_cli.main(["--dataset", "human36m", "--manual_dir", str(tmp_path),
                           "--data_dir", str(tmp_path)]) == 2  # fmt: skip
    assert "valid names: h36m, mpii" in capsys.readouterr().err


def test_missing_files_are_named(manual_dir, tmp_path):
    # All h36m splits requested, but only valid_p1's file exists.
    with pytest.raises(FileNotFoundError) as e:
        spin_format.build("h36m", manual_dir, tmp_path / "out")
    msg = str(e.value)
    assert str(manual_dir / "dataset_extras" / "h36m_single_train_openpose.npz") in msg
    assert "dataset_extras/h36m_valid_protocol2.npz" in msg  # the layout is spelled out
    # A missing image is named with its full path.
    bad = tmp_path / "manual"
    (bad / "dataset_extras").mkdir(parents=True)
    (bad / "lsp_dataset" / "images").mkdir(parents=True)
    np.savez(bad / "dataset_extras" / "lsp_dataset_test.npz",
             imgname=["images/im1001.jpg"], center=[[5.0, 5.0]], scale=[0.1])  # fmt: skip
    with pytest.raises(
        FileNotFoundError, match=re.escape(str(bad / "lsp_dataset/images/im1001.jpg"))
    ):
        spin_format.build("lsp", bad, tmp_path / "out", splits=["test"])
    # A missing manual_dir, and reading a dataset that was never built.
    with pytest.raises(FileNotFoundError, match="does_not_exist does not exist"):
        spin_format.build("lsp", tmp_path / "does_not_exist", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="is not built"):
        spin_format.load_split("lsp", "test", tmp_path / "out")
    # TFDS's own entry point without a manual_dir: its AssertionError becomes a clear
    # FileNotFoundError that spells out the layout.
    builder = spin_format.SpinFormat(config="lsp", data_dir=str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match=r"dataset_extras/lsp_dataset_test\.npz"):
        builder.download_and_prepare(file_format="array_record")


def test_corrupt_npz_is_named(tmp_path):
    path = tmp_path / "dataset_extras" / "lsp_dataset_test.npz"
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match=r"lsp_dataset_test\.npz"):
        spin_format.build("lsp", tmp_path, tmp_path / "out", splits=["test"])


def test_interrupted_build_reads_as_not_built(manual_dir, tmp_path):
    # A copy of the LSP mock whose third image is corrupt: the build fails half-way.
    bad = tmp_path / "manual"
    (bad / "lsp_dataset" / "images").mkdir(parents=True)
    (bad / "dataset_extras").mkdir()
    src = manual_dir / "dataset_extras" / "lsp_dataset_test.npz"
    (bad / "dataset_extras" / src.name).write_bytes(src.read_bytes())
    for f in (manual_dir / "lsp_dataset" / "images").iterdir():
        (bad / "lsp_dataset" / "images" / f.name).write_bytes(f.read_bytes())
    corrupt = bad / "lsp_dataset" / "images" / "im1003.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape(f"Cannot decode image {corrupt}")):
        spin_format.build("lsp", bad, out, splits=["test"], num_workers=0)
    builder = spin_format.SpinFormat(config="lsp", data_dir=str(out))
    assert not builder.is_prepared()
    assert not (out / "spin_format" / "lsp" / "1.1.0").exists()
    assert not list((out / "spin_format" / "lsp").glob("*incomplete*"))  # cleaned up
    with pytest.raises(FileNotFoundError, match="is not built"):
        spin_format.load_split("lsp", "test", out)
    with pytest.raises(Exception):  # noqa: B017 - TFDS's own "not found" error
        tfds.data_source("spin_format/lsp", split="test", data_dir=str(out))
    # A killed build leaves an incomplete.* folder (TFDS renames on success only):
    # it does not read as built either.
    (out / "spin_format" / "lsp" / "incomplete.ABCDEF_1.1.0").mkdir()
    assert not spin_format.SpinFormat(config="lsp", data_dir=str(out)).is_prepared()


# ---------------------------------------------------------------------------------------
# Hostile rows: image paths, dtypes, shapes, truncation (memory: tests/hkmr_jax/test_bounds.py).


def _lsp_copy(manual_dir, root, imgnames) -> pathlib.Path:
    """A manual_dir with the mock LSP images and a test file listing `imgnames`."""
    (root / "dataset_extras").mkdir(parents=True)
    images = root / "lsp_dataset" / "images"
    images.mkdir(parents=True)
    for f in (manual_dir / "lsp_dataset" / "images").iterdir():
        (images / f.name).write_bytes(f.read_bytes())
    n = len(imgnames)
    np.savez(root / "dataset_extras" / "lsp_dataset_test.npz", imgname=imgnames,
             center=np.tile([80.0, 60.0], (n, 1)), scale=np.full(n, 0.5))  # fmt: skip
    return root


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "link_out", "nul"])
def test_imgnames_leaving_the_image_root_are_refused_before_reading(manual_dir, tmp_path, kind):
    outside = tmp_path / "secret.png"
    outside.write_bytes((manual_dir / "lsp_dataset" / "images" / "im1001.png").read_bytes())
    bad = {
        "dotdot": "images/../../../secret.png",
        "absolute": str(outside),
        "link_out": "images/link.png",
        "nul": "images/im1001.png\0x",
    }[kind]
    root = _lsp_copy(manual_dir, tmp_path / "manual", ["images/im1001.png", bad])
    (root / "lsp_dataset" / "images" / "link.png").symlink_to(outside)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as e:
        spin_format.build("lsp", root, out, splits=["test"], num_workers=0)
    msg = str(e.value)
    assert f"lsp_dataset_test.npz: row 1 imgname {bad!r}" in msg
    assert "outside the image root" in msg or "NUL" in msg
    assert not out.exists()  # refused before anything was written


def test_an_image_root_that_is_a_link_is_fine(manual_dir, tmp_path):
    # The layout allows image roots to be links to where a dataset already is.
    elsewhere = _lsp_copy(manual_dir, tmp_path / "elsewhere", ["images/im1001.png"])
    root = tmp_path / "manual"
    (root / "dataset_extras").mkdir(parents=True)
    (root / "dataset_extras" / "lsp_dataset_test.npz").symlink_to(
        elsewhere / "dataset_extras" / "lsp_dataset_test.npz"
    )
    (root / "lsp_dataset").symlink_to(elsewhere / "lsp_dataset")
    records = spin_format.read_npz(root / "dataset_extras" / "lsp_dataset_test.npz")
    spin_format.check_images(records, root / "lsp_dataset", "f.npz")  # no error


@pytest.mark.parametrize(
    "case, pieces",
    [
        ("object", ["(key 'scale'): dtype object", "refused"]),
        ("strings", ["'center' must be a numeric array of shape (2, 2)", "<U1"]),
        ("rows", ["'part' must be a numeric array of shape (2, 24, 3)", "(3, 24, 3)"]),
        ("imgname", ["'imgname' must be a 1-D string array, got float64"]),
        ("truncated", ["truncated or corrupt"]),
        ("empty", ["not an .npz (zip) archive"]),
    ],
)
def test_malformed_npz_is_one_message_naming_the_file(tmp_path, case, pieces):
    path = tmp_path / "f.npz"
    good = {"imgname": ["a.jpg", "b.jpg"], "center": np.zeros((2, 2)), "scale": np.ones(2)}
    if case == "object":
        np.savez(path, **{**good, "scale": np.array([1.0, None], dtype=object)})
    elif case == "strings":
        np.savez(path, **{**good, "center": np.full((2, 2), "x")})
    elif case == "rows":
        np.savez(path, **good, part=np.zeros((3, 24, 3)))
    elif case == "imgname":
        np.savez(path, **{**good, "imgname": np.zeros(2)})
    elif case == "truncated":
        np.savez(path, **good, part=np.zeros((2, 24, 3)))
        path.write_bytes(path.read_bytes()[:-300])
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError) as e:
        spin_format.read_npz(path)
    assert str(path) in str(e.value)
    for piece in pieces:
        assert piece in str(e.value), str(e.value)


def test_the_command_builds_the_splits_it_has_and_names_the_others(manual_dir, tmp_path,
                                                                   capsys):  # fmt: skip
    # manual_dir has LSP's test file only (not lsp_dataset_original_train.npz).
    out = tmp_path / "out"
    argv = ["--dataset", "lsp", "--manual_dir", str(manual_dir), "--data_dir", str(out)]
    assert build_cli.main(argv) == 0
    captured = capsys.readouterr()
    missing = manual_dir / "dataset_extras" / "lsp_dataset_original_train.npz"
    assert f"skipping lsp/train: no {missing}" in captured.err
    assert "building lsp split(s) test" in captured.err
    assert f"spin_format/lsp at {out / 'spin_format' / 'lsp' / '1.1.0'} (test: 4)" in captured.out
    # TFDS's download announcements are replaced by what happens: a local build.
    assert "Downloading" not in captured.out and "downloaded" not in captured.out
    assert "Building spin_format/lsp from local files" in captured.out
    assert len(spin_format.load_split("lsp", "test", out)) == 4
    # No file of the dataset at all: one line naming what is missing, exit status 2.
    argv = ["--dataset", "3dpw", "--manual_dir", str(manual_dir), "--data_dir", str(out)]
    assert build_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m hkmr_jax.data.build: error: SPIN-format 3dpw/test: missing")
    assert "Traceback" not in err


def test_tfds_opencv_notice_is_dropped(caplog):
    from absl import logging as absl_logging

    with caplog.at_level("WARNING"):
        absl_logging.warning("OpenCV is not installed. We recommend using OpenCV ...")
        absl_logging.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]

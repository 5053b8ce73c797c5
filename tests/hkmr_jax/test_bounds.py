"""Bounded inputs: crop boxes, image sizes, npy/npz headers and regressor files.

Cases that would allocate gigabytes if a bound failed run in one child process under an
address-space cap (`CAP`): a regression there ends in MemoryError or a crash, which fails
the test, instead of exhausting the machine. Every refusal must be one message naming
the file, row, flag or keypoint.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import ml_collections
import numpy as np
import pytest

import smpl_jax
from hkmr_jax import bodies, demo, demo_cli
from hkmr_jax.data import spin_format
from smpl_jax import array_files

ROOT = Path(__file__).resolve().parents[2]
#: Address-space cap of the child: importing the modules takes ~0.5 GiB of it; every
#: case below needed ≥ 6 GiB before the bounds.
CAP = 3 * 2**30


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` × `height` RGB pixels (its data is not
    that big: only the header matters until decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))  # fmt: skip


def npy_bytes(shape, descr="<f8", data=b"") -> bytes:
    """A .npy stream whose header declares `shape` but that holds only `data`."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
    )
    return buf.getvalue() + data


def _npz(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)


def _spin_npz(path, scale):
    """A two-row LSP test file whose second row has `scale`."""
    np.savez(path, imgname=["images/a.png", "images/b.png"], center=[[50.0, 40.0]] * 2,
             scale=[0.3, scale])  # fmt: skip


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    # A SPIN manual_dir whose row 1 has scale 1e6 (a 2e8-pixel box on a 100 × 80 image).
    manual = root / "manual"
    (manual / "dataset_extras").mkdir(parents=True)
    (manual / "lsp_dataset" / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (manual / "lsp_dataset" / "images" / name).write_bytes(_png(80, 100))
    _spin_npz(manual / "dataset_extras" / "lsp_dataset_test.npz", 1e6)
    (root / "huge.png").write_bytes(png_header(20000, 20000))  # PIL's own limit, too
    (root / "big.png").write_bytes(png_header(10000, 9000))  # ours only
    (root / "ok.png").write_bytes(_png(80, 100))
    # An npz whose `center` header declares 10^9 rows but holds 16 bytes.
    _npz(root / "declared.npz", {
        "imgname": npy_bytes((1,), "<U5", "a.png".encode("utf-32-le")),
        "center": npy_bytes((10**9, 2), data=b"\0" * 16),
        "scale": npy_bytes((1,), data=np.float64(1).tobytes()),
    })  # fmt: skip
    # A deflate bomb: 96 MiB of zeros in ~100 kB.
    with zipfile.ZipFile(root / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("openpose.npy", "w") as f:
            f.write(npy_bytes((96 * 2**20 // 8,)))
            for _ in range(96):
                f.write(b"\0" * 2**20)
    (root / "declared.npy").write_bytes(npy_bytes((17, 10**9), data=b"\0" * 64))
    keypoints = [[10, 10, 0.9], [30, 50, 0.9], [1e9, 2e9, 0.9]]
    (root / "far_keypoints.json").write_text(
        json.dumps({"people": [{"pose_keypoints_2d": np.ravel(keypoints).tolist()}]})
    )
    return root


def _png(h, w) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.full((h, w, 3), 128, np.uint8), extension=".png")


CHILD = """
import contextlib, io, json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
import numpy as np
from hkmr_jax import demo, demo_cli
from hkmr_jax.data import spin_format
from smpl_jax import array_files
root = sys.argv[1]

def case(name, fn):
    try:
        fn()
        out = {"type": None, "msg": ""}
    except BaseException as e:
        out = {"type": type(e).__name__, "msg": str(e)}
    print(json.dumps({"case": name, **out}), flush=True)

image = np.zeros((80, 100, 3), np.uint8)
case("crop_scale_1e6", lambda: spin_format.crop_image(image, (50, 40), 1e6))
case("crop_nan", lambda: spin_format.crop_image(image, (np.nan, 40), 0.5))
case("crop_off_image", lambda: spin_format.crop_image(image, (1e9, 40), 0.5))
case("build_scale_1e6", lambda: spin_format.build(
    "lsp", f"{root}/manual", f"{root}/out", splits=["test"], num_workers=0))
case("image_huge", lambda: spin_format.read_image(f"{root}/huge.png"))
case("image_big", lambda: spin_format.read_image(f"{root}/big.png"))
case("demo_image_big", lambda: demo.read_image(f"{root}/big.png"))
case("npz_declared", lambda: spin_format.read_npz(f"{root}/declared.npz"))
case("npz_bomb", lambda: array_files.load_npz(f"{root}/bomb.npz"))
case("npy_declared", lambda: array_files.load_npy(f"{root}/declared.npy"))
case("openpose_far", lambda: demo.box_from_openpose(f"{root}/far_keypoints.json", (80, 100)))
err = io.StringIO()
with contextlib.redirect_stderr(err):
    rc = demo_cli.main(["--workdir", f"{root}/no_run", "--image", f"{root}/ok.png", "--out",
                    f"{root}/demo_out", "--bbox", "0,0,1e9,1e9"])
print(json.dumps({"case": "demo_bbox_1e9", "type": str(rc), "msg": err.getvalue()}))
# The peak of this process's own memory (VmHWM: ru_maxrss would include the RSS of the
# pytest worker that forked it, which Linux carries across exec).
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"case": "maxrss_kib", "type": None, "msg": int(peak[0].split()[1])}))
"""


@pytest.fixture(scope="module")
def child(hostile) -> dict[str, dict]:
    # The cap is set by the child itself, first thing (a preexec_fn would fork this
    # multithreaded process).
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(hostile), str(CAP)], cwd=ROOT,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith('{"case"'):
            r = json.loads(line)
            results[r["case"]] = r
    return results


@pytest.mark.parametrize(
    "name, kind, pieces",
    [
        ("crop_scale_1e6", "ValueError", ["scale 1e+06", "larger than 8×", "100×80"]),
        ("crop_nan", "ValueError", ["must be finite"]),
        ("crop_off_image", "ValueError", ["does not overlap the image"]),
        ("build_scale_1e6", "ValueError", ["lsp_dataset_test.npz: row 1", "b.png", "8×"]),
        ("image_huge", "ImageTooLargeError", ["huge.png has more pixels than the limit"]),
        ("image_big", "ImageTooLargeError", ["big.png is 10000×9000 pixels", "Downscale"]),
        ("demo_image_big", "DemoError", ["big.png is 10000×9000 pixels"]),
        ("npz_declared", "ArrayFileError",
         ["declared.npz (key 'center')", "[1000000000, 2]", "holds 16 bytes"]),
        ("npz_bomb", "ArrayFileError", ["bomb.npz", "decompression bomb"]),
        ("npy_declared", "ArrayFileError", ["declared.npy", "[17, 1000000000]", "truncated"]),
        ("openpose_far", "DemoError",
         ["far_keypoints.json", "farthest keypoint at (1e+09, 2e+09)", "8×"]),
        ("demo_bbox_1e9", "2", ["hkmr-demo: error: bounding box", "more than 8×"]),
    ],
)  # fmt: skip
def test_hostile_sizes_end_in_one_message_within_the_memory_cap(child, name, kind, pieces):
    r = child[name]
    assert r["type"] == kind, r
    for piece in pieces:
        assert piece in r["msg"], (piece, r["msg"])
    assert "Traceback" not in r["msg"]


def test_the_child_stayed_small(child, hostile):
    # Well under the cap: nothing big was allocated, even transiently.
    assert child["maxrss_kib"]["msg"] < 1.5 * 2**20
    # And the refused build left nothing that reads as built.
    assert not (hostile / "out" / "spin_format" / "lsp" / "1.0.0").exists()


# ---------------------------------------------------------------------------------------
# Crops: memory follows the output and the image, not the box.


def _crop_reference(image, center, scale, res):
    """Independent dense reference: each output pixel's triangle weights over a wide
    integer grid (pixels outside the image black), normalised over that grid."""
    side = 200.0 * scale
    spacing = side / res
    radius = max(1.0, spacing)
    h, w = image.shape[:2]
    grid = np.arange(-4000, 4000)

    def weights(c0, size):
        c = c0 + ((np.arange(res) + 0.5) / res - 0.5) * side - 0.5
        wt = np.maximum(0.0, 1.0 - np.abs(grid[None] - c[:, None]) / radius)
        wt /= wt.sum(axis=1, keepdims=True)
        inside = (grid >= 0) & (grid < size)
        return wt[:, inside]  # columns: pixels 0 … size − 1

    wy, wx = weights(center[1], h), weights(center[0], w)
    return np.einsum("vi,uj,ijc->vuc", wy, wx, image.astype(np.float64))


@pytest.mark.parametrize(
    "center, scale",
    [((6.0, 5.0), 8 * 12 / 200), ((-30.0, 14.0), 0.4), ((3.3, 2.7), 0.013), ((11.9, 0.2), 0.2)],
)
def test_crop_equals_a_dense_reference_up_to_the_box_limit(center, scale):
    image = np.random.default_rng(1).integers(0, 256, (10, 12, 3)).astype(np.uint8)
    got = spin_format.crop_image(image, center, scale, res=7)
    np.testing.assert_allclose(got, _crop_reference(image, center, scale, 7), atol=1e-3)


def test_taps_never_list_more_pixels_than_the_image_has():
    coords = np.linspace(-1e7, 1e7, 224)
    idx, w = spin_format.crop._taps(coords, 1e5, 50)
    assert idx.shape == w.shape == (224, 50)
    assert idx.min() >= 0 and idx.max() < 50


def test_box_limits():
    spin_format.check_box((50, 40), 8 * 100 / 200, (80, 100))  # exactly 8× the larger side
    with pytest.raises(ValueError, match="larger than 8×"):
        spin_format.check_box((50, 40), 8 * 100 / 200 * 1.01, (80, 100))
    for center, scale in [((50, 40), 0.0), ((50, 40), -1.0), ((np.inf, 40), 1.0)]:
        with pytest.raises(ValueError, match="must be finite, scale > 0"):
            spin_format.check_box(center, scale, (80, 100))
    with pytest.raises(ValueError, match="does not overlap"):
        spin_format.check_box((-60, 40), 0.5, (80, 100))  # right edge at x = -10


def test_demo_boxes_are_bounded():
    assert demo.box_from_bbox((0, 0, 800, 10), (80, 100)).side == 800
    with pytest.raises(demo.DemoError, match=r"bounding box .* more than 8×"):
        demo.box_from_bbox((0, 0, 801, 10), (80, 100))
    with pytest.raises(demo.DemoError, match="w, h > 0"):
        demo.box_from_bbox((0, 0, np.nan, 10), (80, 100))
    far = np.array([[10, 10, 0.9], [20, 20, 0.9], [-1e300, 1e300, 0.9]])
    with pytest.raises(demo.DemoError, match="OpenPose keypoints' box"):
        demo.box_from_openpose(far, (80, 100))
    # A hand-made Box is checked where it is cropped.
    with pytest.raises(demo.DemoError, match="larger than 8×"):
        demo.crop_image(np.zeros((80, 100, 3), np.uint8), demo.Box(50, 40, 1e9), 32)


# ---------------------------------------------------------------------------------------
# .npy / .npz readers, regressor files, SMPL npz.


def test_array_files_refuse_object_and_structured_arrays(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(array_files.ArrayFileError, match=r"obj\.npy: dtype object"):
        array_files.load_npy(tmp_path / "obj.npy")
    np.save(tmp_path / "rec.npy", np.zeros(3, [("a", "<f4"), ("b", "<i4")]))
    with pytest.raises(array_files.ArrayFileError, match=r"rec\.npy: dtype .* structured"):
        array_files.load_npy(tmp_path / "rec.npy")
    np.savez(tmp_path / "mixed.npz", a=np.ones(2), b=np.array([None], dtype=object))
    with pytest.raises(array_files.ArrayFileError, match=r"mixed\.npz \(key 'b'\): dtype object"):
        array_files.load_npz(tmp_path / "mixed.npz")


def test_array_files_read_what_numpy_writes(tmp_path):
    a = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(array_files.load_npy(tmp_path / "a.npy"), a)
    np.savez_compressed(tmp_path / "b.npz", x=a, s=np.array(["ab", "c"]), z=np.zeros((0, 3)))
    got = array_files.load_npz(tmp_path / "b.npz")
    np.testing.assert_array_equal(got["x"], a)
    assert got["s"].tolist() == ["ab", "c"] and got["z"].shape == (0, 3)


@pytest.fixture
def body_file(tmp_path, smpl_arrays) -> Path:
    path = tmp_path / "body.npz"
    np.savez(path, **smpl_arrays(num_vertices=50, num_faces=20))
    return path


def _load_body(body, regressor):
    return bodies.load_body(
        ml_collections.ConfigDict({"body_model": str(body), "h36m_regressor": str(regressor)})
    )


def test_regressor_npy_or_single_array_npz(tmp_path, body_file):
    reg = np.random.default_rng(0).uniform(size=(17, 50))
    np.save(tmp_path / "reg.npy", reg)
    np.savez(tmp_path / "reg.npz", reg)
    for name in ("reg.npy", "reg.npz"):
        _, got = _load_body(body_file, tmp_path / name)
        np.testing.assert_allclose(np.asarray(got), reg.astype(np.float32))


@pytest.mark.parametrize(
    "write, pieces",
    [
        (lambda p: np.savez(p, a=np.ones((17, 50)), b=np.ones(3)),
         ["reg.npy is an .npz archive with 2 arrays ['a', 'b']", "give the .npy"]),
        (lambda p: p.write_bytes(b"not numpy at all"), ["reg.npy: not a NumPy .npy array"]),
        (lambda p: np.save(p, np.full((17, 50), "x")), ["reg.npy holds <U1 values"]),
        (lambda p: np.save(p, np.full((17, 50), np.nan)), ["reg.npy contains NaN"]),
        (lambda p: np.save(p, np.ones((17, 49))), ["reg.npy: expected a [17, 50] regressor"]),
        (lambda p: p.write_bytes(npy_bytes((17, 50))[:-1]), ["reg.npy: not a NumPy .npy"]),
        (lambda p: p.write_bytes(npy_bytes((17, 50), data=b"\0" * 80)), ["holds 80 bytes"]),
    ],
)  # fmt: skip
def test_regressor_file_mistakes_are_one_message(tmp_path, body_file, write, pieces):
    path = tmp_path / "reg.npy"
    write(path)
    if not path.exists():  # np.savez added ".npz"
        path.with_suffix(".npy.npz").rename(path)
    with pytest.raises(ValueError) as e:
        _load_body(body_file, path)
    for piece in pieces:
        assert piece in str(e.value)


def test_smpl_npz_with_strings_names_file_and_key(tmp_path, smpl_arrays):
    arrays = smpl_arrays(num_vertices=50, num_faces=20)
    arrays["v_template"] = np.full((50, 3), "x")
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(ValueError, match=r"m\.npz: 'v_template' holds <U1 values"):
        smpl_jax.load(tmp_path / "m.npz")
    _npz(tmp_path / "d.npz", {"v_template": npy_bytes((10**8, 3))})
    with pytest.raises(array_files.ArrayFileError, match=r"d\.npz \(key 'v_template'\)"):
        smpl_jax.load(tmp_path / "d.npz")


def test_other_user_array_files_name_file_and_key(tmp_path):
    from hkmr_jax.fitting import fit_store
    from hkmr_jax.models import params, pose_prior

    np.save(tmp_path / "fits.npy", np.full((3, 82), "x"))
    with pytest.raises(ValueError, match=r"fits\.npy holds <U1 values"):
        fit_store.load_spin_static_fits(tmp_path / "fits.npy")
    np.savez(tmp_path / "mean.npz", pose=np.zeros(144), shape=np.zeros(10), cam=np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"mean\.npz: 'cam' has shape \(3, 1\), expected \(3,\)"):
        params.MeanParams.from_spin_npz(tmp_path / "mean.npz")
    np.savez(tmp_path / "seq.npz", poses=np.array([[None] * 156], dtype=object))
    with pytest.raises(array_files.ArrayFileError, match=r"seq\.npz \(key 'poses'\): dtype obj"):
        pose_prior.load_amass_poses([tmp_path / "seq.npz"])


def test_demo_render_size_is_bounded(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        demo_cli.main(["--workdir", str(tmp_path), "--image", str(tmp_path / "a.png"), "--out",
                   str(tmp_path / "out"), "--render_size", "100000"])  # fmt: skip
    assert e.value.code == 2
    assert "--render_size must be 16 to 4096 pixels, got 100000" in capsys.readouterr().err


def test_npz_members_that_cost_nothing_to_declare_are_refused(tmp_path):
    # 10^12 zero-size strings: no bytes, but a loop over them would never end.
    _npz(tmp_path / "z.npz", {"imgname": npy_bytes((10**12,), "<U0")})
    with pytest.raises(array_files.ArrayFileError, match=r"z\.npz \(key 'imgname'\).*zero-size"):
        array_files.load_npz(tmp_path / "z.npz")
    # A member in a compression zipfile cannot read is one message too.
    np.savez(tmp_path / "c.npz", a=np.ones(3))
    data = bytearray((tmp_path / "c.npz").read_bytes())
    for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # method field: 99
        pos = data.index(sig) + at
        data[pos : pos + 2] = (99).to_bytes(2, "little")
    (tmp_path / "c.npz").write_bytes(bytes(data))
    with pytest.raises(array_files.ArrayFileError, match=r"c\.npz: cannot read it"):
        array_files.load_npz(tmp_path / "c.npz")

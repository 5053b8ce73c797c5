"""The demo (`hkmr_jax.demo`): crops, OpenPose boxes, outputs end to end, folder mode and
error cases.

One smoke run is shared by the module: `configs/hkmr.py:smoke`'s config.json and its
initial state saved as step 0 with the training code's `Checkpointer`, i.e. the layout
`train.py` writes, without compiling a training step (tens of seconds on 2 cores).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

import smpl_jax
from hkmr_jax import cli, demo, demo_cli

ROOT = Path(__file__).resolve().parents[2]
RENDER = 48  # --render_size in these tests: small pictures, quick to draw


@pytest.fixture(scope="module")
def run(untrained_run) -> Path:
    """A smoke run's workdir: config.json and a checkpoint at step 0 (conftest)."""
    return untrained_run


@pytest.fixture(scope="module")
def predictor(run) -> demo.Predictor:
    return demo.Predictor.from_workdir(run)


def _image(seed=0, shape=(90, 120)):
    """A textured uint8 [H, W, 3] test picture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    base = np.stack([xx * 2, yy * 2, (xx + yy) % 256], -1) % 256
    return (base + rng.integers(0, 40, (*shape, 3))).clip(0, 255).astype(np.uint8)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------- crops


def test_crop_from_bbox_maps_box_corners_to_crop_corners():
    image = np.zeros((60, 100, 3), np.uint8)
    # bbox (20, 10, 40, 20) → the square of side 40 about its centre (40, 20): x 20-60,
    # y 0-40. Paint its corner pixels, and one just outside it.
    image[0, 20] = (255, 0, 0)
    image[39, 59] = (0, 0, 255)
    image[40, 60] = (0, 255, 0)
    box = demo.box_from_bbox((20, 10, 40, 20), image.shape[:2])
    assert box == demo.Box(40.0, 20.0, 40.0)
    np.testing.assert_array_equal(box.xywh, [20, 0, 40, 40])
    crop = demo.crop_image(image, box, 40)  # one source pixel per crop pixel
    assert crop.shape == (40, 40, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(crop[39, 39], (0, 0, 255))
    assert crop.sum() == 2 * 255  # nothing else: the green pixel is outside the box
    # At 4× the box's resolution crop pixel u samples x = 20 + (u + ½)/4: the corner
    # pixel's centre (20.5) lies between crop pixels 1 and 2 (bilinear weight 0.875 each
    # way), and mirrored at the far corner.
    big = demo.crop_image(image, box, 160)
    np.testing.assert_array_equal(big[1:3, 1:3, 0], np.round(255 * 0.875**2))
    assert big[0, 0, 0] == np.round(255 * 0.625**2) and big[:4, :4, 1:].sum() == 0
    np.testing.assert_array_equal(big[157:159, 157:159, 2], np.round(255 * 0.875**2))
    # A box reaching past the image is black there.
    edge = demo.crop_image(image + 100, demo.box_from_bbox((-10, -10, 20, 20), (60, 100)), 20)
    assert edge[:10, :].max() == 0 and edge[:, :10].max() == 0 and edge[10:, 10:].min() >= 100
    # No box: the whole image, centred, side = its larger side.
    assert demo.box_from_image((60, 100)) == demo.Box(50.0, 30.0, 100.0)


def test_openpose_box_from_a_body25_file(tmp_path):
    keypoints = np.zeros((25, 3))  # OpenPose writes (0, 0, 0) for undetected joints
    keypoints[0] = (130, 50, 0.9)  # nose: the top
    keypoints[11] = (100, 250, 0.8)  # right ankle: bottom, left
    keypoints[14] = (160, 240, 0.21)  # left ankle: right, just above the threshold
    keypoints[4] = (400, 400, 0.2)  # not above 0.2: ignored, as in SPIN
    keypoints[7] = (-300, 10, 0.1)  # low confidence: ignored
    path = tmp_path / "person_keypoints.json"
    people = [{"person_id": [-1], "pose_keypoints_2d": keypoints.reshape(-1).tolist()}]
    path.write_text(json.dumps({"version": 1.3, "people": people}))
    box = demo.box_from_openpose(path, (480, 640))
    # The middle of the confident keypoints' box, 1.2 × its larger side (200 px).
    np.testing.assert_allclose(box, (130.0, 150.0, 240.0))
    np.testing.assert_allclose(demo.read_openpose(path), keypoints)

    keypoints[:, 2] = np.minimum(keypoints[:, 2], 0.2)
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": keypoints.ravel().tolist()}]}))
    with pytest.raises(demo.DemoError, match=r"only 0 OpenPose keypoint.*confidence > 0.2"):
        demo.box_from_openpose(path, (480, 640))
    path.write_text(json.dumps({"people": []}))
    with pytest.raises(demo.DemoError, match="no person"):
        demo.box_from_openpose(path, (480, 640))


# ----------------------------------------------------------------------------- end to end


def test_one_image_writes_the_mesh_parameters_and_pictures(run, predictor, tmp_path):
    image = _image()
    iio.imwrite(tmp_path / "person.png", image)
    out = tmp_path / "out"
    argv = ["--workdir", str(run), "--image", str(tmp_path / "person.png"), "--out", str(out),
            "--bbox", "30,10,50,70", "--render_size", str(RENDER)]  # fmt: skip
    assert demo_cli.main(argv) == 0
    names = ["person.json", "person.npz", "person.obj", "person_overlay.png", "person_side.png"]
    assert _files(out) == names

    body = predictor.body
    mesh = trimesh.load(out / "person.obj", process=False)
    assert mesh.vertices.shape == (body.num_vertices, 3)
    np.testing.assert_array_equal(mesh.faces, np.asarray(body.faces))

    with np.load(out / "person.npz") as f:
        params = {k: f[k] for k in f.files}
    assert {k: v.shape for k, v in params.items()} == {
        "pose": (24, 3), "betas": (body.num_betas,), "camera": (3,), "box": (4,)}  # fmt: skip
    record = json.loads((out / "person.json").read_text())
    assert record["checkpoint_step"] == 0 and record["image"] == str(tmp_path / "person.png")
    for key, value in params.items():
        np.testing.assert_array_equal(np.asarray(record[key], np.float32), value, err_msg=key)
    # The box: the bbox made square (side 70) about its centre (55, 45).
    np.testing.assert_array_equal(params["box"], [20, 10, 70, 70])

    # The parameters are the model's on the expected crop, and the mesh is their body:
    # the axis-angle pose gives the .obj's vertices (upright: y and z negated).
    box = demo.Box(55.0, 45.0, 70.0)
    expected = predictor(demo.crop_image(image, box, predictor.image_size)[None])
    np.testing.assert_allclose(params["camera"], expected.camera[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(params["pose"], expected.pose[0], rtol=1e-6, atol=1e-7)
    pose = params["pose"]
    verts = body(betas=params["betas"][None], body_pose=pose[None, 1:],
                 global_orient=pose[None, 0]).vertices[0]  # fmt: skip
    np.testing.assert_allclose(mesh.vertices, np.asarray(verts) * [1, -1, -1], atol=2e-5)

    overlay = iio.imread(out / "person_overlay.png")
    side = iio.imread(out / "person_side.png")
    assert overlay.shape == side.shape == (RENDER, RENDER, 3)
    # The overlay is the crop where the mesh is not, and the mesh covers part of it.
    crop = demo.crop_image(image, box, RENDER)
    same = np.all(overlay == crop, axis=-1)
    assert 0.1 < same.mean() < 0.95
    white = np.all(side == 255, axis=-1)  # the side view is on white
    assert 0.3 < white.mean() < 0.98
    assert not list(out.glob(".*"))  # no temporary files left


def test_a_folder_is_done_in_batches_and_a_bad_image_fails_alone(run, predictor, tmp_path,
                                                                  capsys):  # fmt: skip
    folder = tmp_path / "images"
    folder.mkdir()
    iio.imwrite(folder / "a.png", _image(1))
    iio.imwrite(folder / "b.jpg", _image(2, (100, 80)))
    iio.imwrite(folder / "c.png", _image(3, (64, 64))[..., 0])  # greyscale
    (folder / "d.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    argv = ["--workdir", str(run), "--image", str(folder), "--out", str(out),
            "--batch_size", "2", "--render_size", str(RENDER)]  # fmt: skip
    assert demo_cli.main(argv) == 2  # d.png failed
    err = capsys.readouterr().err
    assert "cannot read image" in err and "d.png" in err and "a.png" not in err
    stems = sorted({p.name.split(".")[0].split("_")[0] for p in out.iterdir()})
    assert stems == ["a", "b", "c"] and len(list(out.iterdir())) == 15
    # Batched predictions are those of each image alone (whole image: no box given).
    for name, image in (("b", _image(2, (100, 80))), ("c", _image(3, (64, 64)))):
        if name == "b":
            image = iio.imread(folder / "b.jpg")  # JPEG: compare with what was decoded
        else:
            image = np.repeat(image[..., :1], 3, axis=-1)
        box = demo.box_from_image(image.shape[:2])
        alone = predictor(demo.crop_image(image, box, predictor.image_size)[None])
        with np.load(out / f"{name}.npz") as f:
            np.testing.assert_allclose(f["camera"], alone.camera[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(f["box"], box.xywh)


def test_the_run_s_own_body_file_is_used(run, smpl_arrays, tmp_path):
    """A run whose config names a SMPL file: the demo's meshes are that body's."""
    arrays = smpl_arrays(num_vertices=300, num_faces=300)
    arrays["f"] = (np.arange(300)[:, None] + [0, 1, 2]).astype(np.uint32) % 300  # uses all
    other = tmp_path / "other"
    shutil.copytree(run, other)
    smpl_jax.save_npz(arrays, tmp_path / "body.npz")
    np.save(tmp_path / "regressor.npy", np.full((17, 300), 1 / 300, np.float32))
    config = json.loads((other / "config.json").read_text())
    config["body_model"] = str(tmp_path / "body.npz")
    config["h36m_regressor"] = str(tmp_path / "regressor.npy")
    (other / "config.json").write_text(json.dumps(config))

    predictor = demo.Predictor.from_workdir(other)
    iio.imwrite(tmp_path / "p.png", _image())
    written, failed = demo.run_demo(predictor, [tmp_path / "p.png"], tmp_path / "out",
                                    render_size=RENDER)  # fmt: skip
    assert not failed and len(written[tmp_path / "p.png"]) == 5
    mesh = trimesh.load(tmp_path / "out" / "p.obj", process=False)
    assert mesh.vertices.shape == (300, 3)
    np.testing.assert_array_equal(mesh.faces, arrays["f"])


# ----------------------------------------------------------------------------- errors


def _fails(argv, capsys, message, out):
    assert demo_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert _files(out) == []


def test_errors_name_the_problem_and_leave_no_files(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_verbose", False)  # --verbose below: undone after the test
    iio.imwrite(tmp_path / "ok.png", _image())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "out"

    def args(image, *more, workdir=run):
        return ["--workdir", str(workdir), "--image", str(tmp_path / image), "--out", str(out),
                *more]  # fmt: skip

    _fails(args("broken.png"), capsys, f"cannot read image {tmp_path / 'broken.png'}", out)
    _fails(args("missing.png"), capsys, "missing.png does not exist", out)
    _fails(args("missing.png", "--verbose"), capsys, "Traceback", out)  # --verbose: with it
    _fails(args("ok.png", "--step", "4"), capsys, "no checkpoint step 4", out)
    _fails(args("ok.png", "--bbox", "500,20,30,30"), capsys, "lies outside the image", out)
    keypoints = tmp_path / "ok_keypoints.json"
    keypoints.write_text(json.dumps({"people": [{"pose_keypoints_2d": [10, 10, 0.1] * 25}]}))
    _fails(args("ok.png", "--openpose", str(keypoints)), capsys, "confidence > 0.2", out)
    _fails(args("ok.png", workdir=tmp_path / "nowhere"), capsys, "no run at", out)

    empty = tmp_path / "untrained"
    empty.mkdir()
    shutil.copy(run / "config.json", empty / "config.json")
    _fails(args("ok.png", workdir=empty), capsys, f"no checkpoint in {empty / 'checkpoints'}",
           out)  # fmt: skip
    assert _files(empty) == ["config.json"]  # nothing created in the run either

    other = tmp_path / "other"
    shutil.copytree(run, other)
    config = json.loads((other / "config.json").read_text())
    config["model"]["mean_params"]["num_betas"] = 11  # the checkpoint's shape net has 10
    (other / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="could not be restored"):
        _fails(
            args("ok.png", workdir=other), capsys, "config.json is not the one training wrote", out
        )


# ----------------------------------------------------------------------------- inputs


def test_read_image_converts_every_mode_to_rgb(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    bits = rng.random((6, 7)) > 0.5
    wide = rng.integers(0, 65536, (6, 7), dtype=np.uint16)
    wide[0, :3] = (0, 65535, 257)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    index = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    # CMYK: cyan, magenta, yellow and black at full strength, and nothing (white).
    cmyk = np.zeros((6, 7, 4), np.uint8)
    for i in range(4):
        cmyk[i, :, i] = 255
    p = Image.fromarray(index, "P")
    p.putpalette(palette.ravel().tolist())
    files = {
        "grey.png": (Image.fromarray(grey, "L"), np.repeat(grey[..., None], 3, -1)),
        "la.png": (Image.fromarray(np.stack([grey, alpha], -1), "LA"),
                   np.repeat(grey[..., None], 3, -1)),
        "rgba.png": (Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), rgb),
        "bits.png": (Image.fromarray(bits), np.repeat(bits[..., None] * 255, 3, -1)),
        "wide.png": (Image.fromarray(wide), np.repeat(
            np.rint(wide / 65535 * 255)[..., None], 3, -1)),
        "palette.png": (p, palette[index]),
        "cmyk.tif": (Image.fromarray(cmyk, "CMYK"), None),
    }  # fmt: skip
    for name, (image, _) in files.items():
        image.save(tmp_path / name, **({"transparency": 3} if name == "palette.png" else {}))
    assert Image.open(tmp_path / "bits.png").mode == "1"
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    assert "transparency" in Image.open(tmp_path / "palette.png").info
    for name, (_, expected) in files.items():
        image = demo.read_image(tmp_path / name)
        assert image.dtype == np.uint8 and image.shape == (6, 7, 3), name
        if expected is not None:
            np.testing.assert_array_equal(image, expected, err_msg=name)
    np.testing.assert_array_equal(demo.read_image(tmp_path / "wide.png")[0, :3, 0], [0, 255, 1])
    # CMYK as Pillow converts it: R = 255 - C - K, ... (clipped); row 4 is white.
    image = demo.read_image(tmp_path / "cmyk.tif")
    expected = [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 0), (255, 255, 255)]
    np.testing.assert_array_equal(image[:5, 0], expected)
    # A CMYK JPEG (Adobe's inverted storage, as Photoshop writes it) reads as its colours.
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    np.testing.assert_allclose(demo.read_image(tmp_path / "cmyk.jpg")[:5, 0], expected, atol=8)

    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes((tmp_path / "grey.png").read_bytes()[:60])
    for name in ("text.png", "cut.png"):
        with pytest.raises(demo.DemoError, match=f"cannot read image {tmp_path / name}") as e:
            demo.read_image(tmp_path / name)
        assert "uri" not in str(e.value) and "give a PNG or JPEG" in str(e.value)
    Image.fromarray(np.zeros((4, 4), np.float32), "F").save(tmp_path / "float.tif")
    with pytest.raises(demo.DemoError, match="floating point"):
        demo.read_image(tmp_path / "float.tif")


def test_output_names_never_collide():
    names = lambda files: demo.output_stems([Path("/in") / f for f in files])
    assert names(["ok.png", "ok.jpg", "ok_png.png"]) == ["ok.png", "ok.jpg", "ok_png"]
    assert names(["ok.png.jpg", "ok.png", "ok.jpg"]) == ["ok.png.jpg", "ok.png", "ok.jpg"]
    assert names(["A.png", "a.jpg", "b.png"]) == ["A.png", "a.jpg", "b"]
    assert names(["person.jpg"]) == ["person"]
    # Random folders over a tiny alphabet (many collisions): every output file is distinct,
    # also on a case-insensitive file system.
    rng = np.random.default_rng(0)
    parts = ["a", "A", "b", ".", "_", "png", "jpg", "_png", "_side", "_overlay"]
    for _ in range(300):
        files = {"".join(rng.choice(parts, rng.integers(1, 4))) + rng.choice([".png", ".jpg"])
                 for _ in range(rng.integers(1, 8))}  # fmt: skip
        files = sorted({f.casefold(): f for f in files}.values())  # one folder's names
        outputs = [o.casefold() for n in names(files) for o in demo.output_names(n).values()]
        assert len(outputs) == len(set(outputs)) == 5 * len(files), files


def test_colliding_stems_and_unusual_modes_in_a_folder(run, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    iio.imwrite(folder / "ok.png", _image(1))
    iio.imwrite(folder / "ok.jpg", _image(2))
    iio.imwrite(folder / "ok_png.png", _image(3))
    Image.fromarray(_image(4)).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(_image(5)[..., 0] > 100).save(folder / "bits.png")
    out = tmp_path / "out"
    argv = ["--workdir", str(run), "--image", str(folder), "--out", str(out),
            "--render_size", str(RENDER)]  # fmt: skip
    assert demo_cli.main(argv) == 0, capsys.readouterr().err
    assert "5 of 5 image(s) done" in capsys.readouterr().out
    assert len(list(out.iterdir())) == 25
    for name, image in (("ok.png", "ok.png"), ("ok.jpg", "ok.jpg"), ("ok_png", "ok_png.png"),
                        ("cmyk", "cmyk.jpg"), ("bits", "bits.png")):  # fmt: skip
        record = json.loads((out / f"{name}.json").read_text())
        assert record["image"] == str(folder / image)
        assert (out / f"{name}_overlay.png").is_file()

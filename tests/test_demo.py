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
import jax
import numpy as np
import pytest
import trimesh

import smpl_jax
from hkmr_jax import checkpoint, config_files, demo, train_lib

ROOT = Path(__file__).resolve().parents[1]
RENDER = 48  # --render_size in these tests: small pictures, quick to draw


def _smoke_config():
    config = config_files.get_config(ROOT / "configs" / "hkmr.py", "smoke")
    config.progress_bar = False
    config.evals = []
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A smoke run's workdir: config.json and a checkpoint at step 0."""
    config = _smoke_config()
    workdir = tmp_path_factory.mktemp("demo") / "run"
    train_lib.prepare_workdir(config, workdir, overwrite=False)
    trainer = train_lib.Trainer.create(config, train_lib.make_mesh(jax.devices()[:1]))
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints")
    ckpt.save(0, trainer.init_state())
    ckpt.close()
    return workdir


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


def test_write_all_leaves_nothing_when_a_file_fails(tmp_path):
    (tmp_path / "c.png" / "x").mkdir(parents=True)  # a folder where a file must go
    with pytest.raises(OSError):
        demo.write_all(tmp_path, {"a.obj": b"a", "b.npz": b"b", "c.png": b"c"})
    assert _files(tmp_path) == ["c.png", "x"]  # only what was there before


# ----------------------------------------------------------------------------- end to end


def test_one_image_writes_the_mesh_parameters_and_pictures(run, predictor, tmp_path):
    image = _image()
    iio.imwrite(tmp_path / "person.png", image)
    out = tmp_path / "out"
    argv = ["--workdir", str(run), "--image", str(tmp_path / "person.png"), "--out", str(out),
            "--bbox", "30,10,50,70", "--render_size", str(RENDER)]  # fmt: skip
    assert demo.main(argv) == 0
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
    assert demo.main(argv) == 1  # d.png failed
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
    assert demo.main(argv) != 0
    err = capsys.readouterr().err
    assert message in err, err
    assert _files(out) == []


def test_errors_name_the_problem_and_leave_no_files(run, tmp_path, capsys):
    iio.imwrite(tmp_path / "ok.png", _image())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "out"

    def args(image, *more, workdir=run):
        return ["--workdir", str(workdir), "--image", str(tmp_path / image), "--out", str(out),
                *more]  # fmt: skip

    _fails(args("broken.png"), capsys, f"cannot read image {tmp_path / 'broken.png'}", out)
    _fails(args("missing.png"), capsys, "missing.png does not exist", out)
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
        _fails(args("ok.png", workdir=other), capsys, "do not fit the model", out)

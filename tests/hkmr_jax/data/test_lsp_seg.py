"""SPIN-format LSP test data with UP-3D masks: stand-in files → build → records →
`lsp_seg` (in-process and through eval.py's `evaluate_run`), and the build's refusals.

The stand-in follows SPIN's `lsp_dataset_test.npz` (imgname, maskname, partname, center,
scale, part) with small images of different sizes, and single-channel PNG masks and part
maps (0-6, 255 = ignore) under `upi-s1h/data/lsp/`.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil

import imageio.v3 as iio
import jax.numpy as jnp
import numpy as np
import pytest

from hkmr_jax import config_files, eval_cli, eval_lib, eval_report, segmentation
from hkmr_jax.data import pipeline, spin_format
from hkmr_jax.models.params import RegressorOutput
from hkmr_jax.tools import lsp_seg_sheet
from smpl_jax import rotation, synthetic
from tests.hkmr_jax.test_segmentation import spin_scores  # SPIN's eval.py loop, transcribed

ROOT = pathlib.Path(__file__).resolve().parents[3]
# (H, W), box centre (x, y), scale per row: the second box runs past the image's corner.
ROWS = [((120, 160), (80.3, 60.2), 0.55), ((100, 90), (70.4, 80.6), 0.62),
        ((90, 130), (64.7, 44.1), 0.41)]  # fmt: skip


def _maps(shape, rng):
    """A true silhouette and part map: an ellipse of parts, a band of 255 (ignored)."""
    yy, xx = np.indices(shape)
    h, w = shape
    inside = ((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.2 * w)) ** 2 < 1
    parts = np.where(inside, 1 + (yy * 6 // h), 0).astype(np.uint8)
    parts[rng.random(shape) < 0.05] = 255
    mask = (inside * 255).astype(np.uint8)
    return mask, parts


def _write_lsp(root: pathlib.Path, rows=ROWS):
    rng = np.random.default_rng(0)
    (root / "dataset_extras").mkdir(parents=True)
    (root / "lsp_dataset" / "images").mkdir(parents=True)
    (root / "upi-s1h" / "data" / "lsp").mkdir(parents=True)
    names, masks, parts = [], [], []
    for i, (shape, _, _) in enumerate(rows):
        base = f"im{1001 + i:04d}"
        names.append(f"images/{base}.png")
        masks.append(f"data/lsp/{base}_segmentation.png")
        parts.append(f"data/lsp/{base}_part_segmentation.png")
        iio.imwrite(root / "lsp_dataset" / names[-1],
                    rng.integers(0, 255, (*shape, 3), dtype=np.uint8))  # fmt: skip
        mask, part = _maps(shape, rng)
        iio.imwrite(root / "upi-s1h" / masks[-1], mask)
        iio.imwrite(root / "upi-s1h" / parts[-1], part)
    part_kp = np.zeros((len(rows), 24, 3))
    np.savez(
        root / "dataset_extras" / "lsp_dataset_test.npz",
        imgname=names,
        maskname=masks,
        partname=parts,
        center=np.array([c for _, c, _ in rows]),
        scale=np.array([s for _, _, s in rows]),
        part=part_kp,
    )
    return names, masks, parts


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("spin_lsp")
    _write_lsp(root)
    return root


@pytest.fixture(scope="module")
def data_dir(manual_dir, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("tfds_lsp")
    spin_format.build("lsp", manual_dir, out, splits=["test"], num_workers=2)
    return out


def test_records_hold_the_masks_as_written(manual_dir, data_dir):
    source = spin_format.load_split("lsp", "test", data_dir)
    assert (data_dir / "spin_format" / "lsp" / "1.1.0").is_dir()
    with np.load(manual_dir / "dataset_extras" / "lsp_dataset_test.npz") as z:
        npz = dict(z)
    for i, (shape, center, scale) in enumerate(ROWS):
        record = source[i]
        example = spin_format.to_example(record, 0)
        mask = iio.imread(manual_dir / "upi-s1h" / npz["maskname"][i])
        parts = iio.imread(manual_dir / "upi-s1h" / npz["partname"][i])
        np.testing.assert_array_equal(example["seg_mask"], mask)
        np.testing.assert_array_equal(example["seg_parts"], parts)
        np.testing.assert_array_equal(example["orig_shape"], shape)
        np.testing.assert_allclose(example["center"], center, rtol=1e-6)
        np.testing.assert_allclose(example["scale"], scale, rtol=1e-6)
        assert example["image"].shape == (224, 224, 3)
    # The pipeline's source keeps them (the training stream keeps the contract only).
    ex = pipeline.make_source("lsp", "test", {"data_dir": str(data_dir)})[1]
    assert ex["seg_mask"].shape == ROWS[1][0]


def _constant(camera=(0.9, 0.02, 0.05)):
    pose = np.zeros((24, 3), np.float32)
    pose[0] = [np.pi, 0, 0]
    pose[16] = [0, 0, -1.0]
    rotmat = rotation.axis_angle_to_matrix(jnp.asarray(pose))
    betas = np.zeros(10, np.float32)

    def predict(images):
        b = images.shape[0]
        rep = lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (1, b, *np.shape(x)))
        return RegressorOutput(rep(pose), rep(rotmat), rep(betas), rep(camera))

    return predict, pose, betas, np.asarray(camera)


def test_lsp_seg_on_built_lsp_equals_render_uncrop_and_spins_loop(data_dir):
    body = synthetic.load_builtin()
    predict, pose, betas, camera = _constant()
    ctx = eval_lib.EvalContext(predict, body, synthetic.h36m_regressor(), batch_size=2)
    source = pipeline.make_source("lsp", "test", {"data_dir": str(data_dir)})
    result = eval_lib.run_evaluator("lsp_seg", ctx, source)
    assert result["num_examples"] == 3 and result["render_size"] == 224
    assert result["num_pixels"] == sum(h * w for (h, w), _, _ in ROWS)
    verts = np.asarray(body(betas=betas[None], body_pose=pose[None, 1:].reshape(1, -1),
                            global_orient=pose[None, 0]).vertices)[0]  # fmt: skip
    parts = segmentation.PartLabels.from_body(body)
    mask, labels = segmentation.render_parts(verts, body.faces, camera, parts, 224)
    examples = []
    for i in range(3):
        ex = source[i]
        box = ex["center"], ex["scale"], ex["seg_mask"].shape
        pred_mask = segmentation.uncrop(mask.astype(np.uint8), *box)
        pred_parts = segmentation.uncrop(labels, *box)
        assert pred_mask.any()  # the body lands in the image
        examples.append((pred_parts, ex["seg_parts"], pred_mask, ex["seg_mask"]))
    for key, value in spin_scores(examples).items():
        np.testing.assert_allclose(result[key], value, rtol=1e-9, err_msg=key)


@pytest.fixture(scope="module")
def smoke_run(untrained_run) -> pathlib.Path:
    """A smoke run's workdir at step 0 (the layout train.py writes, no training; conftest)."""
    return untrained_run


def test_eval_cli_writes_lsp_seg_for_lsp_and_synthetic(smoke_run, data_dir):
    config = config_files.get_config(ROOT / "configs" / "hkmr.py", "smoke")
    config.data.data_dir = str(data_dir)
    results = eval_cli.evaluate_run(config, smoke_run, ["lsp", "synthetic"],
                                    ["lsp_seg"], limit=3, batch_size=2)  # fmt: skip
    for name in ("lsp", "synthetic"):
        saved = json.loads((smoke_run / "eval" / f"{name}.json").read_text())
        assert saved == json.loads(json.dumps(results[name]))
        r = saved["lsp_seg"]
        assert set(r) >= {"fb_accuracy", "fb_f1", "parts_accuracy", "parts_f1",
                          "parts_f1_per_class", "num_examples", "num_pixels",
                          "seconds_per_image", "render_size", "part_source"}  # fmt: skip
        assert 0 <= r["fb_accuracy"] <= 100 and 0 <= r["parts_accuracy"] <= 100
        assert r["num_examples"] == 3 and saved["checkpoint_step"] == 0
    assert results["synthetic"]["lsp_seg"]["num_pixels"] == 3 * 32 * 32
    assert eval_cli.dataset_evaluators("lsp") == ("lsp_seg",)
    assert "lsp_seg" in eval_report.format_table(results)


def test_lsp_seg_refuses_data_without_masks(data_dir):
    body = synthetic.load_builtin()
    ctx = eval_lib.EvalContext(_constant()[0], body, synthetic.h36m_regressor(), 2)
    source = [{"image": np.zeros((32, 32, 3), np.uint8), "example_id": np.int64(7)}]
    with pytest.raises(ValueError, match="example 7 has no true segmentation"):
        eval_lib.run_evaluator("lsp_seg", ctx, source)


def _copy(manual_dir, tmp_path) -> pathlib.Path:
    bad = tmp_path / "manual"
    shutil.copytree(manual_dir, bad)
    return bad


def _assert_nothing_built(out):
    assert not (out / "spin_format" / "lsp" / "1.1.0").exists()
    assert not list((out / "spin_format" / "lsp").glob("*incomplete*"))


def test_build_refuses_bad_masks(manual_dir, tmp_path):
    # A mask of the wrong size: named, with both sizes.
    bad = _copy(manual_dir, tmp_path)
    wrong = bad / "upi-s1h" / "data" / "lsp" / "im1002_segmentation.png"
    iio.imwrite(wrong, np.zeros((10, 10), np.uint8))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape(f"{wrong} is 10×10 px but its image")):
        spin_format.build("lsp", bad, out, splits=["test"], num_workers=0)
    _assert_nothing_built(out)
    # An RGB part map: not single-channel.
    iio.imwrite(wrong, np.zeros((100, 90), np.uint8))
    rgb = bad / "upi-s1h" / "data" / "lsp" / "im1003_part_segmentation.png"
    iio.imwrite(rgb, np.zeros((90, 130, 3), np.uint8))
    with pytest.raises(ValueError, match=re.escape(f"{rgb} has PIL mode 'RGB'")):
        spin_format.build("lsp", bad, tmp_path / "out2", splits=["test"], num_workers=0)
    # A missing file: named before anything is written.
    rgb.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(rgb))):
        spin_format.build("lsp", bad, tmp_path / "out3", splits=["test"], num_workers=0)
    assert not (tmp_path / "out3" / "spin_format").exists()


def test_build_refuses_mask_paths_outside_the_mask_root(tmp_path):
    root = tmp_path / "manual"
    _write_lsp(root, ROWS[:1])
    npz = root / "dataset_extras" / "lsp_dataset_test.npz"
    with np.load(npz) as z:
        fields = dict(z)
    fields["maskname"] = np.array(["../../secret.png"])
    np.savez(npz, **fields)
    with pytest.raises(ValueError, match=r"maskname '\.\./\.\./secret\.png' must be a path inside"):
        spin_format.build("lsp", root, tmp_path / "out", splits=["test"], num_workers=0)


def test_contact_sheet_tool_draws_truth_and_predictions(smoke_run, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    config = str(ROOT / "configs" / "hkmr.py") + ":smoke"
    rc = lsp_seg_sheet.main(["--configs", config, "--workdirs", str(smoke_run), "--num", "2",
                            "--names", "smoke", "--out", str(out)])  # fmt: skip
    assert rc == 0 and "wrote" in capsys.readouterr().out
    sheet = iio.imread(out)
    assert sheet.shape == (2 * 64, 3 * 64, 3)  # 2 rows of image | truth | smoke, 32 px × 2
    truth = sheet[64:, 64:128]  # second row: no caption
    colours = {tuple(c) for c in truth.reshape(-1, 3)}
    assert colours <= {tuple(c) for c in lsp_seg_sheet.PALETTE} and len(colours) > 2
    with pytest.raises(SystemExit) as exit_info:
        lsp_seg_sheet.main(["--configs", config, "--workdirs", f"{smoke_run},{smoke_run}"])
    assert exit_info.value.code == 2
    assert "one config per workdir" in capsys.readouterr().err

"""What matters on a device, in one command: writes JSON and a markdown table.

    python benchmarks/device.py [--out benchmarks/results] [--body_model SMPL_NEUTRAL.pkl]
    python benchmarks/device.py --tiny        # tiny sizes: checks the script (tests, CPU)

On whatever device JAX sees (all local devices for training; one for the rest):

* SMPL layer bodies/s at B = 64, 512, 4096, forward and forward+backward (gradient of a
  scalar of the vertices w.r.t. pose and betas), float32; the built-in body (6,786
  vertices, SMPL's sizes otherwise) unless `--body_model` is given;
* training images/s of `configs/hkmr.py` default and paper, float32 and bfloat16
  (`config.model.compute_dtype`), the configured global batch over all devices, on a
  fixed random batch (the device's speed, not the input pipeline's:
  `benchmarks/input_pipeline.py` measures that); the paper variant from random weights,
  an untrained pose VAE and the built-in body (the arithmetic is the same);
* compile time of every jitted program (the first call, minus one timed call);
* SMPLify fits/s (SPIN's settings: 100 Adam steps per stage, VAE prior, batch 64);
* evaluation images/s of the paper model (eval mode, `eval_batch_size`);
* peak device memory (`device.memory_stats()['peak_bytes_in_use']`) where the backend
  reports it, else the process's peak resident memory (CPU).

Writes `OUT/device-<platform>.json` and `OUT/device-<platform>.md` and prints the table.
Each rate is timed until `--seconds` have passed (at least 3 calls) after a warm-up call.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import resource
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from smplify import _problem  # benchmarks/smplify.py's inputs (this script's folder)

import smpl_jax
from hkmr_jax import config_files, train_lib
from hkmr_jax.cli import report_errors
from hkmr_jax.fitting import smplify
from hkmr_jax.models.pose_prior import PoseVAE
from smpl_jax import atomic_files, synthetic

ROOT = pathlib.Path(__file__).resolve().parents[1]

# --tiny: sizes that exercise every measurement in seconds on a CPU.
TINY = {"smpl_batches": (4,), "smplify_batch": 4, "smplify_iters": 1, "train_steps": 1}
FULL = {"smpl_batches": (64, 512, 4096), "smplify_batch": 64, "smplify_iters": 100,
        "train_steps": 10}  # fmt: skip


def _timed(fn, seconds: float, min_calls: int = 3) -> tuple[float, float]:
    """(seconds of the first call, seconds per call after it) of `fn()` (which blocks)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or n < min_calls:
        fn()
        n += 1
    return first, elapsed / n


def peak_memory() -> tuple[float, str]:
    """(peak bytes, source): the first device's allocator peak, else the peak RSS."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return float(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process peak RSS"


def smpl_layer(body, batches, seconds) -> list[dict]:
    def forward(body, betas, pose):
        return body(betas=betas, body_pose=pose[:, 1:], global_orient=pose[:, 0]).vertices

    fwd = jax.jit(forward)
    fwd_bwd = jax.jit(jax.grad(lambda b, p, body: jnp.sum(forward(body, b, p) ** 2), (0, 1)))
    rows, rng = [], np.random.default_rng(0)
    for b in batches:
        betas = jnp.asarray(rng.normal(size=(b, 10)), jnp.float32)
        pose = jnp.asarray(rng.normal(size=(b, 24, 3)) * 0.3, jnp.float32)
        args = (betas, pose)
        first_f, t_f = _timed(lambda a=args: jax.block_until_ready(fwd(body, *a)), seconds)
        first_b, t_b = _timed(lambda a=args: jax.block_until_ready(fwd_bwd(*a, body)), seconds)
        rows.append({"batch": b, "forward_bodies_per_s": b / t_f,
                     "fwd_bwd_bodies_per_s": b / t_b, "compile_s_forward": first_f - t_f,
                     "compile_s_fwd_bwd": first_b - t_b})  # fmt: skip
    return rows


def _config(variant: str, dtype: str, tiny: bool):
    c = config_files.get_config(ROOT / "configs" / "hkmr.py", variant)
    c.model.compute_dtype = dtype
    c.model.encoder_init = None
    c.data.datasets = [{"name": "synthetic", "ratio": 1.0}]
    c.data.augment = None
    c.prior_checkpoint, c.progress_bar, c.evals = None, False, []
    if tiny:  # the variant's regressor and prior, tiny encoder and images
        c.model.encoder = {"name": "small_cnn", "widths": (8, 16), "bn_axis_name": None,
                           "flatten": None}  # fmt: skip
        c.model.regressor.embed_dim, c.model.regressor.outer_iters = 8, 1
        c.model.regressor.inner_iters = 1
        c.prior_vae = {"latent_dim": 4, "hidden_dim": 8}
        c.data.image_size, c.batch_size, c.eval_batch_size = 32, 8, 8
    return c


def _random_batch(config, n: int):
    """A fixed batch of `n` random examples in the pipeline's format (host arrays)."""
    rng, s = np.random.default_rng(0), int(config.data.image_size)
    joints = np.concatenate([rng.normal(0, 0.3, (n, 24, 3)), np.ones((n, 24, 1))], -1)
    keypoints = np.concatenate([rng.uniform(-1, 1, (n, 24, 2)), np.ones((n, 24, 1))], -1)
    return {
        "image": rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8),
        "keypoints": keypoints.astype(np.float32), "joints_3d": joints.astype(np.float32),
        "pose": rng.normal(0, 0.2, (n, 72)).astype(np.float32),
        "betas": rng.normal(0, 1, (n, 10)).astype(np.float32),
        "has_smpl": np.ones(n, np.float32), "has_3d": np.ones(n, np.float32),
        "dataset_id": np.zeros(n, np.int32), "example_id": np.arange(n, dtype=np.int64),
        "augment_rotation": np.zeros(n, np.float32), "augment_flip": np.zeros(n, np.float32),
    }  # fmt: skip


def training(variant, dtype, tiny, steps, seconds) -> tuple[dict, object]:
    """Training images/s of a variant and dtype; also returns the trainer and state."""
    config = _config(variant, dtype, tiny)
    mesh = train_lib.make_mesh()
    if tiny:  # divisible by any device count that the tests force
        config.batch_size = config.eval_batch_size = 8 * mesh.size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained pose VAE's warning
        trainer = train_lib.Trainer.create(config, mesh)
    batch = trainer.global_batch(_random_batch(config, int(config.batch_size)))
    state = trainer.init_state()
    t = time.perf_counter()
    state, metrics = trainer.step(state, batch)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - t
    n, t = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t) < seconds or n < steps:
        state, metrics = trainer.step(state, batch)
        n += 1
    jax.block_until_ready(metrics)
    elapsed = time.perf_counter() - t
    step_s = elapsed / n
    row = {"variant": variant, "dtype": dtype, "batch": int(config.batch_size),
           "devices": mesh.size, "image_size": int(config.data.image_size),
           "images_per_s": int(config.batch_size) / step_s, "step_s": step_s,
           "compile_s": first - step_s, "loss": float(metrics["loss"])}  # fmt: skip
    return row, (trainer, state, config)


def evaluation(trainer, state, config, seconds) -> dict:
    predict = trainer.predictor(state)
    n = int(config.eval_batch_size)
    images = jax.device_put(_random_batch(config, n)["image"])
    first, t = _timed(lambda: jax.block_until_ready(predict(images)), seconds)
    return {"variant": "paper", "batch": n, "images_per_s": n / t, "compile_s": first - t}


def smplify_fits(body, regressor, batch, iters, seconds) -> dict:
    config = smplify.SMPLifyConfig(num_iters=iters, pose_prior="vae")
    fitter = smplify.SMPLify.create(body, regressor, config, vae=PoseVAE(rngs=nnx.Rngs(0)))

    inputs = _problem(body, jnp.asarray(regressor), batch)
    first, t = _timed(lambda: jax.block_until_ready(fitter(*inputs)), seconds)
    return {"batch": batch, "iters_per_stage": iters, "fits_per_s": batch / t,
            "compile_s": first - t}  # fmt: skip


def markdown(result: dict) -> str:
    d = result["device"]
    lines = [f"Device: {d['kind']} × {d['count']} ({d['platform']}), JAX {d['jax']}, "
             f"{'tiny sizes' if result['tiny'] else 'full sizes'}.", "",
             "| SMPL layer, batch | forward bodies/s | fwd+bwd bodies/s | compile s (f / f+b) |",
             "|---|---|---|---|"]  # fmt: skip
    for r in result["smpl_layer"]:
        lines.append(f"| {r['batch']} | {r['forward_bodies_per_s']:,.0f} | "
                     f"{r['fwd_bwd_bodies_per_s']:,.0f} | {r['compile_s_forward']:.1f} / "
                     f"{r['compile_s_fwd_bwd']:.1f} |")  # fmt: skip
    lines += ["", "| training | dtype | global batch | px | images/s | s/step | compile s |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["training"]:
        lines.append(f"| {r['variant']} | {r['dtype']} | {r['batch']} | {r['image_size']} "
                     f"| {r['images_per_s']:,.1f} | {r['step_s']:.3f} "
                     f"| {r['compile_s']:.1f} |")  # fmt: skip
    e, f, m = result["evaluation"], result["smplify"], result["peak_memory"]
    lines += ["", "| other | rate | compile s |", "|---|---|---|",
              f"| evaluation, paper model, batch {e['batch']} | {e['images_per_s']:,.1f} "
              f"images/s | {e['compile_s']:.1f} |",
              f"| SMPLify, batch {f['batch']}, {f['iters_per_stage']} steps per stage | "
              f"{f['fits_per_s']:,.1f} fits/s | {f['compile_s']:.1f} |", "",
              f"Peak memory: {m['bytes'] / 2**20:,.0f} MiB ({m['source']})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                        help="folder for device-<platform>.json / .md")  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a quick check)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="time each rate this long (default 2; --tiny 0)")  # fmt: skip
    parser.add_argument("--body_model", help="a SMPL .pkl/.npz for the SMPL layer rows")
    args = parser.parse_args(argv)

    with report_errors("benchmarks/device.py"):
        sizes = TINY if args.tiny else FULL
        seconds = args.seconds if args.seconds is not None else (0.0 if args.tiny else 2.0)

        body = smpl_jax.load(args.body_model) if args.body_model else synthetic.load_builtin()
        devices = jax.devices()
        result = {
            "device": {
                "platform": jax.default_backend(),
                "kind": devices[0].device_kind,
                "count": len(devices),
                "jax": jax.__version__,
                "host": platform.node(),
            },
            "tiny": bool(args.tiny),
            "smpl_layer": smpl_layer(body, sizes["smpl_batches"], seconds),
            "training": [],
        }
        paper = None
        for variant in ("default", "paper"):
            for dtype in ("float32", "bfloat16"):
                row, run = training(variant, dtype, args.tiny, sizes["train_steps"], seconds)
                result["training"].append(row)
                if variant == "paper" and dtype == "float32":
                    paper = run
        result["evaluation"] = evaluation(*paper, seconds)
        builtin = synthetic.load_builtin()
        result["smplify"] = smplify_fits(builtin, jnp.asarray(synthetic.h36m_regressor()),
                                         sizes["smplify_batch"], sizes["smplify_iters"],
                                         seconds)  # fmt: skip
        peak, source = peak_memory()
        result["peak_memory"] = {"bytes": peak, "source": source}
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"device-{result['device']['platform']}{'-tiny' if args.tiny else ''}"
        table = markdown(result)
        atomic_files.write_text(stem.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
        atomic_files.write_text(stem.with_suffix(".md"), table)
        print(table + f"\nwritten: {stem}.json, {stem}.md")
        return result


if __name__ == "__main__":
    main()

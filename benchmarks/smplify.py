"""Fits per second of `hkmr_jax.fitting.smplify` (SPIN's SMPLify: camera step + body step).

    python benchmarks/smplify.py [--batch 64] [--iters 100] [--prior vae none gmm]
                                 [--model SMPL_NEUTRAL.pkl --regressor J_regressor_h36m.npy]

One fit = both of SPIN's stages of `--iters` Adam steps for one example, on the built-in
body unless a model and its Human3.6M regressor are given. The inputs are the built-in
synthetic dataset's poses and noiseless keypoints, the start perturbed; the prior's
parameters (an untrained VAE, a random 8-component GMM) do not change the arithmetic.
Timings exclude compilation (reported apart) and repeat until a second has passed.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import smpl_jax
from hkmr_jax import geometry
from hkmr_jax.data import synthetic as synthetic_data
from hkmr_jax.fitting import gmm as gmm_lib
from hkmr_jax.fitting import smplify
from hkmr_jax.models.pose_prior import PoseVAE
from smpl_jax import synthetic


def _problem(body, regressor, batch: int, seed: int = 0):
    """(keypoints, init pose, init betas, init camera translation) for `batch` people."""
    params = [
        synthetic_data.sample_parameters(np.random.default_rng([seed, i])) for i in range(batch)
    ]
    pose = jnp.asarray(np.stack([p["pose"] for p in params]))
    betas = jnp.asarray(np.stack([p["betas"] for p in params]))
    cam_t = geometry.weak_perspective_to_translation(
        jnp.tile(jnp.array([0.9, 0.0, 0.0]), (batch, 1))
    )
    vertices = body(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    joints, mask = geometry.j24_joints(vertices, regressor)
    xy = geometry.keypoints_to_normalised(geometry.perspective_projection(joints, cam_t))
    keypoints = jnp.concatenate(
        [xy, jnp.broadcast_to(jnp.asarray(mask)[:, None], (batch, 24, 1))], -1
    )
    rng = np.random.default_rng(seed)
    init_pose = pose + jnp.asarray(rng.normal(size=pose.shape) * 0.2, pose.dtype)
    init_betas = betas + jnp.asarray(rng.normal(size=betas.shape) * 0.5, betas.dtype)
    return keypoints, init_pose, init_betas, cam_t * jnp.array([1.0, 1.0, 1.05])


def _random_gmm(seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(8, 69, 69)) * 0.1
    return gmm_lib.gmm_from_arrays(
        rng.normal(size=(8, 69)) * 0.2,
        a @ a.transpose(0, 2, 1) + 0.05 * np.eye(69),
        np.full(8, 1 / 8),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a SMPL .pkl/.npz; default: the built-in body")
    parser.add_argument("--regressor", help="its [17, V] Human3.6M regressor (.npy)")
    parser.add_argument("--batch", type=int, nargs="+", default=[64])
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--prior", nargs="+", default=["vae"], choices=["vae", "gmm", "none"])
    args = parser.parse_args(argv)
    if bool(args.model) != bool(args.regressor):
        parser.error("--model and --regressor go together")
    if args.model:
        body, regressor = (
            smpl_jax.load(args.model),
            jnp.asarray(np.load(args.regressor), jnp.float32),
        )
    else:
        body, regressor = synthetic.load_builtin(), jnp.asarray(synthetic.h36m_regressor())

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"model: {args.model or 'built-in body'}, {args.iters} iterations per stage")  # fmt: skip
    print(f"{'prior':>6} {'batch':>6} {'fits/s':>9} {'s/batch':>9} {'compile s':>10} "
          f"{'mean px err':>12}")  # fmt: skip
    for prior in args.prior:
        config = smplify.SMPLifyConfig(num_iters=args.iters, pose_prior=prior)
        fitter = smplify.SMPLify.create(
            body, regressor, config,
            vae=PoseVAE(rngs=nnx.Rngs(0)) if prior == "vae" else None,
            gmm=_random_gmm() if prior == "gmm" else None,
        )  # fmt: skip
        for b in args.batch:
            inputs = _problem(body, regressor, b)
            start = time.perf_counter()
            result = jax.block_until_ready(fitter(*inputs))
            first = time.perf_counter() - start
            n, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < 1.0 or n < 3:
                jax.block_until_ready(fitter(*inputs))
                n += 1
            per_batch = elapsed / n
            px = float(result.pixel_error.mean())
            print(f"{prior:>6} {b:>6} {b / per_batch:>9,.1f} {per_batch:>9.3f} "
                  f"{first - per_batch:>10.1f} {px:>12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

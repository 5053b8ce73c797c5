"""How fast an encoder learns the built-in data: 2D keypoints regressed from Φ alone.

    python benchmarks/encoder_probe.py [--widths 16,32,64,128] [--flatten 4] \\
        [--yaw_range 360 --pose_spread 0.3333] \\
        [--steps 2000] [--learning_rate 2e-3] [--cache /tmp/hkmr_probe]

A probe of the default run's bottleneck on the full pose law (README, "What limits
it"): the `SmallCNN` encoder of `configs/hkmr.py` with one dense layer on Φ is trained
(Adam, batch 32, L1) to predict the 24 J24 keypoints of 64 px synthetic crops (of the
law given, by default the dataset's), without SMPL, camera or regressor. The mean
keypoint error on 512 test crops, in pixels (confidence-weighted, per coordinate),
is printed every 500 steps next to the error of always predicting the training set's
mean keypoints. Training images are rendered once into `--cache` (48,000 by default,
about 4 minutes on 2 cores) and reused by later runs.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from hkmr_jax import inference
from hkmr_jax.data import synthetic
from hkmr_jax.models import encoder as encoder_lib

SIZE = 64
NUM_TEST = 512


class KeypointProbe(nnx.Module):
    """SmallCNN → dense → [B, 24, 2] keypoints in the crop's [-1, 1] coordinates."""

    def __init__(self, widths, flatten, *, rngs: nnx.Rngs):
        self.encoder = encoder_lib.SmallCNN(widths, flatten=flatten, rngs=rngs)
        self.head = nnx.Linear(self.encoder.feature_dim, 48, rngs=rngs)

    def __call__(self, images):
        return self.head(self.encoder(inference.normalize_images(images))).reshape(-1, 24, 2)


def pixel_error(pred, keypoints):
    """Confidence-weighted mean |error| per coordinate, in pixels of a SIZE crop."""
    conf = keypoints[..., 2:]
    return jnp.sum(jnp.abs(pred - keypoints[..., :2]) * conf) / jnp.sum(conf) / 2 * SIZE / 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="16,32,64,128")
    parser.add_argument("--flatten", type=int, default=None)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--train_size", type=int, default=48_000)
    parser.add_argument("--cache", default="/tmp/hkmr_probe")
    parser.add_argument("--yaw_range", type=float, default=synthetic.YAW_RANGE_DEG,
                        help="the data's pose law (360 and 1/3: the full law)")  # fmt: skip
    parser.add_argument("--pose_spread", type=float, default=synthetic.POSE_SPREAD)
    args = parser.parse_args()
    law = dict(yaw_range=args.yaw_range, pose_spread=args.pose_spread)
    tag = f"yaw{args.yaw_range!r}_spread{args.pose_spread!r}"  # exact: one cache per law
    cache = pathlib.Path(args.cache)
    train = synthetic.SyntheticDataset("train", size=SIZE, **law)
    train = synthetic.cache(cache / f"train{SIZE}_{args.train_size}_{tag}", train,
                            args.train_size)  # fmt: skip
    test = synthetic.SyntheticDataset("test", size=SIZE, **law)
    test = synthetic.cache(cache / f"test{SIZE}_{NUM_TEST}_{tag}", test, NUM_TEST)
    load = lambda path, key: np.load(path / f"{key}.npy", mmap_mode="r")
    images, keypoints = load(train, "image"), load(train, "keypoints")
    test_images, test_keypoints = np.asarray(load(test, "image")), load(test, "keypoints")

    widths = tuple(int(w) for w in args.widths.split(","))
    probe = KeypointProbe(widths, args.flatten, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(probe, optax.adam(args.learning_rate), wrt=nnx.Param)

    @nnx.jit
    def step(probe, optimizer, images, keypoints):
        loss, grads = nnx.value_and_grad(lambda p: pixel_error(p(images), keypoints))(probe)
        optimizer.update(probe, grads)
        return loss

    @nnx.jit
    def predict(probe, images):
        return probe(images)

    sample = np.asarray(keypoints[:4096])
    mean = (sample[..., :2] * sample[..., 2:]).sum(0) / np.maximum(sample[..., 2:].sum(0), 1e-6)
    test_kp = jnp.asarray(test_keypoints)
    baseline = pixel_error(jnp.broadcast_to(mean, test_kp[..., :2].shape), test_kp)
    print(f"widths {widths}, flatten {args.flatten}, lr {args.learning_rate}: "
          f"mean-keypoint baseline {float(baseline):.2f} px")  # fmt: skip
    rng, start = np.random.default_rng(0), time.perf_counter()
    for i in range(1, args.steps + 1):
        idx = np.sort(rng.choice(len(images), 32, replace=False))
        loss = step(probe, optimizer, jnp.asarray(images[idx]), jnp.asarray(keypoints[idx]))
        if i % 500 == 0 or i == args.steps:
            probe.eval()
            pred = jnp.concatenate([predict(probe, jnp.asarray(test_images[j : j + 64]))
                                    for j in range(0, NUM_TEST, 64)])  # fmt: skip
            probe.train()
            print(f"step {i}: train {float(loss):.2f} px, test "
                  f"{float(pixel_error(pred, test_kp)):.2f} px, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

"""HKMR_MF (paper Tables 4-5): HKMR trained SPIN's way, with SMPLify in the loop.

The regressor's estimate starts a SMPLify fit to the 2D keypoints (`hkmr_jax.fitting.smplify`);
the best fit of every example is kept (`hkmr_jax.fitting.fit_store`, checkpointed with the run)
and supervises pose and shape where the example has no SMPL ground truth and the fit
reprojects within SPIN's threshold (`hkmr_jax.fitting.targets.fit_targets`).

* default — the built-in data, half with full labels ('synthetic') and half with 2D
  keypoints only ('synthetic_2d', 5,000 people, each seen ~5 times), the default HKMR
  of `configs/hkmr.py` for 1,500 steps (SMPLify makes a step ~2× dearer on CPU), SMPLify
  with 20 Adam steps per stage (SPIN: 100; CPU-sized) and the pose VAE as its prior (and
  L_KL):

      python train.py --config configs/hkmr_spin.py --workdir runs/hkmr_spin

* nofit — the same data and model without fitting: the HKMR baseline it is compared with
  (README, "SMPLify in the loop"):

      python train.py --config configs/hkmr_spin.py:nofit --workdir runs/hkmr_nofit

* smoke — tiny, for tests.

* paper — `configs/hkmr.py:paper` with fitting on and SPIN's 100 steps, and SPIN's
  augmentation (stored fits follow each batch's rotation and flip, as SPIN's FitsDict).
"""

import pathlib

from hkmr_jax import config_files

VARIANTS = ("default", "nofit", "smoke", "paper")


def get_config(arg: str | None = None, regressor_name: str = "hkmr"):
    """`arg`: None or one of VARIANTS."""
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"unknown config variant {variant!r}; choose one of {VARIANTS}.")
    base = {"nofit": "default"}.get(variant, variant)
    c = config_files.get_config(
        pathlib.Path(__file__).with_name("hkmr.py"), base, regressor_name=regressor_name
    )
    c.fitting.enabled = variant != "nofit"
    c.prior = "vae"  # SMPLify's pose prior (and L_KL)
    if variant == "paper":
        return c
    c.data.datasets = [dict(name="synthetic", ratio=0.5), dict(name="synthetic_2d", ratio=0.5)]
    if variant == "smoke":
        c.data.synthetic_2d_length = 16
        c.fitting.smplify.num_iters = 2
        c.prior_training.num_steps = 4
        c.prior_training.batch_size = 16
        c.prior_vae = dict(latent_dim=8, hidden_dim=16)
    else:
        c.fitting.smplify.num_iters = 20
        c.num_steps = 1500
        c.data.synthetic_2d_length = 5_000  # revisited: fits improve over visits
    return c

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

* spin_mix — paper Table 4 on the built-in data, with SPIN's proportions: a quarter of
  every batch fully labelled and three quarters 2D keypoints only (8 + 24 of 32), and
  SPIN's 100 SMPLify steps per stage; otherwise `default` (the same 5,000 2D-only people,
  now seen ~7 times each). SPIN samples 30 % Human3.6M (SMPL labels), 60 % in-the-wild 2D
  datasets and 10 % MPI-INF-3DHP (3D joints, no SMPL): 70 % of its examples get their
  pose and shape only from fits. The built-in data has no 3D-joints-only people, so
  those 10 % join the 2D-only share, rounded to quarters so that every batch holds the
  same counts; `default`'s half-labelled batches leave the fits little to add.

      python train.py --config configs/hkmr_spin.py:spin_mix --workdir runs/hkmr_spin_mix

* spin_mix_nofit — `spin_mix` without fitting, its baseline.

* smoke — tiny, for tests.

* paper — `configs/hkmr.py:paper` with fitting on and SPIN's 100 steps, and SPIN's
  augmentation (stored fits follow each batch's rotation and flip, as SPIN's FitsDict).
"""

import pathlib

from hkmr_jax import config_files

VARIANTS = ("default", "nofit", "smoke", "paper", "spin_mix", "spin_mix_nofit")


def get_config(arg: str | None = None, regressor_name: str = "hkmr"):
    """`arg`: None or one of VARIANTS."""
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"unknown config variant {variant!r}; choose one of {VARIANTS}.")
    base = variant if variant in ("smoke", "paper") else "default"
    c = config_files.get_config(
        pathlib.Path(__file__).with_name("hkmr.py"), base, regressor_name=regressor_name
    )
    c.fitting.enabled = variant not in ("nofit", "spin_mix_nofit")
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
    if variant in ("spin_mix", "spin_mix_nofit"):
        c.data.datasets = [
            dict(name="synthetic", ratio=0.25),
            dict(name="synthetic_2d", ratio=0.75),
        ]
        c.fitting.smplify.num_iters = 100  # SPIN's, per stage
    return c

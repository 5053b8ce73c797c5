"""The pose VAE prior (paper §3.2), trained alone; HKMR's `config.prior_checkpoint` then
points to `WORKDIR/params`.

* default — the built-in dataset's pose distribution (a minute or two on 2 CPU cores):

      python train.py --config configs/pose_prior.py --workdir runs/pose_vae

* amass — AMASS sequences (SMPL-H `*_poses.npz`, as the paper's MoSh poses):

      python train.py --config configs/pose_prior.py:amass --workdir runs/pose_vae_amass \\
          --config.data.amass_glob='~/amass/**/*_poses.npz'

* smoke — a few steps, for tests.

The HKMR configs train the default variant at the start of a run when `prior='vae'` and
no `prior_checkpoint` is given (into `WORKDIR/pose_prior/`), with their own
`prior_vae`. Fields: `configs/common.py`'s `pose_prior_training`.
"""

import pathlib

from hkmr_jax import config_files

common = config_files.load_module(pathlib.Path(__file__).with_name("common.py"))

VARIANTS = ("default", "amass", "smoke")


def get_config(arg: str | None = None):
    """`arg`: None or 'default', 'amass', 'smoke'."""
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"unknown config variant {variant!r}; choose one of {VARIANTS}.")
    c = common.pose_prior_training()
    c.prior_vae = dict(latent_dim=32, hidden_dim=512)  # the HKMR configs' prior_vae
    if variant == "amass":
        c.data.source = "amass"
        c.num_steps = 100_000  # VPoser trains for ~100 epochs of a much larger set
    elif variant == "smoke":
        c.batch_size = 16
        c.num_steps = 8
        c.log_every = 4
        c.num_validation = 64
    return c

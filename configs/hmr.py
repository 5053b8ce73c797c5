"""The HMR baseline (Kanazawa et al., CVPR 2018; iterative error feedback) with the same
encoder, data, losses and optimiser as `configs/hkmr.py`; only the regressor differs.

Variants, as for HKMR:

    python train.py --config configs/hmr.py --workdir runs/hmr               # ~15 min, CPU
    python train.py --config configs/hmr.py:smoke --workdir runs/hmr_smoke   # CI-sized
    python train.py --config configs/hmr.py:paper --workdir runs/hmr_paper \\
        --config.body_model=SMPL_NEUTRAL.pkl --config.h36m_regressor=J_regressor_h36m.npy \\
        --config.model.encoder_init=resnet50-0676ba61.pth \\
        --config.data.data_dir=~/tensorflow_datasets --config.prior_checkpoint=runs/pose_vae/params

Regressor: [Φ, Θ, β, cam] → 1024 → 1024 → residual, 3 iterations, dropout 0.5 (HMR's
code) in `paper`; 256 wide in `default`, 16 in `smoke`.
"""

import pathlib

from hkmr_jax import config_files


def get_config(arg=None):
    """`arg`: None or 'default', 'smoke', 'paper' (see `configs/hkmr.py`)."""
    # Config files are loaded by path (ml_collections), not as a package: load the sibling.
    return config_files.get_config(
        pathlib.Path(__file__).with_name("hkmr.py"), arg, regressor_name="hmr"
    )

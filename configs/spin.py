"""SPIN (Kolotouros et al., ICCV 2019): the HMR regressor with SMPLify in the loop; the
baseline of HKMR_MF. The same variants as `configs/hkmr_spin.py`:

    python train.py --config configs/spin.py --workdir runs/spin
    python train.py --config configs/spin.py:paper --workdir runs/spin_paper ...
"""

import pathlib

from hkmr_jax import config_files


def get_config(arg=None):
    """`arg`: None or one of `configs/hkmr_spin.py`'s VARIANTS."""
    path = pathlib.Path(__file__).with_name("hkmr_spin.py")
    return config_files.get_config(path, arg, regressor_name="hmr")

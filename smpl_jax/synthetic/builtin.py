"""The built-in body (`generate(0)`): cached as an `.npz` on first use, loaded from there.

The cache folder is `$SMPL_JAX_CACHE`, else `~/.cache/smpl_jax/`; the file name carries
`GENERATOR_VERSION`, so a changed generator never reads a stale file.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from smpl_jax import io
from smpl_jax.synthetic.generator import GENERATOR_VERSION, generate


def _cache_dir() -> pathlib.Path:
    env = os.environ.get("SMPL_JAX_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "smpl_jax"


def builtin_path() -> pathlib.Path:
    """Path of the built-in body as an `.npz`, generated and cached on first use.

    Written under a temporary name in the cache folder and renamed into place
    (`smpl_jax.io.save_npz`), so concurrent first uses and interrupted writes never leave
    a partial file under the final name.
    """
    path = _cache_dir() / f"smpl_jax_synthetic_v{GENERATOR_VERSION}.npz"
    if not path.is_file():
        try:
            io.save_npz(generate(0), path)
        except OSError as e:
            raise OSError(
                f"cannot write the built-in body to {path} ({e}); point the environment "
                "variable SMPL_JAX_CACHE at a writable folder."
            ) from e
    return path


def load_builtin(num_betas: int = 10, dtype=None):
    """The built-in body as an `SMPL` model (`smpl_jax.load` of `builtin_path()`).

    Args:
      num_betas: shape components to keep, 1…10.
      dtype: float32 (default, `None`) or float64 (needs `jax_enable_x64`).
    """
    kwargs = {} if dtype is None else {"dtype": dtype}
    return io.load(builtin_path(), num_betas=num_betas, **kwargs)


def h36m_regressor(dtype=np.float32) -> np.ndarray:
    """The built-in body's Human3.6M regressor [17, V], SPIN's joint order."""
    with np.load(builtin_path()) as f:
        return f["J_regressor_h36m"].astype(dtype)

"""The built-in synthetic dataset: rendered people with exact SMPL and joint labels.

The project's default dataset. `SyntheticDataset` renders example ``i`` of a split as a
pure function of ``(seed, split, i)`` and the pose law (`pose_law`); `cache` and
`CachedDataset` render a split once and read it back. Labels, pose law, appearance,
determinism and batching: docs/synthetic_data.md. Contact sheet: `hkmr_jax.tools.synthetic_sheet`.
"""

from hkmr_jax.data.synthetic.cache import CACHE_VERSION, CachedDataset, cache
from hkmr_jax.data.synthetic.dataset import (
    BETA_CLIP,
    DEFAULT_LENGTH,
    FILL_RANGE,
    J24_MASK,
    J24_PARENTS,
    MAX_SIZE,
    MIN_SIZE,
    OFFSET_MAX,
    SPLITS,
    SyntheticDataset,
    sample_parameters,
)
from hkmr_jax.data.synthetic.pose_law import (
    PITCH_MAX_DEG,
    PITCH_SIGMA_DEG,
    POSE_LIMITS_DEG,
    POSE_SPREAD,
    ROLL_MAX_DEG,
    ROLL_SIGMA_DEG,
    YAW_RANGE_DEG,
    check_pose_law,
    global_orientation,
    mean_body_pose,
    pose_limits,
    sample_body_poses,
)

__all__ = [
    "BETA_CLIP",
    "CACHE_VERSION",
    "DEFAULT_LENGTH",
    "FILL_RANGE",
    "J24_MASK",
    "J24_PARENTS",
    "MAX_SIZE",
    "MIN_SIZE",
    "OFFSET_MAX",
    "PITCH_MAX_DEG",
    "PITCH_SIGMA_DEG",
    "POSE_LIMITS_DEG",
    "POSE_SPREAD",
    "ROLL_MAX_DEG",
    "ROLL_SIGMA_DEG",
    "SPLITS",
    "YAW_RANGE_DEG",
    "CachedDataset",
    "SyntheticDataset",
    "cache",
    "check_pose_law",
    "global_orientation",
    "mean_body_pose",
    "pose_limits",
    "sample_body_poses",
    "sample_parameters",
]

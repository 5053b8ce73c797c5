"""The example every data source yields (docs/CONTRACT_data.md), for the data tests."""

import numpy as np


def example_contract(size: int) -> dict[str, tuple[type, tuple[int, ...]]]:
    """key → (dtype, shape) of one example whose crops are `size` px square."""
    return {
        "image": (np.uint8, (size, size, 3)),
        "keypoints": (np.float32, (24, 3)),
        "joints_3d": (np.float32, (24, 4)),
        "pose": (np.float32, (72,)),
        "betas": (np.float32, (10,)),
        "has_smpl": (np.float32, ()),
        "has_3d": (np.float32, ()),
        "dataset_id": (np.int32, ()),
        "example_id": (np.int64, ()),
    }

"""The SMPL skeleton: joint names, parents, HKMR chains, and dataset joint orders.

Everything here is plain Python / NumPy data: static structure that never enters a
traced computation as an array.
"""

from __future__ import annotations

import numpy as np

#: SMPL's 24 joints, in the order of the official model files.
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip

NUM_JOINTS = 24

#: Parent of each SMPL joint (-1 for the root), as in `kintree_table[0]`.
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip

#: The six kinematic chains of HKMR (paper §3.2), root first, each ordered from the
#: joint nearest the root outwards. Every SMPL joint belongs to exactly one chain.
CHAINS: dict[str, tuple[int, ...]] = {
    "root": (0, 3, 6, 9),
    "head": (12, 15),
    "left_arm": (13, 16, 18, 20, 22),
    "right_arm": (14, 17, 19, 21, 23),
    "left_leg": (1, 4, 7, 10),
    "right_leg": (2, 5, 8, 11),
}

#: SPIN's six body parts for its LSP segmentation evaluation, label = index (0 is the
#: background): the label order of SPIN's part renderer ("left" is the person's left).
PART_NAMES: tuple[str, ...] = (
    "background", "left_arm", "right_arm", "head", "left_leg", "right_leg", "torso",
)  # fmt: skip

#: Which part each joint's skinning region belongs to. The neck goes with the head; the
#: pelvis, spine and collar bones (the tops of the shoulders) are the torso; an arm
#: starts at its shoulder joint (the upper arm) and a leg at its hip joint (the thigh).
JOINT_TO_PART: dict[str, str] = {
    "pelvis": "torso", "spine1": "torso", "spine2": "torso", "spine3": "torso",
    "left_collar": "torso", "right_collar": "torso",
    "neck": "head", "head": "head",
    "left_shoulder": "left_arm", "left_elbow": "left_arm", "left_wrist": "left_arm",
    "left_hand": "left_arm",
    "right_shoulder": "right_arm", "right_elbow": "right_arm", "right_wrist": "right_arm",
    "right_hand": "right_arm",
    "left_hip": "left_leg", "left_knee": "left_leg", "left_ankle": "left_leg",
    "left_foot": "left_leg",
    "right_hip": "right_leg", "right_knee": "right_leg", "right_ankle": "right_leg",
    "right_foot": "right_leg",
}  # fmt: skip


def vertex_parts(weights) -> np.ndarray:
    """uint8 [V] part label (1…6, `PART_NAMES`) of each vertex of a SMPL-format body:
    the part (`JOINT_TO_PART`) of its dominant skinning joint.

    Args:
      weights: [V, 24] skinning weights in `JOINT_NAMES` order.
    """
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != NUM_JOINTS:
        raise ValueError(
            f"skinning weights must be [V, {NUM_JOINTS}] (SMPL's joints), got "
            f"{list(weights.shape)}."
        )
    table = np.array([PART_NAMES.index(JOINT_TO_PART[n]) for n in JOINT_NAMES], np.uint8)
    return table[np.argmax(weights, axis=1)]


#: Joint order of Human3.6M's 17-joint regressor as used by SPIN (`J_regressor_h36m.npy`).
#: SPIN's evaluation reads joints 4-6 as the right leg (`H36M_TO_J14 = [6, 5, 4, ...]`).
H36M_17_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee",
    "right_ankle", "spine", "thorax", "neck", "head_top", "left_shoulder",
    "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)  # fmt: skip

#: The 14 LSP joints, the order in which SPIN and HMR report errors.
LSP_14_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist", "neck", "head_top",
)  # fmt: skip

#: SPIN's 24-joint keypoint order (`part`, `S` in SPIN's dataset files).
J24_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist", "neck", "head_top", "pelvis", "thorax", "spine", "jaw", "head",
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
)  # fmt: skip

#: Where each H36M-17 joint goes in J24 (SPIN's `global_idx` in its H36M preprocessing).
H36M_TO_J24: tuple[int, ...] = (14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6)

#: H36M-17 → LSP-14 (SPIN's `H36M_TO_J14`).
H36M_TO_J14: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
#: SPIN's 24-joint keypoint order → LSP-14 (SPIN's `J24_TO_J14`).
J24_TO_J14: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18)


def _mirror_permutation(names: tuple[str, ...]) -> tuple[int, ...]:
    """Index of each joint's mirror image (left ↔ right; centre joints map to themselves)."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for n in names:
        if n.startswith("left_"):
            out.append(index["right_" + n[5:]])
        elif n.startswith("right_"):
            out.append(index["left_" + n[6:]])
        else:
            out.append(index[n])
    return tuple(out)


#: Left/right permutations used when an image is flipped horizontally.
FLIP_PERMUTATION: tuple[int, ...] = _mirror_permutation(JOINT_NAMES)
H36M_17_FLIP_PERMUTATION: tuple[int, ...] = _mirror_permutation(H36M_17_NAMES)
LSP_14_FLIP_PERMUTATION: tuple[int, ...] = _mirror_permutation(LSP_14_NAMES)
J24_FLIP_PERMUTATION: tuple[int, ...] = _mirror_permutation(J24_NAMES)


def validate_parents(parents, num_joints: int | None = None, *, source: str = "parents"):
    """Check that `parents` describes a tree rooted at joint 0, parents before children.

    Args:
      parents: sequence of ints, parent index per joint, -1 for the root.
      num_joints: expected length, if known.
      source: name used in error messages (e.g. the file the tree came from).

    Returns:
      The parents as a tuple of Python ints.

    Raises:
      ValueError: naming `source` and the offending joint.
    """
    parents = tuple(int(p) for p in np.asarray(parents).reshape(-1))
    if num_joints is not None and len(parents) != num_joints:
        raise ValueError(f"{source}: expected {num_joints} parents, got {len(parents)}.")
    if not parents or parents[0] != -1:
        raise ValueError(f"{source}: joint 0 must be the root (parent -1), got {parents[:1]}.")
    for j, p in enumerate(parents[1:], start=1):
        if not 0 <= p < j:
            raise ValueError(
                f"{source}: joint {j} has parent {p}; the kinematic tree must list every "
                "parent before its children, with a single root at joint 0."
            )
    return parents


def tree_levels(parents) -> tuple[tuple[int, ...], ...]:
    """Group joints by depth: level 0 is the root, level k the joints k edges below it.

    Forward kinematics walks these levels (SMPL: 9), each one a batched operation, rather
    than the 24 joints one by one.
    """
    depth = [0] * len(parents)
    for j, p in enumerate(parents):
        depth[j] = 0 if p < 0 else depth[p] + 1
    return tuple(
        tuple(j for j in range(len(parents)) if depth[j] == d) for d in range(max(depth) + 1)
    )

"""The synthetic body's generator: a redistributable model in SMPL's format, from code.

`generate(seed)` builds a smooth, closed mannequin with SMPL's 24-joint skeleton, file
keys, shapes, axes and rest pose from a few hundred numbers written here: a quad cage,
two Catmull-Clark steps, hand-placed joints with regressors that reproduce them, smooth
skinning weights, pose correctives and ten named shape directions. It is **not SMPL**
and not derived from SMPL data. How it is made, the betas and the stature:
docs/synthetic_body.md.
"""

from __future__ import annotations

import numpy as np

from smpl_jax import skeleton

#: Bump whenever `generate` changes its output: the cache file name contains it.
GENERATOR_VERSION = 1

NUM_BETAS = 10
_ROOT = np.iinfo(np.uint32).max  # the root's parent as the official files store it

# ---------------------------------------------------------------------------------------
# Design of the canonical body (betas = 0), left side (+x) only; the right side is its
# mirror image. Metres, SMPL axes.

# Torso: a box lattice of _NX × _NY × _NZ cells; level j has a cross-section ellipse.
_NX, _NY, _NZ = 6, 6, 4
# Per level: y, half-width W (x), front half-depth Df (+z), back half-depth Db, centre z.
_LEVELS = np.array([
    [-0.390, 0.155, 0.100, 0.110, 0.000],  # 0 crotch (legs leave the bottom face)
    [-0.290, 0.170, 0.105, 0.128, 0.000],  # 1 hips and buttocks
    [-0.150, 0.146, 0.100, 0.095, 0.000],  # 2 waist
    [-0.020, 0.152, 0.112, 0.100, 0.000],  # 3 lower chest
    [0.100, 0.166, 0.118, 0.106, -0.005],  # 4 chest, armpits
    [0.190, 0.178, 0.100, 0.100, -0.010],  # 5 shoulders
    [0.265, 0.165, 0.072, 0.082, -0.015],  # 6 shoulder tops (arms leave rows 4-6)
])  # fmt: skip
_TOP_LIFT = 0.045  # the top face rises towards the neck (trapezius)

# Limbs: ring centres, radii (along u, along w) and ring frames (u, w; ring normal u × w).
_X, _Y, _Z = np.eye(3)
_DOWN_FWD = np.array([0.0, 1.0, 1.0]) / np.sqrt(2.0)  # the heel ring leans forward


def _limb(rows, frames):
    rows = np.asarray(rows, dtype=np.float64)
    return {"c": rows[:, :3], "r": rows[:, 3:5], "u": np.array([f[0] for f in frames]),
            "w": np.array([f[1] for f in frames])}  # fmt: skip


_LEG = _limb(
    [[0.094, -0.470, 0.008, 0.084, 0.098],   # upper thigh
     [0.098, -0.725, 0.012, 0.060, 0.064],   # knee
     [0.096, -0.860, -0.006, 0.060, 0.068],  # calf
     [0.092, -1.030, -0.022, 0.040, 0.045],  # above the ankle
     [0.093, -1.150, -0.020, 0.048, 0.082],  # heel (ring leaning forward)
     [0.101, -1.165, 0.075, 0.052, 0.040],   # mid foot
     [0.110, -1.180, 0.150, 0.048, 0.024]],  # toes
    [(_X, _Z)] * 4 + [(_X, _DOWN_FWD)] + [(_X, _Y)] * 2,
)  # fmt: skip
_LEG_CAP = np.array([0.114, -1.182, 0.190])
_ARM = _limb(
    [[0.215, 0.205, -0.015, 0.066, 0.064],  # deltoid
     [0.310, 0.210, -0.020, 0.055, 0.056],  # upper arm
     [0.430, 0.210, -0.025, 0.045, 0.047],  # elbow
     [0.545, 0.210, -0.025, 0.045, 0.050],  # forearm
     [0.665, 0.210, -0.025, 0.030, 0.040],  # wrist
     [0.720, 0.207, -0.025, 0.022, 0.052],  # palm
     [0.810, 0.203, -0.025, 0.017, 0.050]],  # knuckles
    [(_Y, _Z)] * 7,
)  # fmt: skip
_ARM_CAP = np.array([0.860, 0.200, -0.025])
_HEAD = _limb(
    [[0.0, 0.315, -0.010, 0.052, 0.056],  # neck
     [0.0, 0.352, 0.010, 0.062, 0.074],   # jaw
     [0.0, 0.405, 0.012, 0.078, 0.098],   # widest part of the head
     [0.0, 0.465, 0.002, 0.070, 0.086]],  # crown
    [(_X, _Z)] * 4,
)  # fmt: skip
_HEAD_CAP = np.array([0.0, 0.520, 0.0])

# Joints (SMPL order; right-side joints are mirrored from the left ones).
_JOINTS_LEFT_AND_CENTRE = {
    "pelvis": (0.0, -0.225, 0.0),
    "left_hip": (0.078, -0.315, 0.0),
    "spine1": (0.0, -0.105, -0.015),
    "left_knee": (0.097, -0.725, 0.012),
    "spine2": (0.0, 0.025, -0.020),
    "left_ankle": (0.091, -1.115, -0.030),
    "spine3": (0.0, 0.130, -0.020),
    "left_foot": (0.108, -1.165, 0.100),
    "neck": (0.0, 0.285, -0.015),
    "left_collar": (0.075, 0.195, -0.015),
    "head": (0.0, 0.370, 0.015),
    "left_shoulder": (0.185, 0.210, -0.020),
    "left_elbow": (0.430, 0.210, -0.025),
    "left_wrist": (0.665, 0.210, -0.025),
    "left_hand": (0.755, 0.205, -0.025),
}

# Human3.6M-17 joints that are not SMPL joints (the others reuse SMPL's targets): H36M's
# hips sit higher and wider than SMPL's, its pelvis between the two; the head top is
# 2 cm under the scalp (a regressor is an average of surface points: never on it).
_H36M_EXTRA = {
    "pelvis": (0.0, -0.255, 0.0),
    "left_hip": (0.090, -0.280, 0.0),
    "spine": (0.0, 0.0, -0.020),
    "thorax": (0.0, 0.230, -0.010),
    "neck": (0.0, 0.350, 0.035),
    "head_top": (0.0, 0.480, 0.0),
}

# Skinning weights of the cage vertices ("hip" means the limb's own side), ring by ring
# and then the cap. A ring at a joint is shared by the two bones it joins (mostly
# 50/50); subdivision then blends the shares smoothly over the neighbouring rings.
_LEG_SKIN = [{"hip": 0.85, "pelvis": 0.15}, {"hip": 0.5, "knee": 0.5}, {"knee": 1.0},
             {"knee": 0.7, "ankle": 0.3}, {"ankle": 1.0}, {"ankle": 0.6, "foot": 0.4},
             {"foot": 1.0}, {"foot": 1.0}]  # fmt: skip
_ARM_SKIN = [{"collar": 0.3, "shoulder": 0.7}, {"shoulder": 1.0},
             {"shoulder": 0.5, "elbow": 0.5}, {"elbow": 1.0}, {"elbow": 0.5, "wrist": 0.5},
             {"wrist": 1.0}, {"wrist": 0.3, "hand": 0.7}, {"hand": 1.0}]  # fmt: skip
_HEAD_SKIN = [{"neck": 0.8, "spine3": 0.2}, {"neck": 0.5, "head": 0.5}, {"head": 1.0},
              {"head": 1.0}, {"head": 1.0}]  # fmt: skip
# Torso levels 0…6 (bottom to top) along the spine.
_TORSO_SKIN = [{"pelvis": 1.0}, {"pelvis": 1.0}, {"pelvis": 0.5, "spine1": 0.5},
               {"spine1": 0.7, "spine2": 0.3}, {"spine2": 0.8, "spine3": 0.2},
               {"spine3": 1.0}, {"spine3": 1.0}]  # fmt: skip
_COLLAR_SHARE = {4: 0.2, 5: 0.6, 6: 0.7}  # of the torso's sides at the arms' levels

# Pose correctives: bulge (m) at a 90° rotation of each joint (twice that when folded).
_BULGE = {"hip": 0.015, "knee": 0.012, "ankle": 0.006, "foot": 0.004, "spine1": 0.012,
          "spine2": 0.012, "spine3": 0.012, "neck": 0.008, "collar": 0.008, "head": 0.006,
          "shoulder": 0.012, "elbow": 0.010, "wrist": 0.005, "hand": 0.004}  # fmt: skip


# ---------------------------------------------------------------------------------------
# The design as a function of betas.


def _mirror(p):
    return np.asarray(p, dtype=np.float64) * np.array([-1.0, 1.0, 1.0])


def _design(betas) -> dict:
    """The body's design (left side) for `betas` [10]; every entry is affine in each beta.

    Returns a dict: `levels` [7, 5] torso cross-sections, `top_lift`, `limbs` (leg, arm,
    head: ring centres `c` [K, 3], radii `r` [K, 2], frames `u`, `w` [K, 3], `cap` [3]),
    `points` {name: [3]} SMPL joints and (prefixed `h36m_`) Human3.6M-only joints.
    """
    b = np.asarray(betas, dtype=np.float64)
    lv = _LEVELS.copy()
    limbs = {name: {k: v.copy() for k, v in limb.items()}
             for name, limb in (("leg", _LEG), ("arm", _ARM), ("head", _HEAD))}  # fmt: skip
    limbs["leg"]["cap"], limbs["arm"]["cap"] = _LEG_CAP.copy(), _ARM_CAP.copy()
    limbs["head"]["cap"] = _HEAD_CAP.copy()
    points = {n: np.array(p, dtype=np.float64) for n, p in _JOINTS_LEFT_AND_CENTRE.items()}
    points |= {"h36m_" + n: np.array(p, dtype=np.float64) for n, p in _H36M_EXTRA.items()}
    region = dict.fromkeys(points, "torso")
    region |= dict.fromkeys(("left_hip", "left_knee", "left_ankle", "left_foot",
                             "h36m_left_hip"), "leg")  # fmt: skip
    region |= dict.fromkeys(("left_shoulder", "left_elbow", "left_wrist", "left_hand"), "arm")
    region |= dict.fromkeys(("head", "h36m_neck", "h36m_head_top"), "head")

    # Radii first (1: girth, 9: muscularity); hands and feet change less.
    limb_gain = 0.045 * b[1] + 0.06 * b[9]
    extremity = {
        "leg": np.r_[np.ones(4), 0.4 * np.ones(3)],
        "arm": np.r_[np.ones(5), 0.4 * np.ones(2)],
        "head": np.r_[1.0, 0, 0, 0],
    }
    for name, limb in limbs.items():
        limb["r"] *= (1.0 + limb_gain * extremity[name])[:, None]
    lv[:, 1] *= 1.0 + 0.06 * b[1]
    lv[:, 2:4] *= 1.0 + 0.08 * b[1]
    lv[4:, 1] *= 1.0 + 0.02 * b[9]
    lv[4:, 1] += np.array([0.006, 0.011, 0.012]) * b[4]  # shoulder width
    lv[:3, 1] += np.array([0.012, 0.012, 0.004]) * b[5]  # hip width
    lv[1:4, 2] += np.array([0.004, 0.014, 0.009]) * b[8]  # belly
    lv[2, 1] += 0.004 * b[8]

    # Legs and arms move out with the body's width so that thighs never meet.
    leg_dx = 0.074 * limb_gain + 0.006 * b[5]
    arm_dx = 0.175 * (0.06 * b[1] + 0.02 * b[9]) + 0.012 * b[4]

    def move(p, where):
        """Apply the length/placement betas to points `p` [..., 3] of one region."""
        p = p.copy()
        if where == "leg":
            p[..., 1] = -0.315 + (p[..., 1] + 0.315) * (1.0 + 0.014 * b[2])
            p[..., 0] += leg_dx
        elif where == "arm":
            p[..., 0] = 0.185 + (p[..., 0] - 0.185) * (1.0 + 0.04 * b[3]) + arm_dx
        elif where == "head":
            pivot = np.array([0.0, 0.30, 0.0])  # the top of the neck
            p = pivot + (p - pivot) * (1.0 + 0.035 * b[7])
        # Torso length: everything from the hips up rises, progressively to the shoulders.
        p[..., 1] += 0.01 * b[6] * np.clip((p[..., 1] + 0.29) / 0.48, 0.0, 1.0)
        return p

    for name, limb in limbs.items():
        limb["c"], limb["cap"] = move(limb["c"], name), move(limb["cap"], name)
    limbs["head"]["r"][1:] *= 1.0 + 0.035 * b[7]
    for n in points:
        points[n] = move(points[n], region[n])
    points["left_collar"][0] += 0.5 * arm_dx
    lv[:, 0] += 0.01 * b[6] * np.clip((lv[:, 0] + 0.29) / 0.48, 0.0, 1.0)

    # Height: a uniform scale about the origin, of everything including radii.
    s = 1.0 + 0.038 * b[0]
    lv *= s
    for limb in limbs.values():
        limb["c"], limb["r"], limb["cap"] = limb["c"] * s, limb["r"] * s, limb["cap"] * s
    points = {n: p * s for n, p in points.items()}
    return {"levels": lv, "top_lift": _TOP_LIFT * s, "limbs": limbs, "points": points}


# ---------------------------------------------------------------------------------------
# Topology: the cage (built once) and its subdivision.

_TORSO, _RING, _CAP = 0, 1, 2


def _build_cage():
    """Quad cage: faces [F, 4] (outward, counter-clockwise) and vertex recipes.

    A recipe row is (kind, a, b, c): torso (level j, s, t) with s, t ∈ [-1, 1] the
    lattice coordinates across x and z; ring (limb, ring index, angle θ); cap (limb).
    """
    shape = (_NX + 1, _NY + 1, _NZ + 1)
    index = -np.ones(shape, dtype=np.int64)
    recipes = []
    for i, j, k in np.ndindex(shape):
        if i in (0, _NX) or j in (0, _NY) or k in (0, _NZ):
            s, t = (i - _NX / 2) / (_NX / 2), (k - _NZ / 2) / (_NZ / 2)
            # Warps: limbs leave through deeper patches than a uniform grid gives, and
            # the crotch between the legs is narrower.
            if abs(t) < 1:
                t = np.copysign(abs(t) ** 0.6, t)
                if j == 0 and abs(s) < 1:
                    s = np.copysign(abs(s) ** 1.4, s)
            index[i, j, k] = len(recipes)
            recipes.append((_TORSO, j, s, t))

    # Box faces, keyed (axis, side, cell_p, cell_q) with (p, q) the next axes in cyclic
    # order, so that e_p × e_q = e_axis: counter-clockwise seen from outside on side max.
    quads, face_id = [], {}
    for axis in range(3):
        p_ax, q_ax = (axis + 1) % 3, (axis + 2) % 3
        for side in (0, shape[axis] - 1):
            for cp, cq in np.ndindex(shape[p_ax] - 1, shape[q_ax] - 1):
                corners = [(cp, cq), (cp + 1, cq), (cp + 1, cq + 1), (cp, cq + 1)]
                if side == 0:
                    corners = corners[::-1]
                quad = []
                for dp, dq in corners:
                    ijk = [0, 0, 0]
                    ijk[axis], ijk[p_ax], ijk[q_ax] = side, dp, dq
                    quad.append(index[tuple(ijk)])
                face_id[axis, side, cp, cq] = len(quads)
                quads.append(quad)

    def patch(axis, side, p0, q0):  # the 2×2 block of faces with lowest cell (p0, q0)
        return [face_id[axis, side, p0 + a, q0 + c] for a in (0, 1) for c in (0, 1)]

    # (limb, patch, lattice axes that map to the ring frame's u and w).
    limbs = [
        (0, patch(1, 0, _NZ // 2 - 1, _NX - 2), (0, 2)),  # left leg: bottom face, y axis
        (1, patch(1, 0, _NZ // 2 - 1, 0), (0, 2)),        # right leg
        (2, patch(0, _NX, _NY - 2, _NZ // 2 - 1), (1, 2)),  # left arm: side face x = +
        (3, patch(0, 0, _NY - 2, _NZ // 2 - 1), (1, 2)),    # right arm
        (4, patch(1, _NY, _NZ // 2 - 1, _NX // 2 - 1), (0, 2)),  # neck and head: top
    ]  # fmt: skip
    lattice = np.argwhere(index >= 0)[np.argsort(index[index >= 0])]
    n_rings = {0: len(_LEG["c"]), 1: len(_LEG["c"]), 2: len(_ARM["c"]),
               3: len(_ARM["c"]), 4: len(_HEAD["c"])}  # fmt: skip
    for limb, faces, (ua, wa) in limbs:
        directed = [(f[n], f[(n + 1) % 4]) for f in (quads[i] for i in faces) for n in range(4)]
        edges = [e for e in directed if e[::-1] not in set(directed)]
        ring = sorted({a for a, _ in edges})
        (centre,) = set.intersection(*(set(quads[i]) for i in faces))
        offset = lattice[ring] - lattice[centre]
        theta = np.arctan2(offset[:, wa], offset[:, ua])  # multiples of 45°
        current = {v: v for v in ring}
        for k in range(n_rings[limb]):
            new = {}
            for v, th in zip(ring, theta, strict=True):
                new[v] = len(recipes)
                recipes.append((_RING, limb, k, th))
            for a, b in edges:  # side wall: (a, b) keeps its orientation, as in the patch
                quads.append([current[a], current[b], new[b], new[a]])
            remap = {current[v]: new[v] for v in ring}
            for i in faces:
                quads[i] = [remap.get(v, v) for v in quads[i]]
            current = new
        recipes[centre] = (_CAP, limb, 0, 0.0)
    return np.array(quads, dtype=np.int64), np.array(recipes, dtype=np.float64)


def _cage_positions(design, recipes) -> np.ndarray:
    """Cage vertex positions [n, 3] for a design (linear in the design's numbers)."""
    kind = recipes[:, 0].astype(int)
    out = np.zeros((len(recipes), 3))
    m = kind == _TORSO
    j, s, t = recipes[m, 1].astype(int), recipes[m, 2], recipes[m, 3]
    lv = design["levels"][j]
    ex, ez = s * np.sqrt(1 - t**2 / 2), t * np.sqrt(1 - s**2 / 2)  # square → disk
    y = lv[:, 0] + np.where((j == _NY) & (np.abs(s) < 1) & (np.abs(t) < 1),
                            design["top_lift"] * (1 - np.abs(s)), 0.0)  # fmt: skip
    out[m] = np.stack([lv[:, 1] * ex, y, lv[:, 4] + ez * np.where(ez > 0, lv[:, 2], lv[:, 3])], 1)
    limbs = design["limbs"]
    mirror = np.array([-1.0, 1.0, 1.0])
    per_limb = [(limbs["leg"], 1.0), (limbs["leg"], mirror), (limbs["arm"], 1.0),
                (limbs["arm"], mirror), (limbs["head"], 1.0)]  # fmt: skip
    for limb_id, (limb, flip) in enumerate(per_limb):
        m = (kind == _RING) & (recipes[:, 1] == limb_id)
        k, th = recipes[m, 2].astype(int), recipes[m, 3][:, None]
        out[m] = (limb["c"][k] * flip + limb["r"][k, :1] * np.cos(th) * limb["u"][k]
                  + limb["r"][k, 1:] * np.sin(th) * limb["w"][k])  # fmt: skip
        out[(kind == _CAP) & (recipes[:, 1] == limb_id)] = limb["cap"] * flip
    return out


def _cage_weights(recipes) -> np.ndarray:
    """Skinning weights [n, 24] of the cage vertices (rows sum to 1), from the tables."""
    index = {n: i for i, n in enumerate(skeleton.JOINT_NAMES)}
    flip = np.array(skeleton.FLIP_PERMUTATION)

    def row(table, side="left_"):
        w = np.zeros(skeleton.NUM_JOINTS)
        for name, share in table.items():
            w[index[name] if name in index else index[side + name]] += share
        return w

    limb_skin = [_LEG_SKIN, _LEG_SKIN, _ARM_SKIN, _ARM_SKIN, _HEAD_SKIN]
    out = np.zeros((len(recipes), skeleton.NUM_JOINTS))
    for n, (kind, a, b, c) in enumerate(recipes):
        if kind == _TORSO:
            j, s, t = int(a), b, c
            w = row(_TORSO_SKIN[j])
            if j == 0 and abs(s) > 0.1:  # the groin, where the thighs leave
                w = 0.7 * w + 0.3 * row({"hip": 1.0})
            if j in _COLLAR_SHARE and (abs(s) == 1 or (j == _NY and abs(s) > 0.5)):
                w = (1 - _COLLAR_SHARE[j]) * w + _COLLAR_SHARE[j] * row({"collar": 1.0})
            if j == _NY and abs(s) < 0.5 and abs(t) < 1:  # the neck's base
                w = 0.6 * w + 0.4 * row({"neck": 1.0})
            mirrored = s < 0
        else:
            limb = int(a)
            w = row(limb_skin[limb][int(b) if kind == _RING else -1])
            mirrored = limb in (1, 3)
        out[n] = w[flip] if mirrored else w
    return out


def _catmull_clark(points, quads):
    """One Catmull-Clark step on a closed quad mesh.

    Args:
      points: [n, d] vertex attributes (positions, or several stacked; the step is
        linear, so it applies column by column).
      quads: [f, 4] counter-clockwise faces.

    Returns:
      ([n + e + f, d] points: moved vertices, edge points, face points; [4f, 4] quads).
    """
    n, f = len(points), len(quads)
    face_pts = points[quads].mean(axis=1)
    a, b = quads.ravel(), np.roll(quads, -1, axis=1).ravel()
    uniq, edge = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_inverse=True)
    e0, e1 = uniq // n, uniq % n
    side_face = np.repeat(np.arange(f), 4)
    edge_pts = points[e0] + points[e1]
    np.add.at(edge_pts, edge, face_pts[side_face])
    edge_pts /= 4.0
    valence = np.bincount(a, minlength=n)[:, None].astype(np.float64)
    face_avg = np.zeros_like(points)
    np.add.at(face_avg, a, face_pts[side_face])
    mid = (points[e0] + points[e1]) / 2.0
    mid_avg = np.zeros_like(points)
    np.add.at(mid_avg, e0, mid)
    np.add.at(mid_avg, e1, mid)
    moved = (face_avg / valence + 2.0 * mid_avg / valence + (valence - 3.0) * points) / valence
    e = (n + edge).reshape(f, 4)  # edge i of a face joins its corners i and i + 1
    c = np.repeat(n + len(uniq) + np.arange(f)[:, None], 4, axis=1)
    new_quads = np.stack([quads, e, c, np.roll(e, 1, axis=1)], axis=-1).reshape(-1, 4)
    return np.concatenate([moved, edge_pts, face_pts]), new_quads


def _subdivide(attributes, quads, levels: int = 2):
    """`levels` Catmull-Clark steps of per-vertex `attributes` [n, d]; returns both."""
    for _ in range(levels):
        attributes, quads = _catmull_clark(attributes, quads)
    return attributes, quads


def _triangulate(verts, quads) -> np.ndarray:
    """Split each quad along its shorter diagonal: faces [2F, 3], same orientation."""
    v = verts[quads]
    d02 = np.linalg.norm(v[:, 0] - v[:, 2], axis=1)
    d13 = np.linalg.norm(v[:, 1] - v[:, 3], axis=1)
    q = np.where((d02 <= d13)[:, None], quads, np.roll(quads, -1, axis=1))
    return np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])


# ---------------------------------------------------------------------------------------
# Rigging: regressors, skinning weights, pose correctives.


def _tilted_average(verts, target) -> np.ndarray:
    """Nonnegative weights [V] summing to 1 with `weights @ verts == target`.

    A Gaussian around `target`, as wide as the distance to the nearest vertex (the local
    thickness) and cut one width further out, then exponentially tilted: the distribution
    closest to it (in KL) whose mean is exactly `target`, by damped Newton steps on the
    convex log-partition function. Where the surface within the cut does not surround
    the target, the cut widens.
    """
    offset = verts - target
    dist = np.linalg.norm(offset, axis=1)
    sigma = max(dist.min(), 0.02)
    for support in (1.0, 1.5, 2.0, 3.0, 5.0):
        keep = np.flatnonzero(dist <= dist.min() + support * sigma)
        d, logw = offset[keep], -0.5 * (dist[keep] / sigma) ** 2

        def log_partition(lam, d=d, logw=logw):
            z = logw + d @ lam
            return z.max() + np.log(np.exp(z - z.max()).sum())

        lam = np.zeros(3)
        for _ in range(100):
            z = logw + d @ lam
            w = np.exp(z - z.max())
            w /= w.sum()
            mean = w @ d  # the gradient of the log-partition function
            if np.linalg.norm(mean) < 1e-12:
                out = np.zeros(len(verts))
                out[keep] = w
                return out
            cov = (d * w[:, None]).T @ d - np.outer(mean, mean)
            step = np.linalg.solve(cov + 1e-12 * np.eye(3), mean)
            g0, t = log_partition(lam), 1.0
            while log_partition(lam - t * step) > g0 - 0.25 * t * (mean @ step) and t > 1e-6:
                t /= 2
            lam -= t * step
    raise RuntimeError(f"cannot regress the point {target}: it is not inside the body")


def _vertex_normals(verts, faces) -> np.ndarray:
    v = verts[faces]
    face_n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])  # length = 2 × area
    n = np.zeros_like(verts)
    for c in range(3):
        np.add.at(n, faces[:, c], face_n)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _pose_correctives(verts, faces, weights) -> np.ndarray:
    """posedirs [V, 3, 207]: around each joint, an outward bulge ∝ 1 − cos θ.

    For joint j, trace(R_j − I) = 2 cos θ − 2, so giving each of the three diagonal
    features of (R_j − I) the displacement −½·bulge makes the corrective bulge·(1 − cos θ):
    zero at rest, `_BULGE` at 90°, twice that when folded. It is confined to where the
    skin blends j's subtree with the rest of the body, by (4·s·(1 − s))², s the
    subtree's total weight: where linear blend skinning loses volume. (Squared, because
    the coarse cage spreads a blend thinly over a whole limb segment.)
    """
    parents = skeleton.PARENTS
    normals = _vertex_normals(verts, faces)
    subtree = np.eye(skeleton.NUM_JOINTS, dtype=bool)
    for j in range(skeleton.NUM_JOINTS - 1, 0, -1):  # parents come before children
        subtree[parents[j]] |= subtree[j]
    posedirs = np.zeros((len(verts), 3, 9 * (skeleton.NUM_JOINTS - 1)))
    for j in range(1, skeleton.NUM_JOINTS):
        name = skeleton.JOINT_NAMES[j].removeprefix("left_").removeprefix("right_")
        s = weights[:, subtree[j]].sum(axis=1)
        bulge = _BULGE[name] * (4 * s * (1 - s)) ** 2
        for diag in (0, 4, 8):
            posedirs[:, :, 9 * (j - 1) + diag] = -0.5 * bulge[:, None] * normals
    return posedirs


# ---------------------------------------------------------------------------------------
# Public API.


def generate(seed: int = 0) -> dict[str, np.ndarray]:
    """Generate the synthetic body model, deterministically.

    Args:
      seed: 0 gives the built-in body; any other seed a different person of the same
        topology and rig (its mean shape drawn near the built-in one, betas ~ N(0, 0.5²)
        clipped to ±1.5, from `numpy.random.default_rng(seed)`).

    Returns:
      The official SMPL keys (docs/CONTRACT_smpl_jax.md), float64 unless noted, metres:
      `v_template` [V, 3], `shapedirs` [V, 3, 10], `posedirs` [V, 3, 207],
      `J_regressor` [24, V] (dense, rows sum to 1), `weights` [V, 24],
      `kintree_table` [2, 24] uint32, `f` [F, 3] uint32, `J` [24, 3] (=
      `J_regressor @ v_template`), plus `J_regressor_h36m` [17, V] in SPIN's
      Human3.6M-17 order (`skeleton.H36M_17_NAMES`).
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    base = np.zeros(NUM_BETAS)
    if seed != 0:
        base = np.clip(np.random.default_rng(seed).normal(0.0, 0.5, NUM_BETAS), -1.5, 1.5)
    # The mean shape, one more per unit beta, and the built-in body (whose quads'
    # diagonals fix the triangulation, so that every seed has the same faces).
    designs = [_design(base + e) for e in np.r_[np.zeros((1, NUM_BETAS)), np.eye(NUM_BETAS)]]
    designs.append(_design(np.zeros(NUM_BETAS)))
    quads, recipes = _build_cage()
    cage = np.concatenate([_cage_positions(d, recipes) for d in designs]
                          + [_cage_weights(recipes)], axis=1)  # fmt: skip
    fine, quads = _subdivide(cage, quads)
    verts = fine[:, : 3 * len(designs)].reshape(len(fine), len(designs), 3).transpose(1, 0, 2)
    weights = fine[:, 3 * len(designs) :]
    v_template = verts[0]
    shapedirs = (verts[1:-1] - verts[0]).transpose(1, 2, 0)  # exact: linear in each beta
    faces = _triangulate(verts[-1], quads)

    points = designs[0]["points"]

    def joint(name, prefix=""):
        if name.startswith("right_"):
            return _mirror(points[prefix + "left_" + name.removeprefix("right_")])
        return points[prefix + name]

    regressor = np.stack([_tilted_average(v_template, joint(n)) for n in skeleton.JOINT_NAMES])
    h36m_targets = [joint(n, "h36m_") if "h36m_" + n.replace("right_", "left_") in points
                    else joint(n) for n in skeleton.H36M_17_NAMES]  # fmt: skip
    h36m = np.stack([_tilted_average(v_template, t) for t in h36m_targets])
    parents = np.array(skeleton.PARENTS, dtype=np.int64)
    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": _pose_correctives(v_template, faces, weights),
        "J_regressor": regressor,
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "kintree_table": np.stack([np.where(parents < 0, _ROOT, parents),
                                   np.arange(skeleton.NUM_JOINTS)]).astype(np.uint32),
        "f": faces.astype(np.uint32),
        "J": regressor @ v_template,
        "J_regressor_h36m": h36m,
    }  # fmt: skip

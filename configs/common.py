"""Settings shared by the experiment configs; like every config file, it imports only
ml_collections. Config files load it by path (`configs/` is not a package):

    common = config_files.load_module(pathlib.Path(__file__).with_name("common.py"))
"""

from ml_collections import config_dict

#: The built-in data's default pose law (`hkmr_jax.data.synthetic`): people within ±60°
#: of facing the camera, each pose component's σ a sixth of its joint range.
SYNTHETIC_YAW_RANGE_DEG = 120.0
SYNTHETIC_POSE_SPREAD = 1 / 6


def pose_prior_training() -> config_dict.ConfigDict:
    """Training of the pose VAE (`hkmr_jax.prior_train`): `configs/pose_prior.py`, and an
    HKMR run's `prior_training` when it trains its prior first (the run's own
    `prior_vae` then sets the architecture)."""
    c = config_dict.ConfigDict()
    c.task = "pose_prior"
    c.seed = 0
    c.data = config_dict.ConfigDict()
    c.data.source = "synthetic"  # or 'amass'
    # synthetic: the pose law's spread; None: the dataset's default (an HKMR run that
    # trains its prior sets its own `data.synthetic_pose_spread` here).
    c.data.pose_spread = config_dict.placeholder(float)
    c.data.amass_glob = config_dict.placeholder(str)  # e.g. '~/amass/**/*_poses.npz'
    c.data.stride = 4  # AMASS frames are 60-250 fps: keep every 4th
    c.data.holdout = 0.05  # AMASS: fraction of sequences for validation
    c.batch_size = 256
    c.num_steps = 3000
    c.learning_rate = 1e-3  # VPoser v1
    c.kl_weight = 5e-3  # VPoser v1's kl_coef
    c.log_every = 500
    c.num_validation = 4096  # synthetic: held-out draws for the validation metrics
    return c


def smplify() -> dict:
    """SMPLify's settings (`hkmr_jax.fitting.SMPLifyConfig`): SPIN's, except the VAE
    prior's weight (ours: SPIN's GMM weight, both terms being in nats; not tuned)."""
    return dict(
        num_iters=100,  # Adam steps per stage
        step_size=1e-2,
        focal_length=5000.0,
        img_res=224,
        sigma=100.0,  # Geman-McClure scale, pixels
        pose_prior="vae",  # 'vae' | 'gmm' (SMPLify's gmm_08.pkl) | 'none'
        pose_prior_weight=4.78,
        vae_prior_weight=4.78,
        shape_prior_weight=5.0,
        angle_prior_weight=15.2,
        depth_loss_weight=100.0,
    )

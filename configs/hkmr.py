"""HKMR (Georgakis et al., ECCV 2020) training configs.

Variants (the part after ':' picks one):

* default — built-in synthetic data at 64 px (its default pose law: people within ±60°
  of facing the camera), the small CNN encoder, HKMR with T = 3 outer and 4 inner
  iterations (d = 64); about 15 minutes on 2 CPU cores, training and a quick evaluation:

      python train.py --config configs/hkmr.py --workdir runs/hkmr

* smoke — a tiny run for tests and CI (well under a minute on 2 CPU cores):

      python train.py --config configs/hkmr.py:smoke --workdir runs/hkmr_smoke

* paper — the paper's setting: ResNet-50 at 224 px from ImageNet weights, SPIN's data
  mix, T = 3 / 4, SPIN's optimiser; every value the paper leaves open is marked with
  its source below. Needs the SMPL model, SPIN's data files built with
  `python -m hkmr_jax.data.build`, torchvision's ResNet-50 weights and a trained pose VAE:

      python train.py --config configs/hkmr.py:paper --workdir runs/hkmr_paper \\
          --config.body_model=SMPL_NEUTRAL.pkl \\
          --config.h36m_regressor=J_regressor_h36m.npy \\
          --config.model.encoder_init=resnet50-0676ba61.pth \\
          --config.data.data_dir=~/tensorflow_datasets \\
          --config.prior_checkpoint=runs/pose_vae/params

  Without `body_model` or `model.encoder_init` it refuses to start; pass
  `--config.allow_builtin_body=True` / `--config.allow_random_encoder=True` to train on the
  built-in body / from random encoder weights deliberately.

Any field can be overridden the same way (`--config.num_steps=100`); a misspelt field
is an error (the config is locked).
"""

import math
import pathlib

from ml_collections import config_dict

from hkmr_jax import config_files

common = config_files.load_module(pathlib.Path(__file__).with_name("common.py"))

VARIANTS = ("default", "smoke", "paper")


def _encoder(**fields) -> config_dict.ConfigDict:
    """Encoder fields (`encoder.create_encoder`); `bn_axis_name` None = per-device BN
    statistics, 'data' = synchronised over the data-parallel mesh."""
    c = config_dict.ConfigDict(fields)
    c.bn_axis_name = config_dict.placeholder(str)
    return c


def _regressor(name: str, embed_dim: int, hidden: int, outer: int, inner: int) -> dict:
    """Regressor fields (`HKMR` / `HMR` arguments); every ablation switch is present so
    that it can be overridden: `--config.model.regressor.history=previous` etc.
    HKMR uses `embed_dim` (d), `outer` (T) and `inner`; HMR `hidden` and `outer` (its
    iterations)."""
    if name == "hkmr":
        return dict(embed_dim=embed_dim, outer_iters=outer, inner_iters=inner, history="all",
                    passes="forward_backward", representation="axis_angle")  # fmt: skip
    return dict(hidden=hidden, iters=outer, dropout=0.5, representation="axis_angle")


def base(regressor_name: str = "hkmr") -> config_dict.ConfigDict:
    """The default variant: every field exists here, variants change values."""
    c = config_dict.ConfigDict()
    c.seed = 0

    c.model = config_dict.ConfigDict()
    c.model.name = regressor_name
    # 4 stages of 64 px → 4 × 4 feature map; Φ has 128 features.
    c.model.encoder = _encoder(name="small_cnn", widths=(16, 32, 64, 128))
    c.model.encoder.flatten = config_dict.placeholder(int)  # SmallCNN: flatten the 4x4 map
    c.model.regressor = _regressor(regressor_name, embed_dim=64, hidden=256, outer=3, inner=4)
    # Start from the built-in data's mean body pose turned upright in the camera frame
    # (SPIN's convention: a global orientation of (π, 0, 0)), as SPIN starts from its
    # training set's mean (`path` would read SPIN's smpl_mean_params.npz).
    c.model.mean_params = dict(global_orient=(math.pi, 0.0, 0.0), camera_scale=0.9,
                               body_pose="synthetic")  # fmt: skip
    c.model.encoder_init = config_dict.placeholder(str)  # torchvision ResNet .pth
    # 'bfloat16': the encoder computes in bfloat16 (GPUs, TPUs); parameters, optimizer
    # state, the regressor, losses and the SMPL layer stay float32 (README, "On a GPU or TPU").
    c.model.compute_dtype = "float32"

    c.body_model = config_dict.placeholder(str)  # None: the built-in body
    c.h36m_regressor = config_dict.placeholder(str)  # [17, V] .npy for body_model
    # 3DPW's ground truth (eval.py --datasets 3dpw): SMPL_MALE.pkl / SMPL_FEMALE.pkl.
    c.body_model_male = config_dict.placeholder(str)
    c.body_model_female = config_dict.placeholder(str)
    # Without body_model / model.encoder_init the run trains on the built-in toy body /
    # from random encoder weights. The paper variants set these False: they refuse to
    # start without the SMPL body and the ImageNet weights unless set True explicitly.
    c.allow_builtin_body = True
    c.allow_random_encoder = True

    c.data = config_dict.ConfigDict()
    c.data.datasets = [dict(name="synthetic", ratio=1.0)]
    c.data.image_size = 64
    c.data.data_dir = config_dict.placeholder(str)
    c.data.seed = 0
    c.data.synthetic_seed = 0
    # The built-in data's pose law (`data.synthetic`): yaw within ±60° of facing the
    # camera and each pose component's σ a sixth of its range, a law the default model
    # learns in its budget; 360 and 1/3 give the full law (every view, wider poses). The
    # starting mean pose and a VAE trained at the start of the run follow the spread.
    c.data.synthetic_yaw_range = common.SYNTHETIC_YAW_RANGE_DEG
    c.data.synthetic_pose_spread = common.SYNTHETIC_POSE_SPREAD
    c.data.augment = config_dict.placeholder(dict)  # None: off; {}: SPIN's augmentation
    c.data.synthetic_2d_length = 20_000  # the 'synthetic_2d' dataset (2D keypoints only)
    c.data.num_threads = 2
    c.data.prefetch = 64
    # > 0: that many grain worker processes make the batches (each with num_threads
    # reader threads); 0: reader threads in the training process. Same batches either way.
    c.data.worker_count = 0

    c.batch_size = 32  # global, over all devices and hosts
    c.num_steps = 3500

    c.optimizer = config_dict.ConfigDict()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 100
    c.optimizer.final_lr_fraction = 0.05
    # The schedule's length; None: num_steps. `train.py --extend` sets it to the run's
    # original num_steps, so extra steps run at the schedule's final rate.
    c.optimizer.schedule_steps = config_dict.placeholder(int)
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.0
    c.optimizer.clip_norm = 10.0  # global-norm clipping; None: off

    # Eq. 3's λs (`losses.LossWeights`): SPIN's where the paper is silent.
    # `adversarial` (prior='discriminator'): HMR's 1 : 60 against its 2D keypoint loss.
    c.loss_weights = dict(smpl_pose=1.0, smpl_betas=0.001, joints_3d=5.0, keypoints=5.0,
                          kl=0.01, adversarial=5.0 / 60.0)  # fmt: skip
    c.prior = "none"  # 'vae' (paper) | 'discriminator' (HMR's, Table 2) | 'none'
    c.discriminator = dict(learning_rate=1e-3, weight_decay=1e-4)  # HMR's
    # 'vae': a trained VAE's directory (`configs/pose_prior.py` writes WORKDIR/params);
    # None: trained with `prior_training` at the start of the run, in WORKDIR/pose_prior.
    c.prior_checkpoint = config_dict.placeholder(str)
    c.prior_vae = dict(latent_dim=32, hidden_dim=512)
    c.prior_training = common.pose_prior_training()  # its architecture: prior_vae

    # SPIN's SMPLify in the loop (configs/hkmr_spin.py, configs/spin.py): the regressor's
    # estimate starts a fit to the 2D keypoints; the best fit per example is kept (and
    # checkpointed) and supervises pose and shape where there is no SMPL ground truth.
    c.fitting = config_dict.ConfigDict()
    c.fitting.enabled = False
    c.fitting.threshold = 100.0  # SPIN's smplify_threshold (pixels² at 224 px)
    c.fitting.gmm_path = config_dict.placeholder(str)  # SMPLify's gmm_08.pkl (pose_prior='gmm')
    c.fitting.smplify = common.smplify()  # SPIN's settings

    c.log_every = 50
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.eval_every = 0  # > 0: also evaluate every that many steps
    c.evals = [dict(name="standard", dataset="synthetic", split="test", limit=256)]
    c.eval_batch_size = 64
    c.progress_bar = True
    c.multihost = False  # True: jax.distributed.initialize() first (multi-host jobs)
    return c


def smoke(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
    """Tiny everything: for tests and CI."""
    c.model.encoder = _encoder(name="small_cnn", widths=(8, 16))
    c.model.regressor = _regressor(c.model.name, embed_dim=8, hidden=16, outer=2, inner=1)
    c.data.image_size = 32
    c.data.num_threads = 1
    c.data.prefetch = 8
    c.batch_size = 8
    c.num_steps = 6
    c.optimizer.warmup_steps = 0
    c.log_every = 3
    c.checkpoint_every = 3
    c.evals = [dict(name="standard", dataset="synthetic", split="test", limit=8)]
    c.eval_batch_size = 8
    return c


def paper(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
    """ResNet-50, SPIN's data mix and optimiser; sources in the comments."""
    # Encoder: ResNet-50 from ImageNet weights (paper §4: "the same encoder as HMR").
    # BatchNorm statistics per device, as HMR and SPIN trained (set bn_axis_name='data'
    # for synchronised BN).
    c.model.encoder = _encoder(name="resnet50")
    # Refuse to start without the SMPL body and the ImageNet weights (they are set on the
    # command line, see above); --config.allow_builtin_body=True /
    # --config.allow_random_encoder=True train without them, deliberately.
    c.allow_builtin_body = False
    c.allow_random_encoder = False
    # HKMR: T = 3 outer × 4 inner, the paper's best (Table 3); d = 160 gives the paper's
    # 26.2M parameters with ResNet-50 (docs/hkmr.md; the paper does not state d); history
    # 'all' and forward+backward passes (§3.2); axis-angle residuals (§3.2).
    # HMR: 2 × 1024 with dropout 0.5, 3 iterations (HMR's code), 26.8M parameters.
    c.model.regressor = _regressor(c.model.name, embed_dim=160, hidden=1024, outer=3, inner=4)
    # SPIN starts from its smpl_mean_params.npz (set model.mean_params.path); without it
    # the rest pose, upright.
    c.model.mean_params = dict(global_orient=(math.pi, 0.0, 0.0), camera_scale=0.9,
                               body_pose="rest")  # fmt: skip
    c.model.mean_params.path = config_dict.placeholder(str)
    c.data.image_size = 224  # SPIN's constants.IMG_RES; HMR also uses 224
    # SPIN's MixedDataset: 30% Human3.6M, 60% the 2D datasets (shared in proportion to
    # their sizes), 10% MPI-INF-3DHP. The paper (§4) lists the same datasets (HMR's).
    c.data.datasets = [
        dict(name="h36m", ratio=0.3),
        dict(name="lsp+lspet+mpii+coco2014", ratio=0.6),
        dict(name="mpi_inf_3dhp", ratio=0.1),
    ]
    c.data.augment = {}  # SPIN's augmentation with its defaults (data/augment.py)
    # 8 grain worker processes with 2 reader threads each: processes are not held back by
    # Python's GIL on a GPU host's many cores, and cost the same per example as threads
    # (measured: 251-267 vs 243-249 examples per CPU-second, benchmarks/input_pipeline.py).
    c.data.worker_count = 8
    c.data.num_threads = 2
    c.data.prefetch = 512
    # SPIN: batch 64, Adam lr 5e-5, no weight decay, no schedule, no clipping
    # (SPIN's utils/train_options.py). The paper gives none of these.
    c.batch_size = 64
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 5e-5
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.optimizer.clip_norm = None
    # Not in the paper. SPIN trains 50 epochs of its mixed set, whose length is its
    # largest part (Human3.6M, ~312k crops): 50 × 312188 / 64 ≈ 244k steps.
    c.num_steps = 244_000
    # λs: SPIN's (pose 1, betas 0.001, 2D and 3D keypoints 5); λ_KL is ours (the paper
    # gives no value; losses.LossWeights).
    c.loss_weights = dict(smpl_pose=1.0, smpl_betas=0.001, joints_3d=5.0, keypoints=5.0,
                          kl=0.01, adversarial=5.0 / 60.0)  # fmt: skip
    c.prior = "vae"  # paper §3.2, trained on MoSh poses (set prior_checkpoint)
    c.log_every = 100
    c.checkpoint_every = 5000
    c.keep_checkpoints = 3
    c.eval_every = 20_000
    # Human3.6M protocols 1 and 2 (hkmr_jax.eval_lib's 'standard' evaluator).
    c.evals = [
        dict(name="standard", dataset="h36m", split="valid_p1", label="h36m_p1"),
        dict(name="standard", dataset="h36m", split="valid_p2", label="h36m_p2"),
    ]
    c.eval_batch_size = 64
    return c


def get_config(arg: str | None = None, regressor_name: str = "hkmr") -> config_dict.ConfigDict:
    """`arg`: None or 'default', 'smoke', 'paper'."""
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"unknown config variant {variant!r}; choose one of {VARIANTS}.")
    c = base(regressor_name)
    if variant == "smoke":
        c = smoke(c)
    elif variant == "paper":
        c = paper(c)
    return c

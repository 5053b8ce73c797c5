"""Train and evaluate HKMR or HMR: `python train.py --config configs/hkmr.py --workdir runs/x`.

See docs/training.md for the flags (the same program, `hkmr_jax/train_cli.py`, is installed
as `hkmr-train`).
"""

from hkmr_jax.train_cli import main

if __name__ == "__main__":
    main()

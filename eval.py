"""Evaluate a trained run: `python eval.py --config configs/hkmr.py --workdir runs/x`.

See `hkmr_jax/eval_cli.py` for the flags (the same program is installed as `hkmr-eval`).
"""

from hkmr_jax.eval_cli import main

if __name__ == "__main__":
    main()

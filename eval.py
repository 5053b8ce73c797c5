"""Evaluate a trained run with its own config: `python eval.py --workdir runs/x`.

See docs/evaluation.md for what it runs and writes (the same program, `hkmr_jax/eval_cli.py`,
is installed as `hkmr-eval`).
"""

from absl import flags

from hkmr_jax import eval_cli

flags.adopt_module_key_flags(eval_cli)  # --help lists eval.py's own flags

if __name__ == "__main__":
    eval_cli.main()

"""``python -m hkmr_jax.demo``: the demo's command line, the same as ``hkmr-demo``.

Argument parsing and error reporting live in `hkmr_jax.demo_cli`; the library in this
package (docs/demo.md).
"""

import sys

from hkmr_jax import demo_cli

if __name__ == "__main__":
    sys.exit(demo_cli.main())

"""The README's two first-screen commands are exactly what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    return blocks[:2]


def test_readme_has_setup_and_test_commands():
    setup, test = _readme_commands()
    assert "pip install" in setup and "venv" in setup
    assert "pytest" in test


def test_ci_runs_the_readme_commands_verbatim():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in _readme_commands():
        assert command in ci_lines, f"README command not run by .ci/run: {command}"

"""Config files (`configs/*.py`) are loaded by path, as ml_collections' `--config` flag
loads them (they are not a package): one loader for configs that build on a sibling and
for tests and notebooks."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType


def load_module(path: str | os.PathLike) -> ModuleType:
    """The config file at `path` as a fresh module."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"{path.stem}_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config(path: str | os.PathLike, variant: str | None = None, **kwargs):
    """`get_config(variant, **kwargs)` of the config file at `path`."""
    return load_module(path).get_config(variant, **kwargs)


__all__ = ["get_config", "load_module"]

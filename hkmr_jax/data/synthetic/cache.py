"""Synthetic examples rendered once into memory-mapped ``.npy`` files, and read back.

`cache` writes a folder (atomically: a temporary folder, then a rename); `CachedDataset`
reads it without rendering. For data read many times, such as the test split evaluated
every few hundred steps.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

import numpy as np
import tqdm

from hkmr_jax.data.synthetic.dataset import SyntheticDataset
from smpl_jax import atomic_files

#: Bump when the cache layout changes: `CachedDataset` refuses other versions.
CACHE_VERSION = 2  # 2: the pose law in the metadata
_META = "meta.json"


def cache(
    path,
    split: str | SyntheticDataset = "test",
    n: int | None = None,
    *,
    size: int = 128,
    seed: int = 0,
    chunk: int = 64,
    progress: bool = True,
) -> pathlib.Path:
    """Render examples 0 … n − 1 once into a folder of ``.npy`` files (see `CachedDataset`).

    For data read many times (the test split, evaluated every few hundred steps; a small
    training set on a busy CPU): rendering is then paid once. The folder holds one
    ``KEY.npy`` per example key, stacked along a first axis of n, and ``meta.json``. It is
    written under a temporary name beside `path` and renamed into place, so a reader
    never sees a partial cache; an existing cache of the same dataset is reused as is.

    Args:
      path: the cache folder.
      split: ``"train"``/``"test"`` (the built-in body and the default pose law, with
        `size` and `seed`), or a `SyntheticDataset` to cache (any body or law).
      n: number of examples; None: the whole split (test: 1000; train needs an n).
      size, seed: of the dataset when `split` is a name.
      chunk: examples rendered per `render_batch` call.
      progress: show a tqdm progress bar.

    Returns:
      The cache folder, as a `pathlib.Path`.

    Raises:
      FileExistsError: `path` holds something else (another dataset, another version).
      ValueError: bad split, size, seed or n.
    """
    dataset = split if isinstance(split, SyntheticDataset) else SyntheticDataset(
        split, size=size, seed=seed
    )  # fmt: skip
    n = dataset.length if n is None else int(n)
    if not 0 < n <= dataset.length or n > 10**8:
        raise ValueError(f"n must be 1…{min(dataset.length, 10**8)} for {dataset!r}, got {n}.")
    meta = {"version": CACHE_VERSION, **dataset.config(), "length": n}
    path = pathlib.Path(path)
    if path.exists():
        _check_cache(path, meta)
        return path
    try:
        with atomic_files.writing_folder(path) as tmp:
            _write(tmp, dataset, n, meta, chunk, progress)
    except OSError:  # e.g. a concurrent writer finished first: keep theirs if it matches
        if not path.exists():
            raise
        _check_cache(path, meta)
    return path


def _write(folder: pathlib.Path, dataset: SyntheticDataset, n: int, meta: dict,
           chunk: int, progress: bool) -> None:  # fmt: skip
    """Render examples 0 … n − 1 of `dataset` into a new `folder` (the layout of `cache`)."""
    folder.mkdir()
    arrays = None
    with tqdm.tqdm(total=n, desc=f"caching {dataset.split}", unit=" img",
                   disable=not progress) as bar:  # fmt: skip
        for start in range(0, n, chunk):
            examples = dataset.render_batch(range(start, min(start + chunk, n)))
            if arrays is None:  # memory-mapped outputs: the cache never sits in memory
                arrays = {
                    k: np.lib.format.open_memmap(
                        folder / f"{k}.npy", mode="w+", dtype=v.dtype, shape=(n, *v.shape)
                    )
                    for k, v in examples[0].items()
                }
            for k, a in arrays.items():
                a[start : start + len(examples)] = np.stack([e[k] for e in examples])
            bar.update(len(examples))
    for a in arrays.values():
        a.flush()
    (folder / _META).write_text(json.dumps(meta, indent=1))


def _check_cache(path: pathlib.Path, meta: dict) -> dict:
    try:
        found = json.loads((path / _META).read_text())
    except (OSError, ValueError):
        found = None
    if found != meta:
        raise FileExistsError(
            f"{path} exists but is not a cache of this dataset (found {found}, want {meta}); "
            "delete it or choose another path."
        )
    return found


class CachedDataset:
    """Examples written by `cache`, read from memory-mapped ``.npy`` files.

    ``CachedDataset(path)[i]`` equals the cached dataset's ``[i]`` array for array (a
    copy, so it can be modified); random access, picklable (workers reopen the files).

    Args:
      path: a folder written by `cache`.

    Raises:
      FileNotFoundError: `path` is not a complete cache (run `cache` first).
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        try:
            self.meta = json.loads((self.path / _META).read_text())
        except (OSError, ValueError) as e:
            raise FileNotFoundError(
                f"{self.path} is not a synthetic-data cache ({e}); write one with "
                "hkmr_jax.data.synthetic.cache(path, split, n)."
            ) from None
        if self.meta.get("version") != CACHE_VERSION:
            raise FileNotFoundError(
                f"{self.path} is a cache of version {self.meta.get('version')}, this code "
                f"reads version {CACHE_VERSION}: delete it and write it again."
            )
        self._arrays = None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Key → memory-mapped [n, ...] array (opened on first use, per process)."""
        if self._arrays is None:
            self._arrays = {
                f.stem: np.load(f, mmap_mode="r") for f in sorted(self.path.glob("*.npy"))
            }
        return self._arrays

    def __getstate__(self):
        return {"path": self.path, "meta": self.meta, "_arrays": None}

    def __len__(self) -> int:
        return int(self.meta["length"])

    def __repr__(self) -> str:
        return f"CachedDataset({str(self.path)!r}, {len(self)} examples)"

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"example {index} out of range for {self!r}.")
        return {k: np.array(a[i]) for k, a in self.arrays.items()}

    def _getitems(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        return [self[i] for i in indices]

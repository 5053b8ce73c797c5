"""The training input pipeline (grain): datasets mixed by ratio, sharded by host, prefetched.

Example `n` of the global stream (step `n // B`, slot `n % B`) is a pure function of the
config and `n`, so a resumed run sees the batches an uninterrupted one would, whatever the
number of hosts, threads or worker processes; process p of P takes its slice of every
global batch. Examples carry the keys of docs/CONTRACT_data.md plus `AUGMENT_KEYS`.
How the stream is made and the `config.data` fields: docs/pipeline.md.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
from absl import flags

from hkmr_jax.data import augment

#: The keys every training example carries (docs/CONTRACT_data.md).
CONTRACT_KEYS = (
    "image", "keypoints", "joints_3d", "pose", "betas", "has_smpl", "has_3d", "dataset_id",
    "example_id",
)  # fmt: skip

#: The augmentation each training example received (`augment.AugmentParams`): float32 []
#: rotation in degrees (SPIN's `rot_angle`) and float32 [] flip, 0 or 1 (SPIN's
#: `is_flipped`); both 0 for an example that was not augmented. The training stream
#: carries them besides `CONTRACT_KEYS`, so every batch has the same keys.
AUGMENT_ROTATION = "augment_rotation"
AUGMENT_FLIP = "augment_flip"
AUGMENT_KEYS = (AUGMENT_ROTATION, AUGMENT_FLIP)

#: Sources at least this long are i.i.d. streams that no run exhausts (the synthetic train
#: split): they are read in index order, not shuffled (the synthetic set renders blocks of
#: consecutive indices together, and shuffling an i.i.d. stream changes nothing).
STREAM_LENGTH = 2**31

#: name → factory(split, data_config) → random-access source (`len`, `[i] → dict`).
_FACTORIES: dict[str, Callable[[str, Mapping], Any]] = {}


def register_dataset(name: str, factory: Callable[[str, Mapping], Any]) -> None:
    """Make `name` usable in `config.data.datasets` and evaluator specs.

    Args:
      name: the dataset's name (must not contain '+').
      factory: (split, data_config) → a random-access source: `len(src)` and
        `src[i]` → a dict with at least the contract's keys (docs/CONTRACT_data.md).
    """
    if "+" in name:
        raise ValueError(f"dataset names cannot contain '+': {name!r}.")
    _FACTORIES[name] = factory


def _synthetic_law(data_config: Mapping) -> dict:
    """The pose law's dataset arguments from `synthetic_yaw_range` / `synthetic_pose_spread`
    (absent or None: the dataset's defaults)."""
    # Lazy, heavy: importing the synthetic data runs JAX (and so picks its backend) and
    # loads the renderer; runs and grain workers without synthetic data never need it.
    from hkmr_jax.data import synthetic

    yaw_range, pose_spread = synthetic.check_pose_law(
        data_config.get("synthetic_yaw_range"), data_config.get("synthetic_pose_spread")
    )
    return dict(yaw_range=yaw_range, pose_spread=pose_spread)


def _synthetic(split: str, data_config: Mapping):
    from hkmr_jax.data import synthetic  # lazy, heavy: see `_synthetic_law`

    return synthetic.SyntheticDataset(
        split=split, size=int(data_config.get("image_size", 64)),
        seed=int(data_config.get("synthetic_seed", 0)), **_synthetic_law(data_config),
    )  # fmt: skip


register_dataset("synthetic", _synthetic)


class _WithoutSMPL:
    """A source whose examples keep only their 2D keypoints as labels, like SPIN's 2D
    datasets (LSP, MPII, COCO): has_smpl = has_3d = 0, pose/betas/3D joints zeroed."""

    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):
        example = dict(self.source[i])
        for key in ("pose", "betas", "joints_3d"):
            example[key] = np.zeros_like(example[key])
        example["has_smpl"] = np.zeros_like(example["has_smpl"])
        example["has_3d"] = np.zeros_like(example["has_3d"])
        return example


def _synthetic_2d_truth(split: str, data_config: Mapping):
    """'synthetic_2d_truth': the people of 'synthetic_2d' with their labels kept, to
    evaluate a run on the people it saw with 2D keypoints only (`eval.py --datasets
    synthetic_2d`)."""
    from hkmr_jax.data import synthetic  # lazy, heavy: see `_synthetic_law`

    return synthetic.SyntheticDataset(
        split=split, size=int(data_config.get("image_size", 64)),
        seed=int(data_config.get("synthetic_seed", 0)) + 1,
        length=int(data_config.get("synthetic_2d_length", 20_000)),
        **_synthetic_law(data_config),
    )  # fmt: skip


def _synthetic_2d(split: str, data_config: Mapping):
    """'synthetic_2d': other people of the built-in data (seed `synthetic_seed` + 1) with
    2D keypoints only, `synthetic_2d_length` of them (20,000 by default: a finite set that
    a run revisits, as SPIN's fits need)."""
    return _WithoutSMPL(_synthetic_2d_truth(split, data_config))


register_dataset("synthetic_2d", _synthetic_2d)
register_dataset("synthetic_2d_truth", _synthetic_2d_truth)


@functools.cache
def _spin_format_names() -> tuple[str, ...]:
    """SPIN-format dataset names, or () when their module cannot be imported."""
    try:
        from hkmr_jax.data import spin_format  # imports tensorflow_datasets: slow, lazy
    except ImportError:
        return ()
    return tuple(spin_format.DATASETS)


def dataset_names() -> list[str]:
    """Every valid dataset name: registered ones, then the SPIN-format ones."""
    return [*_FACTORIES, *(n for n in _spin_format_names() if n not in _FACTORIES)]


class _SpinSource:
    """A built SPIN-format split as contract examples (decoded on access), plus the
    record's `gender` (str [], 'm' / 'f' for 3DPW, '' otherwise: the `3dpw` evaluator's
    ground truth needs it) and, for MPII, `visible` [24] (the `invisible` evaluator's
    flags); the training stream keeps the contract's keys only."""

    def __init__(self, name: str, split: str, data_dir):
        from hkmr_jax.data import spin_format  # lazy, heavy: imports tensorflow_datasets

        if not data_dir:
            raise ValueError(
                f"dataset {name!r} needs config.data.data_dir: the TFDS directory it was "
                f"built into (python -m hkmr_jax.data.build --dataset {name} ...)."
            )
        self._to_example = spin_format.to_example
        self._source = spin_format.load_split(name, split, data_dir)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, i):
        record = self._source[i]
        example = self._to_example(record, 0)
        gender = record.get("gender", b"")
        example["gender"] = np.asarray(gender.decode() if isinstance(gender, bytes) else gender)
        return example


def make_source(name: str, split: str, data_config: Mapping):
    """A random-access source of contract examples for dataset `name`, split `split`.

    Raises:
      ValueError: unknown name (the message lists the valid ones).
    """
    if name in _FACTORIES:
        return _FACTORIES[name](split, data_config)
    if name in _spin_format_names():
        return _SpinSource(name, split, data_config.get("data_dir"))
    raise ValueError(
        f"unknown dataset {name!r} in config.data.datasets; valid names: "
        f"{', '.join(dataset_names())} (SPIN-format names need tensorflow_datasets "
        "and a built dataset; several names joined by '+' share one ratio)."
    )


@dataclasses.dataclass(frozen=True)
class Entry:
    """One mixed dataset: name, split, and its share of every batch."""

    name: str
    split: str
    ratio: float


def expand_datasets(datasets: Sequence[Mapping], sizes: Callable[[str, str], int]) -> list[Entry]:
    """`config.data.datasets` → one `Entry` per dataset, ratios normalised to sum to 1.

    Args:
      datasets: `[{name, ratio[, split]}]`; a name 'a+b+c' splits its ratio among a, b
        and c in proportion to their sizes.
      sizes: (name, split) → number of examples (used only for '+' groups).
    """
    if not datasets:
        raise ValueError("config.data.datasets is empty: give at least one {name, ratio}.")
    entries = []
    for spec in datasets:
        spec = dict(spec)
        unknown = set(spec) - {"name", "ratio", "split"}
        if unknown or "name" not in spec:
            raise ValueError(
                f"config.data.datasets entry {spec} must have 'name' and optionally 'ratio' "
                f"and 'split'; unknown field(s): {sorted(unknown)}."
            )
        ratio = float(spec.get("ratio", 1.0))
        if not ratio > 0:
            raise ValueError(f"dataset {spec['name']!r} has ratio {ratio}; ratios must be > 0.")
        split = spec.get("split", "train")
        names = spec["name"].split("+")
        if len(names) == 1:
            entries.append(Entry(names[0], split, ratio))
            continue
        lengths = [sizes(n, split) for n in names]
        entries += [Entry(n, split, ratio * m / sum(lengths)) for n, m in zip(names, lengths)]
    total = sum(e.ratio for e in entries)
    return [dataclasses.replace(e, ratio=e.ratio / total) for e in entries]


def _seed(*parts: int) -> int:
    """A 32-bit seed (what grain accepts) derived from integers."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class _ToContract:
    """A picklable grain map: keep the contract's keys, stamp the dataset's id, and mark
    the example as not augmented (`AUGMENT_KEYS` zero; `_Augment` overwrites them)."""

    def __init__(self, dataset_id: int):
        self.dataset_id = np.int32(dataset_id)

    def __call__(self, example):
        missing = [k for k in CONTRACT_KEYS if k not in example and k != "dataset_id"]
        if missing:
            raise KeyError(f"example lacks contract key(s) {missing} (docs/CONTRACT_data.md).")
        out = {k: np.asarray(example[k]) for k in CONTRACT_KEYS if k != "dataset_id"}
        out["dataset_id"] = np.asarray(self.dataset_id)
        for key in AUGMENT_KEYS:
            out[key] = np.zeros((), np.float32)
        return out


class _Augment:
    """`augment.augment` (the same draw for the same generator), recording the drawn
    rotation and flip in `AUGMENT_KEYS`."""

    def __init__(self, augment_config):
        self._sample, self._apply = augment.sample_params, augment.apply_params
        self._config = augment.AugmentConfig.from_mapping(augment_config)

    def __call__(self, example, rng: np.random.Generator):
        params = self._sample(rng, self._config)
        out = self._apply(example, params)
        out[AUGMENT_ROTATION] = np.asarray(params.rotation, np.float32)
        out[AUGMENT_FLIP] = np.asarray(params.flip, np.float32)
        return out


def mixed_dataset(config) -> tuple[grain.MapDataset, list[Entry]]:
    """The global example stream: element n = example n of the training run.

    Args:
      config: the experiment config (`data`, `seed` via `data.seed`).

    Returns:
      (an infinite `grain.MapDataset`, the expanded dataset entries; entry k has
      `dataset_id` k).
    """
    data = config.data
    seed = int(data.get("seed", 0))
    sources: dict[tuple[str, str], Any] = {}

    def source(name, split):
        if (name, split) not in sources:
            sources[name, split] = make_source(name, split, data)
        return sources[name, split]

    entries = expand_datasets(data.datasets, lambda n, s: len(source(n, s)))
    parts = []
    for k, entry in enumerate(entries):
        src = source(entry.name, entry.split)
        ds = grain.MapDataset.source(src)
        if len(src) < STREAM_LENGTH:
            # A new permutation every epoch (grain reseeds shuffle per epoch).
            ds = ds.shuffle(seed=_seed(seed, k)).repeat()
        parts.append(ds.map(_ToContract(k)))
    _check_compatible(parts, entries)
    mixed = parts[0] if len(parts) == 1 else grain.MapDataset.mix(
        parts, [e.ratio for e in entries]
    )  # fmt: skip
    if data.get("augment") is not None:
        mixed = mixed.random_map(_Augment(data.augment), seed=_seed(seed, 1_000_003))
    return mixed, entries


def dataset_sizes(config) -> list[int]:
    """The number of examples of each expanded dataset entry of `config.data.datasets`
    (entry k is `dataset_id` k); `STREAM_LENGTH` or more for i.i.d. streams."""
    data = config.data
    sizes: dict[tuple[str, str], int] = {}

    def size(name, split):
        if (name, split) not in sizes:
            sizes[name, split] = len(make_source(name, split, data))
        return sizes[name, split]

    return [size(e.name, e.split) for e in expand_datasets(data.datasets, size)]


def _check_compatible(parts, entries):
    """Stacking needs equal shapes: compare one example of every dataset."""
    if len(parts) < 2:
        return
    first = {k: np.shape(v) for k, v in parts[0][0].items()}
    for part, entry in zip(parts[1:], entries[1:]):
        shapes = {k: np.shape(v) for k, v in part[0].items()}
        if shapes != first:
            diff = {k: (first[k], shapes[k]) for k in first if first[k] != shapes[k]}
            raise ValueError(
                f"dataset {entry.name!r} yields shapes that differ from {entries[0].name!r}'s: "
                f"{diff}; mixed datasets need the same image size (config.data.image_size "
                "for the synthetic data; SPIN-format crops are 224)."
            )


def local_batch_size(global_batch: int, process_count: int) -> int:
    """Examples per host per step; the global batch must split evenly."""
    if global_batch % process_count:
        raise ValueError(
            f"batch_size {global_batch} is not divisible by the {process_count} processes."
        )
    return global_batch // process_count


def host_dataset(config, start_step: int = 0, *, process_index: int = 0,
                 process_count: int = 1) -> grain.MapDataset:  # fmt: skip
    """This host's examples from `start_step` on, in order: element i is local example i.

    Local example i is slot `process_index·b + i mod b` of step `start_step + i // b`
    (b = the local batch size).
    """
    mixed, _ = mixed_dataset(config)
    global_batch = int(config.batch_size)
    b = local_batch_size(global_batch, process_count)

    def example(i):
        step, slot = divmod(i, b)
        return mixed[step * global_batch + process_index * b + slot]

    return grain.MapDataset.range(start_step * b, sys.maxsize).map(example)


def _worker_init(index: int, count: int) -> None:
    """In every worker process: JAX (which the built-in data's renderer uses) stays on
    the CPU, so workers never take an accelerator from the training process."""
    jax.config.update("jax_platforms", "cpu")


def train_iterator(
    config, start_step: int = 0, *, process_index: int | None = None,
    process_count: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:  # fmt: skip
    """Batches of this host's share of every global batch, from step `start_step` on.

    Args:
      config: the experiment config (`batch_size` is global, `data` as above).
      start_step: the first training step to yield data for (0 from scratch; the restored
        step when resuming).
      process_index, process_count: this host and the number of hosts (default: JAX's).

    Yields:
      dicts of stacked numpy arrays with a leading axis of `batch_size / process_count`:
      image uint8 [b, S, S, 3], keypoints [b, 24, 3], joints_3d [b, 24, 4], pose [b, 72],
      betas [b, 10], has_smpl [b], has_3d [b], dataset_id int32 [b], example_id int64 [b],
      augment_rotation float32 [b] (degrees), augment_flip float32 [b] (0 / 1).
    """
    if process_index is None or process_count is None:
        process_index, process_count = jax.process_index(), jax.process_count()
    ds = host_dataset(config, start_step, process_index=process_index, process_count=process_count)
    b = local_batch_size(int(config.batch_size), process_count)
    data = config.data
    threads = int(data.get("num_threads", 2))
    # Threads read examples ahead, in order: the output does not depend on their number.
    prefetch = int(data.get("prefetch", 2 * b))
    workers = int(data.get("worker_count") or 0)
    if workers <= 0:
        options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
        return iter(ds.to_iter_dataset(options).batch(b, drop_remainder=True))
    # Worker processes (grain's `mp_prefetch`, started with 'spawn'): element k of the
    # batched dataset is local batch k; worker w makes batches w, w + N, ... (each with
    # `num_threads` reader threads) and they are interleaved back in order, so the batches
    # are the same as without workers, whatever N.
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags; defaults outside an app
        flags.FLAGS.mark_as_parsed()
    batches = ds.batch(b, drop_remainder=True)
    options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(1, prefetch // b))
    per_worker = max(2, prefetch // (b * workers))
    mp_options = grain.MultiprocessingOptions(num_workers=workers,
                                              per_worker_buffer_size=per_worker)  # fmt: skip
    return iter(batches.to_iter_dataset(options).mp_prefetch(mp_options, _worker_init))

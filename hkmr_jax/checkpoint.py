"""Checkpoints: orbax's `CheckpointManager` behind one small class.

A checkpoint is one pytree of arrays (the training state) saved under
`<directory>/<step>/`. Orbax writes every step to a temporary directory and renames it
when complete, so a crash mid-save never leaves a half-written step under its final
name. A step whose files were damaged or lost *after* the rename is still listed by orbax
and fails to restore: `Checkpointer.restore` then warns and falls back to the previous
step, so one bad directory never loses a run.

Example::

    ckpt = Checkpointer(workdir / "checkpoints", keep=3)
    ckpt.save(step, state)                        # asynchronous; returns at once
    restored = ckpt.restore(jax.eval_shape(lambda: state))   # (step, state) or None
    ckpt.close()                                  # waits for pending saves
"""

from __future__ import annotations

import os
import warnings

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """No checkpoint in a directory that has some could be restored."""


def abstract_like(tree):
    """`jax.ShapeDtypeStruct`s (with shardings) of `tree`'s arrays: a restore target."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        tree,
    )


class Checkpointer:
    """Save and restore a pytree of arrays by step.

    Args:
      directory: where the step directories live (created if missing).
      keep: how many of the newest steps to keep (None: all).
      async_save: write in a background thread (orbax's default); `save` returns as soon
        as the arrays are copied off the device.
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int | None = None,
                 async_save: bool = True):  # fmt: skip
        self.directory = os.fspath(os.path.abspath(directory))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        # The handler is named so that `saved_structure` can read a step's metadata.
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
        )

    def steps(self) -> list[int]:
        """Saved steps, oldest first."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def saved_structure(self, step: int | None = None):
        """The tree a step holds (default: the newest) as `jax.ShapeDtypeStruct`s, read
        from its metadata without loading arrays; None if there is no checkpoint. For
        parts of a state whose shapes only the saved run knows (e.g. the fit store)."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        metadata = self._manager.item_metadata(step)
        return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype),
                            dict(metadata))  # fmt: skip

    def save(self, step: int, state, *, force: bool = True) -> bool:
        """Save `state` as `step` (a no-op returning False if that step already exists)."""
        if step in self._manager.all_steps():
            return False
        return self._manager.save(int(step), args=ocp.args.StandardSave(state), force=force)

    def restore(self, abstract_state, step: int | None = None):
        """Restore the newest readable step (or exactly `step`).

        Args:
          abstract_state: the target structure, e.g. `abstract_like(state)` or
            `jax.eval_shape(init_fn)`; arrays come back with its shapes, dtypes and
            shardings (and tuples stay tuples).
          step: a specific step; None tries the newest first and falls back to older
            ones, with a warning for each step that fails to restore.

        Returns:
          (step, state), or None if the directory holds no checkpoint.

        Raises:
          CheckpointError: checkpoints exist but none could be restored (or `step` fails).
        """
        self.wait()
        candidates = [step] if step is not None else self.steps()[::-1]
        errors = []
        for candidate in candidates:
            try:
                state = self._manager.restore(
                    candidate, args=ocp.args.StandardRestore(abstract_state)
                )
            except Exception as e:  # orbax raises many types for damaged files
                errors.append(f"step {candidate}: {type(e).__name__}: {e}")
                if step is None:
                    warnings.warn(
                        f"checkpoint step {candidate} in {self.directory} could not be "
                        f"restored ({type(e).__name__}: {str(e)[:300]}); trying the "
                        "previous one.",
                        stacklevel=2,
                    )
                continue
            return candidate, state
        if not errors:
            return None
        raise CheckpointError(
            f"no checkpoint in {self.directory} could be restored:\n"
            + "\n".join(errors)
            + "\nDelete the damaged step directories, or start afresh in a new workdir."
        )

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def save_tree(path: str | os.PathLike, tree) -> None:
    """Write one pytree of arrays to `path` (a directory; it must not exist yet).

    For standalone artefacts such as a trained pose prior.
    """
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.abspath(path), tree)


def restore_tree(path: str | os.PathLike, abstract_tree):
    """Read a pytree written by `save_tree`, shaped like `abstract_tree`.

    Raises:
      FileNotFoundError: nothing at `path`.
    """
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint directory at {path}.")
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(path, abstract_tree)

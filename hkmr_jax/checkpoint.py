"""Checkpoints: orbax's `CheckpointManager` behind one small class (`Checkpointer`).

A checkpoint is one pytree of arrays (the training state) under `<directory>/<step>/`,
written atomically by orbax. A step damaged after it was written fails to restore:
`restore` warns and falls back to the previous step, and with `set_aside=True` (training)
renames the damaged steps `<step>.damaged-<UTC time>` (kept, never deleted). Usage and
details: docs/training.md ("Checkpoints").
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import warnings

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from hkmr_jax.cli import UserError


class CheckpointError(UserError, RuntimeError):
    """No checkpoint in a directory that has some could be restored."""


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written (disk full, a file-size limit, permissions)."""


def _write_error(directory: str, step, error: Exception) -> CheckpointWriteError:
    """`error` from orbax/tensorstore as one line: its OS-level cause and the fix."""
    text = str(error)
    found = re.search(r'Failed writing: "([^"]+)": ([^\[]+)', text)
    cause = f"{found.group(2).strip()} ({found.group(1)})" if found else text[:400]
    where = f"step {step} " if step is not None else ""
    return CheckpointWriteError(
        f"could not write checkpoint {where}in {directory}: Failed writing: {cause}. Free "
        "disk space or raise the file-size limit (ulimit -f), then rerun the same command: "
        "it resumes from the last complete checkpoint."
    )


def _quiet_closed_loop_callbacks() -> None:
    """Drop tensorstore's late callbacks into orbax's closed event loop.

    When one array of a step fails to read, orbax's `asyncio.run` ends while tensorstore
    still reads the step's other arrays; each of those reads, finishing, calls
    `loop.call_soon_threadsafe` on the closed loop and reports `RuntimeError('Event loop
    is closed')` through `sys.unraisablehook` (dozens of tracebacks per damaged step).
    They carry no information (the restore already failed and said why); every other
    unraisable error still reaches the previous hook.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_hkmr_quiet", False):
        return

    def hook(unraisable):
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return
        previous(unraisable)

    hook._hkmr_quiet = True
    sys.unraisablehook = hook


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
        self._pending = None  # the step of the last asynchronous save
        _quiet_closed_loop_callbacks()

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
        try:
            saved = self._manager.save(int(step), args=ocp.args.StandardSave(state), force=force)
        except Exception as e:  # a failed earlier asynchronous save surfaces here too
            raise _write_error(self.directory, self._pending, e) from e
        self._pending = step
        return saved

    def set_aside(self, step: int) -> str:
        """Rename step `step`'s directory to `<step>.damaged-<UTC time>` (orbax no longer
        lists it; nothing is deleted) and return the new path."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        source = os.path.join(self.directory, str(step))
        target = f"{source}.damaged-{stamp}"
        suffix = 1
        while os.path.exists(target):
            target, suffix = f"{source}.damaged-{stamp}-{suffix}", suffix + 1
        os.rename(source, target)
        self._manager.reload()
        return target

    def _set_aside_all(self, steps) -> None:
        """`set_aside` each of `steps` (on process 0; the others wait, then re-list)."""
        if jax.process_index() == 0:
            for damaged in steps:
                moved = self.set_aside(damaged)
                print(f"damaged checkpoint step {damaged} moved aside to {moved}; that step "
                      "will be trained and saved again", file=sys.stderr, flush=True)  # fmt: skip
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("checkpoint_set_aside")
            self._manager.reload()

    def restore(self, abstract_state, step: int | None = None, *, set_aside: bool = False):
        """Restore the newest readable step (or exactly `step`).

        Args:
          abstract_state: the target structure, e.g. `abstract_like(state)` or
            `jax.eval_shape(init_fn)`; arrays come back with its shapes, dtypes and
            shardings (and tuples stay tuples).
          step: a specific step; None tries the newest first and falls back to older
            ones, with a warning for each step that fails to restore.
          set_aside: (with `step` None) once an older step restores, rename each newer
            step that failed with `set_aside`, so that training writes it again. Nothing
            is renamed when no step restores (that may be a different state layout, not
            damage).

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
                _quiet_closed_loop_callbacks()
                errors.append(f"step {candidate}: {type(e).__name__}: {str(e)[:300]}")
                if step is None:
                    warnings.warn(
                        f"checkpoint step {candidate} in {self.directory} could not be "
                        f"restored ({type(e).__name__}: {str(e)[:300]}); trying the "
                        "previous one.",
                        stacklevel=2,
                    )
                continue
            if set_aside and step is None and errors:
                self._set_aside_all(candidates[: len(errors)])
            return candidate, state
        if not errors:
            return None
        raise CheckpointError(
            f"no checkpoint in {self.directory} could be restored:\n  "
            + "\n  ".join(errors)
            + "\nThe files may be damaged, or written by a different config or version of "
            "the code. Nothing was changed; to keep them and start afresh, use another "
            "--workdir (or rename that directory)."
        )

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk.

        Raises:
          CheckpointWriteError: the last save failed (its OS-level cause, one line).
        """
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise _write_error(self.directory, self._pending, e) from e

    def close(self) -> None:
        """Wait for pending saves (raising `CheckpointWriteError` if one failed); release."""
        try:
            self.wait()
        finally:
            with contextlib.suppress(Exception):  # wait() has raised whatever failed
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

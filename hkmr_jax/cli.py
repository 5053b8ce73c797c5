"""How the command-line tools end: a user's mistake is one message and exit status 2.

Every entry point (`hkmr-train`, `hkmr-eval`, `hkmr-demo`, the data tools) runs its body
through `report_errors`. A `UserError` (or one of `USER_ERRORS`: a missing file, a
refused or corrupt file, a bad value) prints ``PROG: error: MESSAGE`` to stderr and exits
with status 2; the traceback is printed only when the environment sets
``HKMR_VERBOSE=1`` (or the tool's ``--verbose`` flag calls `set_verbose`). Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import traceback
import zipfile


class UserError(Exception):
    """A mistake the user can fix; the message names the thing and the fix."""


#: Exceptions that, reaching a tool's top level, describe the user's input, not a bug.
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, PermissionError,
               NotADirectoryError, IsADirectoryError, ValueError, KeyError,
               pickle.UnpicklingError, zipfile.BadZipFile)  # fmt: skip

_verbose = os.environ.get("HKMR_VERBOSE", "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """Print tracebacks of user errors too (a tool's ``--verbose`` flag)."""
    global _verbose
    _verbose = bool(on) or _verbose


def message(error: BaseException) -> str:
    """The text to show for `error`: its message (KeyError's without the quotes)."""
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        return error.args[0]
    return str(error) or type(error).__name__


@contextlib.contextmanager
def report_errors(prog: str):
    """Turn a user error raised inside the block into one line on stderr and exit 2."""
    try:
        yield
    except USER_ERRORS as error:
        if _verbose:
            traceback.print_exc()
        print(f"{prog}: error: {message(error)}", file=sys.stderr)
        raise SystemExit(2) from None

"""One error type for mistakes a user can fix, and the CLI wrapper that prints it.

Every command line entry point of the toolkit wraps its main in :func:`cli_entry`, so a
bad option, file or folder ends in one readable line on stderr and exit code 2, never a
traceback; Ctrl-C ends with 130 after the command's own cleanup ran.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
    """A problem with the user's input (option, file, folder) that they can fix."""


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return int(main(*args, **kwargs) or 0)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; finished work is kept, re-run to continue", file=sys.stderr)
            return 130

    return wrapper

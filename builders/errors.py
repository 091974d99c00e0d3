"""One error type for mistakes a user can fix, and the CLI wrapper that prints it.

Every command line entry point of the toolkit wraps its main in :func:`cli_entry`, so a
bad option, file or folder ends in one readable line on stderr and exit code 2, never a
traceback; Ctrl-C ends with 130 after the command's own cleanup ran. Output piped into a
reader that stops early (``... --list | head -1``) ends quietly, as ``cat`` does.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a producer whose reader went away


class UserError(Exception):
    """A problem with the user's input (option, file, folder) that they can fix."""


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            rc = int(main(*args, **kwargs) or 0)
            # Flush here, inside the handler: a reader that went away (| head) raises now, not
            # at interpreter exit where it would print "Exception ignored ... BrokenPipeError".
            sys.stdout.flush()
            return rc
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; finished work is kept, re-run to continue", file=sys.stderr)
            return 130

    return wrapper

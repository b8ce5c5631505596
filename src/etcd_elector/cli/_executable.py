"""Checking, before campaigning, that ``run``'s command can be executed at all: that it is
found, executable, and, for a script, that the interpreter on its ``#!`` line exists.

Without the last check a script whose interpreter is missing would pass, win an election, and
then fail with the kernel's ENOENT, which names the script, not the interpreter.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from ._exit import CliError, ExitCode

__all__ = ["check_command"]

SHEBANG_LENGTH = 256  # how much of a script's first line Linux reads (BINPRM_BUF_SIZE)
MAX_NESTING = 4  # an interpreter may be a script itself, up to this depth (as in Linux)


def check_command(argv: Sequence[str]) -> None:
    """Fail early, like a shell would, if the command cannot be found or executed.

    :raises CliError: with code 127 (not found) or 126 (not executable).
    """
    program = argv[0]
    if os.sep in program:
        _check_file(program, f"command {program!r}")
        path = program
    else:
        found = shutil.which(program)
        if found is None:
            raise CliError(
                f"command {program!r} not found on PATH: give its full path or fix PATH",
                ExitCode.NOT_FOUND,
            )
        path = found
    for _ in range(MAX_NESTING):
        line = _shebang(path)
        if line is None:
            return
        interpreter, argument = line
        where = f"command {program!r}: the interpreter {interpreter!r} on its #! line"
        hint = ""
        if interpreter.endswith("\r"):
            hint = " (the line ends in a carriage return: save the script with Unix line endings)"
        _check_file(interpreter, where, hint)
        if os.path.basename(interpreter) == "env":
            _check_env_program(program, argument)
            return
        path = interpreter


def _check_file(path: str, what: str, hint: str = "") -> None:
    if not os.path.exists(path):
        raise CliError(f"{what} was not found{hint}", ExitCode.NOT_FOUND)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise CliError(
            f"{what} is not executable (check its permissions){hint}", ExitCode.NOT_EXECUTABLE
        )


def _shebang(path: str) -> tuple[str, str] | None:
    """The interpreter and its optional argument, split as Linux splits a ``#!`` line: the
    interpreter ends at the first space or tab, the rest is one argument."""
    try:
        with open(path, "rb") as script:
            head = script.read(SHEBANG_LENGTH)
    except OSError:
        return None  # unreadable (execute-only): leave the verdict to exec
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].lstrip(b" \t")
    interpreter, _, argument = line.replace(b"\t", b" ").partition(b" ")
    if not interpreter:
        return None  # an empty #! line: exec reports it
    return os.fsdecode(interpreter), os.fsdecode(argument.strip(b" \t"))


def _check_env_program(program: str, argument: str) -> None:
    """``#!/usr/bin/env NAME``: env looks NAME up on PATH. Without ``-S`` the whole argument
    is the name (``env 'python3 -u'`` fails); with ``-S`` it is split into words."""
    if argument.startswith("-S"):
        words = [w for w in argument[2:].split() if not w.startswith("-") and "=" not in w]
        name = words[0] if words else ""
    elif argument.startswith("-"):
        return  # another option of env: not ours to second-guess
    else:
        name = argument
    if not name:
        return
    if os.sep in name:
        _check_file(name, f"command {program!r}: {name!r} on its #! line")
    elif shutil.which(name) is None:
        raise CliError(
            f"command {program!r}: its #! line runs {name!r} through env, and {name!r} is "
            "not on PATH",
            ExitCode.NOT_FOUND,
        )

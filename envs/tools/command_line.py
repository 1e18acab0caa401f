"""What the command-line entry points of mnemax share: a mistake in what was asked for is one line on
stderr and exit code 2, reported before anything is compiled; ``--debug`` adds the traceback.

    def main(argv=None):
        args = ArgumentParser(prog="mnemax-envs", ...).parse_args(argv)
        with reported_errors("mnemax-envs", args.debug):
            ...

Exceptions that carry an ``exit_code`` (:class:`ReportedError`) are printed as ``prog: message`` and
exit with that code; ``KeyboardInterrupt`` exits with 130 and the word "interrupted". Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from typing import Any, NoReturn


class ReportedError(Exception):
    """An error that an entry point reports in one line and exits with ``exit_code``."""

    exit_code = 1


class UserError(ReportedError, ValueError):
    """A mistake in what was asked for (a flag, a parameter, a run directory): exit code 2."""

    exit_code = 2


@contextlib.contextmanager
def reported_errors(
    prog: str, debug: bool = False, user_errors: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Turn :class:`ReportedError` (and the types in ``user_errors``, as :class:`UserError`) raised in the
    body into one line on stderr and ``SystemExit``; with ``debug`` the traceback comes first."""
    try:
        with _stdout_may_close():
            yield
    except KeyboardInterrupt:
        _exit(prog, "interrupted", 130, debug)
    except ReportedError as error:
        _exit(prog, str(error), error.exit_code, debug)
    except user_errors as error:
        _exit(prog, str(error), UserError.exit_code, debug)


@contextlib.contextmanager
def _stdout_may_close() -> Iterator[None]:
    """When stdout goes away (``| head``), stop quietly, as other command-line tools do."""
    try:
        yield
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise SystemExit(1) from None


def _exit(prog: str, message: str, code: int, debug: bool) -> NoReturn:
    if debug:
        traceback.print_exc()
    first_line = message.strip().splitlines()[0] if message.strip() else "error"
    print(f"{prog}: {first_line}", file=sys.stderr, flush=True)
    raise SystemExit(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its usage errors in one line (``prog: error: ... (see --help)``) and a ``--debug``
    flag for the traceback of errors found later."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", help="show the traceback of an error")

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr, flush=True)
        raise SystemExit(2)


def parse_dataclass(
    cls: Any, argv: list[str] | None, prog: str, description: str | None = None, default: Any = None
) -> Any:
    """``tyro.cli(cls)`` (with the field values of ``default``, if given, as defaults) whose parse errors
    are one line, as every other error here. ``cls`` is a dataclass or a union of them (subcommands).

    tyro reports a parse error in a box of many lines; where it offers a hook for parse errors, the
    error is reported here instead (older versions keep their box, still with exit code 2).
    """
    import tyro

    hooks = getattr(getattr(tyro, "_errors", None), "on_parse_error", None)

    def one_line(event) -> NoReturn:
        raise _ParseError(_describe_parse_error(event))

    try:
        with _stdout_may_close(), hooks(one_line) if hooks else contextlib.nullcontext():
            defaults = {} if default is None else {"default": default}
            return tyro.cli(cls, args=argv, prog=prog, description=description, **defaults)
    except _ParseError as error:
        print(f"{prog}: error: {error} (see --help)", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


class _ParseError(Exception):
    pass


def _describe_parse_error(event) -> str:
    """One line for a tyro parse-error event (matched by class name: tyro's module for them is private)."""
    kind, flag = type(event).__name__, _flags(getattr(event, "argument", None))
    if kind == "UnrecognizedArgs":
        return f"unrecognized arguments: {' '.join(event.tokens)}"
    if kind == "InstantiationFailure":
        return f"{flag}: {event.message}" if flag else str(event.message)
    if kind == "BadValue":
        return f"{flag}: {str(event.reason).replace('_', ' ')}"
    if kind == "InvalidChoice":
        return f"{flag}: {event.value!r} is not one of {', '.join(map(str, event.choices))}"
    if kind == "MissingArgs":
        missing = ", ".join(_flags(getattr(a, "arg", None)) for a in getattr(event, "missing_arguments", []))
        return f"missing required arguments: {missing}"
    return f"invalid arguments ({kind})"


def _flags(argument) -> str:
    """``--flag`` of a tyro argument definition, or ``""``."""
    return " / ".join(getattr(getattr(argument, "lowered", None), "name_or_flags", None) or ())

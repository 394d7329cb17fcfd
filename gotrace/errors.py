"""Errors the user can act on.

Everything raised as a GotraceError reaches the user as one line on stderr and exit code 2;
anything else is a bug in gotrace.
"""

import struct
from collections.abc import Iterator
from contextlib import contextmanager


class GotraceError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class NotGoBinaryError(GotraceError):
    """The file is not a Go program gotrace can read."""


class UnsupportedGoError(GotraceError):
    """The Go program was built by a Go release gotrace does not support."""

    def __init__(self, path: object, built_with: str) -> None:
        super().__init__(f"{path}: built with {built_with}; gotrace supports binaries built "
                         "with Go 1.18 or later")


class CorruptBinaryError(GotraceError):
    """The file looks like a Go program but its tables do not parse."""


@contextmanager
def malformed_input_is_corrupt(path: object) -> Iterator[None]:
    """Turn the errors that parsing damaged bytes raises into one CorruptBinaryError."""
    try:
        yield
    except (struct.error, IndexError, ValueError, OverflowError, UnicodeDecodeError) as e:
        raise CorruptBinaryError(f"{path}: malformed Go metadata ({e})") from None

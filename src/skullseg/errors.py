"""Exceptions that the command line turns into one-line messages."""

from __future__ import annotations

__all__ = ["SkullsegError", "InputError", "ImplausibleResultError"]


class SkullsegError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class InputError(SkullsegError):
    """An input file cannot be used; the message names the file and the problem."""


class ImplausibleResultError(SkullsegError):
    """The result failed a hard plausibility check."""

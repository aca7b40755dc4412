"""Errors a user can cause when describing an architecture or a search space."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


class SpecError(ValueError):
    """An architecture spec, block option or search space that is not valid.

    The message always names the offending field and what would be accepted.
    """


def choose(field: str, value: T, allowed: Iterable[T]) -> T:
    """Return ``value`` if it is one of ``allowed``; otherwise raise a ``SpecError`` naming ``field``.

    The message lists the accepted values and, for strings, suggests the closest one.
    """
    options = list(allowed)
    if value in options:
        return value
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, [str(o) for o in options], n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    shown = ", ".join(repr(o) for o in options)
    raise SpecError(f"{field}: {value!r} is not valid{hint}; expected one of {shown}")

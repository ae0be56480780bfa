"""Bounded, one-line reprs for error messages: a message must never hang or explode on the value it quotes."""
from __future__ import annotations

import math
import reprlib
from typing import Any

#: default length of a quoted value in a message
SHORT_REPR_LIMIT = 80


class _Bounded(reprlib.Repr):
    """``reprlib`` with small limits and ints that never go through ``int.__repr__`` when huge.

    ``repr`` of an int with more than 4300 digits raises ValueError (CPython's int/str limit), and one of a
    few hundred digits fills the line; both print as ``<int with N digits>`` instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = 6
        self.maxarray = 6
        self.maxstring = 60
        self.maxlong = 40
        self.maxother = 60

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # > ~39 digits: do not build the decimal string at all
            digits = int(x.bit_length() * math.log10(2)) + 1
            return f"<{'negative ' if x < 0 else ''}int with ~{digits} digits>"
        return repr(x)

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = repr(x)
        except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the error message
            return f"<{type(x).__name__} (repr failed: {type(exc).__name__})>"
        if len(text) > self.maxother:
            text = text[: self.maxother - 3] + "..."
        return text


_BOUNDED = _Bounded()


def short_repr(value: Any, limit: int = SHORT_REPR_LIMIT) -> str:
    """``repr(value)`` on one line and at most ``limit`` characters, in bounded time and memory.

    Nested containers show their first few items and levels only (so an expanded YAML alias bomb, a shared
    or recursive structure prints at once), huge ints show their size, newlines become ``\\n``. Use it
    wherever an error message quotes a value a user typed.
    """
    text = _BOUNDED.repr(value)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > limit:
        text = text[: max(limit - 3, 1)] + "..."
    return text

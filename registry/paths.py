"""File names as the operating system gives them, stored losslessly with a printable display form.

On Linux a file name is any byte string without ``/`` and NUL: it need not be UTF-8 (``b"\\xff"``) and may
contain newlines. Python hands such names around as ``str`` with lone surrogates (``surrogateescape``),
which cannot be encoded as UTF-8 text: not into the registry, not into JSON, not onto a terminal.

So every path leaves the program in two forms:

* ``display_path(p)``: one printable line, UTF-8 text. Bytes that are not UTF-8 are written ``\\xNN``,
  control characters ``\\n``, ``\\t``, ``\\r`` or ``\\xNN``. This is the ``path`` column, what tables
  and messages print, and what ``show PATH`` matches.
* ``raw_path(p)``: the exact bytes, but only when the display form differs from them (NULL for every
  ordinary name). This is the ``path_raw`` column and the ``path_raw_hex`` field of events, so the name
  is recorded losslessly and two names with the same display form stay apart.
"""

from __future__ import annotations

import os
from typing import Any

_CONTROL = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape_controls(s: str) -> str:
    if s.isprintable():
        return s
    out = []
    for ch in s:
        o = ord(ch)
        if o < 0x20 or o == 0x7F:
            out.append(_CONTROL.get(ch, f"\\x{o:02x}"))
        else:
            out.append(ch)
    return "".join(out)


def path_bytes(p: str | bytes | os.PathLike[str]) -> bytes:
    return os.fsencode(p)


def display_path(p: str | bytes | os.PathLike[str]) -> str:
    """A printable, single-line UTF-8 form of a path (undecodable bytes as ``\\xNN``, controls escaped)."""
    if type(p) is str and p.isascii() and p.isprintable():  # (most paths: their own display form)
        return p
    return _escape_controls(os.fsencode(p).decode("utf-8", "backslashreplace"))


def raw_path(p: str | bytes | os.PathLike[str]) -> bytes | None:
    """The exact bytes of the path when its display form is not exactly those bytes, else None."""
    if type(p) is str and p.isascii() and p.isprintable():
        return None
    b = os.fsencode(p)
    return None if display_path(p).encode("utf-8") == b else b


def clean_text(s: str) -> str:
    """Text that can be stored and printed: lone surrogates (undecodable name bytes) become ``\\xNN``."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def clean_obj(v: object) -> object:
    """``clean_text`` applied to every string inside dicts, lists and tuples."""
    if isinstance(v, str):
        return clean_text(v)
    if isinstance(v, dict):
        return {clean_text(str(k)): clean_obj(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [clean_obj(x) for x in v]
    return v


def already_clean(v: Any) -> bool:
    """Whether :func:`clean_obj` would leave ``v`` as it is (up to tuples becoming lists, which JSON does
    not tell apart): every string storable and every dict key a string. Checking costs a fraction of
    cleaning a copy, and analyzers' cells almost always pass (the store's cell encoder asks first)."""
    t = type(v)
    if t is str:
        return v.isascii() or clean_text(v) is v
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or not (k.isascii() or clean_text(k) is k) or not already_clean(x):
                return False
        return True
    if t is list or t is tuple:
        return all(already_clean(x) for x in v)
    return not isinstance(v, str | dict | list | tuple)  # (subclasses: let clean_obj decide)

"""Shell-style globs (``fnmatch``'s ``*``, ``?``, ``[...]``) matched with a bounded cache of
compiled patterns of their own: ``fnmatch.fnmatchcase`` keeps up to 32,768 compiled patterns
for the process, and here the patterns come from any client of a port (the web view's filters,
the faults that the toxiproxy API sets): 3,000 distinct patterns of 4 kB held 118 MB there."""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import translate
from functools import lru_cache

MAX_PATTERNS = 64  # compiled patterns kept; another one is compiled again when asked


def compile_glob(pattern: str) -> Callable[[str], re.Match | None]:
    """``pattern`` compiled once, for whatever holds it (a fault, a filter): its ``match(name)``
    is ``fnmatch.fnmatchcase(name, pattern)``'s answer (a match or None), with no cache."""
    return re.compile(translate(pattern)).match


@lru_cache(maxsize=MAX_PATTERNS)
def _glob(pattern: str):
    return compile_glob(pattern)


def fnmatchcase(name: str, pattern: str) -> bool:
    """Whether ``name`` matches ``pattern``, case-sensitively (as ``fnmatch.fnmatchcase``)."""
    return _glob(pattern)(name) is not None

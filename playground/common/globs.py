"""Shell-style globs (``fnmatch``'s ``*``, ``?``, ``[...]``), compiled once by what holds them.

``fnmatch.fnmatchcase`` keeps up to 32,768 compiled patterns for the process, and here the
patterns come from any client of a port (the web view's filters, the faults that the toxiproxy
API sets): 3,000 distinct patterns of 4 kB held 118 MB there. So a pattern is compiled when the
fault or the filter that holds it is made, kept on it, and goes with it; nothing here caches
(``re.compile``'s own cache of recent patterns is bounded: 512 in CPython).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import translate


def compile_glob(pattern: str) -> Callable[[str], re.Match | None]:
    """``pattern`` compiled once, for whatever holds it (a fault, a filter): its ``match(name)``
    is ``fnmatch.fnmatchcase(name, pattern)``'s answer (a match or None), with no cache."""
    return re.compile(translate(pattern)).match

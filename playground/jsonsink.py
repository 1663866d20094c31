"""``--json FILE``: every record as one JSON object per line (schema: docs/json-schema.md).

An ``IService``: ``startService`` opens the file for appending (``-`` is the process's stdout),
``stopService`` writes what is queued, flushes and closes. Records are encoded once per reactor
turn and written in a single ``write()`` of whole lines, so a reader or a log rotation never sees
half a record at a flush point.
"""

from __future__ import annotations

import json
import sys

from playground.console import BufferedSink
from playground.records import to_json

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False,
                           allow_nan=False).encode


class JsonSink(BufferedSink):
    label = "json"

    def __init__(self, path: str, max_value: int = 200, reactor=None):
        super().__init__(reactor)
        self.path = path
        self.name = f"json@{path}"
        self.max_value = max_value
        self._owned = path != "-"

    def open_output(self):
        if self._owned:
            return open(self.path, "ab")
        return (sys.__stdout__ or sys.stdout).buffer

    def close_output(self):
        if self._owned:
            self.out.close()
        else:
            self.out.flush()

    def format_batch(self, batch: list) -> bytes:
        lim = self.max_value
        text = "\n".join([_encode(to_json(r, lim)) for r in batch]) + "\n"
        return text.encode("utf-8", "surrogatepass")

"""Reading captures back with tshark: its output for a pcap, the non-blank rows, and the Redis
commands its RESP dissector finds."""

from __future__ import annotations

import subprocess

from tests.support.processes import need


def tshark(path, *args) -> str:
    """``tshark -r path *args``'s output; a non-zero exit fails the test."""
    exe = need("tshark")
    out = subprocess.run(
        [exe, "-r", str(path), *args], capture_output=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def rows(text: str) -> list[str]:
    """The non-blank lines of ``text``."""
    return [line for line in text.splitlines() if line.strip()]


def redis_commands(path, port=6379, *extra) -> int:
    """Client commands tshark's RESP dissector finds in a pcap: arrays in frames to ``port``,
    minus the partial array of a frame whose command is completed (and shown again) in a later
    frame. ``extra``: more tshark options (``-d tcp.port==N,resp``)."""
    out = tshark(
        path,
        *extra,
        "-Y",
        f"resp && tcp.dstport == {port}",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-e",
        "resp.array.length",
        "-e",
        "resp.reassembled_in_next_frame",
    )
    total = 0
    for line in out.splitlines():
        arrays, partial = (line.split("\t") + [""])[:2]
        total += len([a for a in arrays.split("|") if a]) - len(
            [p for p in partial.split("|") if p]
        )
    return total

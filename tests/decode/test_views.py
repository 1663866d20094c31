"""Terminal-safe escaping, the hexdump view (checked against hexdump -C), the line view."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.decode.views import Line, LineView, escape, hexdump, hexdump_lines, is_text, quoted
from tests.support.processes import need


@pytest.mark.pure
@pytest.mark.parametrize("byte", list(range(0x20)) + [0x7F])
def test_every_ascii_control_byte_is_escaped(byte):
    out = escape(b"a" + bytes([byte]) + b"b")
    assert all(0x20 <= ord(c) < 0x7F for c in out)
    assert out.startswith("a\\") and out.endswith("b")


@pytest.mark.pure
def test_named_escapes():
    assert escape(b"\r\n\t\x1b[2J\\") == "\\r\\n\\t\\x1b[2J\\\\"
    assert escape(b'say "hi"', quote=True) == 'say \\"hi\\"'
    assert escape(b'say "hi"') == 'say "hi"'


@pytest.mark.pure
def test_non_utf8_and_unicode_controls():
    assert escape(b"\xff\xfe") == "\\xff\\xfe"
    assert escape("é中".encode()) == "é中"
    assert escape("\u009b31m".encode()) == "\\u009b31m"  # C1 CSI
    assert escape("\u202e".encode()) == "\\u202e"  # bidi override
    assert escape("\u2028".encode()) == "\\u2028"


@pytest.mark.pure
@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=100))
def test_escape_output_is_always_terminal_safe(data):
    out = escape(data)
    assert out.isprintable()
    assert "\x1b" not in out and "\r" not in out and "\n" not in out


@pytest.mark.pure
def test_quoted_truncates_with_full_length():
    assert quoted(b"x" * 5000000, 4) == '"xxxx..." (5000000 bytes)'
    assert quoted(b"bar") == '"bar"'


@pytest.mark.real
@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=100))
def test_hexdump_matches_hexdump_c_without_repeats(data):
    rows = [data[i : i + 16] for i in range(0, len(data), 16)]
    if any(rows[i] == rows[i + 1] for i in range(len(rows) - 1)):
        return  # hexdump squeezes repeated rows into '*'; we never do
    real = subprocess.run([need("hexdump"), "-C"], input=data, capture_output=True).stdout
    assert hexdump(data) == real.decode()


@pytest.mark.pure
def test_hexdump_offsets_continue_across_chunks():
    lines = hexdump_lines(b"abc", offset=0x1F0)
    assert lines == ["000001f0  61 62 63" + " " * 42 + "|abc|"]


@pytest.mark.pure
def test_line_view_bounded_and_split_invariant():
    v = LineView(max_line=8)
    out = v.feed(b"one\r\ntwo\nthis is long\nta")
    out += v.feed(b"il")
    out += v.flush()
    assert [(ln.data, ln.partial) for ln in out] == [
        (b"one\r\n", False),
        (b"two\n", False),
        (b"this is ", True),
        (b"long\n", False),
        (b"tail", True),
    ]
    assert [ln.offset for ln in out] == [0, 5, 9, 17, 22]


@pytest.mark.pure
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8), st.integers(1, 20))
def test_line_view_any_split_gives_same_lines(data, cuts, limit):
    def run(pieces):
        v = LineView(max_line=limit)
        out: list[Line] = []
        for p in pieces:
            out += v.feed(p)
        return out + v.flush()

    points = sorted({0, len(data), *[c % (len(data) + 1) for c in cuts]})
    pieces = [data[a:b] for a, b in zip(points, points[1:], strict=False)]
    whole = run([data])
    assert run(pieces) == whole
    assert b"".join(ln.data for ln in whole) == data
    assert all(len(ln.data) <= limit for ln in whole)


@pytest.mark.pure
def test_is_text():
    assert is_text(b"hello\r\n\tworld")
    assert not is_text(b"\x00abc")
    assert not is_text(b"\xff")

"""Decimal numbers of ASCII digits only: what int() would also take is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.common.digits import decimal, digits_only, hexadecimal

NOT_DECIMALS = ["", "+5", "-5", "1_0", " 5", "5 ", "5\n", "\t5", "٣", "²", "5.0", "0x5", "five",
                "５"]  # the last: a fullwidth digit, which int() reads as 5


@pytest.mark.pure
@pytest.mark.parametrize("text", NOT_DECIMALS)
@pytest.mark.parametrize("kind", [str, bytes])
def test_what_int_takes_and_a_protocol_does_not_is_refused(text, kind):
    value = text if kind is str else text.encode()
    assert not digits_only(value)
    assert decimal(value, 20) is None


@pytest.mark.pure
def test_leading_zeros_are_read_and_the_bound_counts_them():
    assert decimal("0", 1) == 0 and decimal(b"007", 3) == 7
    assert decimal("0007", 3) is None
    assert decimal("9" * 18, 18) == 10**18 - 1 and decimal("1" + "0" * 18, 18) is None


@pytest.mark.pure
def test_very_long_is_refused_without_int_raising():
    assert decimal("9" * 100_000, 19) is None  # int() would raise past 4,300 digits
    assert digits_only("9" * 100_000)


@pytest.mark.pure
@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=4))
def test_a_number_written_out_reads_back(n, zeros):
    text = "0" * zeros + str(n)
    assert decimal(text, len(text)) == n == decimal(text.encode(), 40)
    assert decimal(text, len(text) - 1) is None


@pytest.mark.pure
@given(st.text(max_size=12))
def test_any_text_is_a_decimal_exactly_when_it_is_ascii_digits(text):
    ascii_digits = text != "" and all(c in "0123456789" for c in text)
    assert digits_only(text) is ascii_digits
    assert decimal(text, 12) == (int(text) if ascii_digits else None)
    if not ascii_digits:
        assert decimal(text.encode("utf-8", "surrogatepass"), 12) is None


@pytest.mark.pure
@given(st.binary(max_size=12))
def test_any_bytes_are_a_decimal_exactly_when_they_are_ascii_digits(data):
    ascii_digits = data != b"" and all(48 <= c <= 57 for c in data)
    assert digits_only(data) is ascii_digits
    assert decimal(data, 12) == (int(data) if ascii_digits else None)


@pytest.mark.pure
@pytest.mark.parametrize("data", [b"", b"0x5", b"+5", b"-5", b"5_0", b" 5", b"5 ", b"5\n", b"g",
                                  "٣".encode(), b"1" * 17])
def test_a_chunk_size_int_would_read_is_not_hexadecimal(data):
    assert hexadecimal(data, 16) is None


@pytest.mark.pure
@given(st.integers(min_value=0, max_value=16**16 - 1), st.booleans(), st.integers(0, 3))
def test_hex_written_out_reads_back(n, upper, zeros):
    data = (b"0" * zeros + b"%x" % n)[-16:] if n else b"0" * (zeros + 1)
    data = data.upper() if upper else data
    assert hexadecimal(data, 16) == n
    assert hexadecimal(data, len(data) - 1) is None


@pytest.mark.pure
@given(st.binary(max_size=18))
def test_any_bytes_are_hexadecimal_exactly_when_they_are_ascii_hex_digits(data):
    ok = 0 < len(data) <= 16 and all(c in b"0123456789abcdefABCDEF" for c in data)
    assert hexadecimal(data, 16) == (int(data, 16) if ok else None)

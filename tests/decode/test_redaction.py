"""Redaction's one module: the secret headers and how headers and body previews are masked."""

from __future__ import annotations

import pytest

from playground.decode.redaction import (
    REDACTED,
    SECRET_HEADERS,
    mask_preview,
    redact_headers,
    secret_values,
)

pytestmark = pytest.mark.pure


def test_the_secret_headers():
    assert SECRET_HEADERS == {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"}


def test_headers_keep_their_names_and_order_with_credentials_hidden():
    headers = ((b"Host", b"h"), (b"Authorization", b"Basic dXNlcjpwdw=="), (b"Cookie", b"s=1"),
               (b"set-cookie", b""))
    assert redact_headers(headers) == ((b"Host", b"h"), (b"Authorization", REDACTED),
                                       (b"Cookie", REDACTED), (b"set-cookie", b""))


def test_headers_without_credentials_come_back_as_they_were():
    headers = ((b"Host", b"h"), (b"Accept", b"*/*"))
    assert redact_headers(headers) is headers


def test_secret_values_longest_first_with_the_credential_after_the_scheme():
    found = secret_values(((b"Authorization", b"Bearer tok123"),), ((b"Set-Cookie", b"id=7"),))
    assert found == [b"Bearer tok123", b"tok123", b"id=7"]
    assert secret_values(((b"Authorization", b"Basic ab"),)) == [b"Basic ab"]  # too short alone
    assert secret_values(((b"Host", b"h"),)) == []


def test_previews_echoing_a_secret_mask_it():
    secrets = secret_values(((b"Authorization", b"Bearer tok123"),))
    body = b'{"Authorization": "Bearer tok123", "x": "tok123"}'
    assert mask_preview(body, secrets, len(body)) == (
        b'{"Authorization": "(redacted)", "x": "(redacted)"}')


def test_a_preview_cut_inside_a_secret_masks_it_from_its_first_byte():
    secrets = [b"tok123456"]
    assert mask_preview(b'{"t": "tok12', secrets, 100) == b'{"t": "(redacted)'
    # the whole body: an ending that merely looks like a secret's start stays
    assert mask_preview(b'{"t": "tok12', secrets, 12) == b'{"t": "tok12'

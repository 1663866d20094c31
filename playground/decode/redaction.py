"""What is secret and how it is shown: the one definition of the mark, of the Redis commands and
HTTP headers that carry credentials, and of how HTTP headers and body previews are masked.

Imported by the RESP and HTTP decoders and their stream adapters, and by the line views, so they
cannot drift apart. Where a secret sits inside a protocol's frames is that protocol's knowledge
and stays with its decoder (``respdecoder.secret_parts`` and friends for Redis commands and
answers, ``httpdecoder.secret_value`` for a header line). Pure: imports nothing.
"""

from __future__ import annotations

REDACTED = b"(redacted)"  # what a hidden secret is shown as, in every view
# The commands ``respdecoder.secret_parts`` may find a password in.
SECRET_COMMANDS = frozenset({b"AUTH", b"HELLO", b"MIGRATE", b"CONFIG", b"ACL", b"SENTINEL"})
# The HTTP headers whose values are credentials (lower case).
SECRET_HEADERS = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})


def redact_headers(headers) -> tuple:
    """``headers`` (``((name, value), ...)``) with each credential's value shown as
    ``REDACTED``; the same tuple when there is none."""
    out = []
    changed = False
    for k, v in headers:
        if v and k.lower() in SECRET_HEADERS:
            out.append((k, REDACTED))
            changed = True
        else:
            out.append((k, v))
    return tuple(out) if changed else headers


def secret_values(*header_lists) -> list[bytes]:
    """The secret header values (and the credential after an ``Authorization`` scheme), so a
    body that echoes them (httpbin's ``/headers``, ``/get``) can be masked in previews too."""
    found = []
    for headers in header_lists:
        for k, v in headers:
            if v and k.lower() in SECRET_HEADERS:
                found.append(v)
                scheme, _, credential = v.partition(b" ")
                if len(credential) >= 4:
                    found.append(credential.strip())
    return sorted(set(found), key=len, reverse=True)  # longest first: mask whole values first


def mask_preview(preview: bytes, secrets: list[bytes], size: int = 0) -> bytes:
    """``preview`` with each secret replaced by ``(redacted)``; when the preview is the cut
    start of a ``size``-byte body, a secret it ends inside is masked from its first byte."""
    for secret in secrets:
        if secret in preview:
            preview = preview.replace(secret, REDACTED)
    if len(preview) < size:
        for secret in secrets:
            cut = _cut_secret(preview, secret)
            if cut < len(preview):
                preview = preview[:cut] + REDACTED
    return preview


def _cut_secret(preview: bytes, secret: bytes) -> int:
    """Where the longest tail of ``preview`` that is the start of ``secret`` begins
    (``len(preview)`` if none)."""
    n = len(preview)
    i = max(0, n - len(secret) + 1)
    first = secret[:1]
    while True:
        i = preview.find(first, i)
        if i < 0:
            return n
        if secret.startswith(preview[i:]):
            return i
        i += 1

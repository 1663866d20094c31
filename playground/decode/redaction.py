"""What is secret and how it is shown: the one definition of the mark, of the Redis commands,
HTTP headers and URL parameters (a query's, a fragment's) that carry credentials, and of how
HTTP headers, request targets and body previews are masked.

Imported by the RESP and HTTP decoders and their stream adapters, and by the line views, so they
cannot drift apart. Where a secret sits inside a protocol's frames is that protocol's knowledge
and stays with its decoder (``respdecoder.secret_parts`` and friends for Redis commands and
answers, ``httpdecoder.secret_value`` for a header line); where a secret sits in a request
target's or a URL's parameters is said here (``query_secrets``), as the replay tool labels
targets too. Pure: imports only the standard library's percent-decoding and ``re``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

REDACTED = b"(redacted)"  # what a hidden secret is shown as, in every view
# The commands ``respdecoder.secret_parts`` may find a password in.
SECRET_COMMANDS = frozenset({b"AUTH", b"HELLO", b"MIGRATE", b"CONFIG", b"ACL", b"SENTINEL"})
# The configuration parameters (lower case) whose value is a password: Redis' (``CONFIG
# SET``/``GET``) and Sentinel's own (``SENTINEL CONFIG SET``/``GET sentinel-pass``, Redis 6.2+).
SECRET_CONFIG = frozenset({b"requirepass", b"masterauth", b"tls-key-file-pass",
                           b"tls-client-key-file-pass", b"sentinel-pass"})
# The URL parameters whose values are credentials, compared with a name percent-decoded, in
# lower case, with ``-`` read as ``_`` and without a ``[]`` suffix (``X-Amz-Signature``,
# ``API-Key``, ``access%5Ftoken``, ``access_token[]``).
# Drawn from what peers mask by default: Sentry's denylist (password, passwd, secret, api_key,
# apikey, auth, token, session...), HAR sanitizers (access_token, refresh_token, id_token,
# client_secret; AWS presigned URLs' X-Amz-Signature and X-Amz-Security-Token), GitLab's
# private_token. Left out on purpose: ``code`` and ``state`` (OAuth's, but also any country
# code or page state: masking them would hide ordinary traffic), ``client_id`` and ``user``.
SECRET_PARAMS = frozenset({
    b"access_token", b"refresh_token", b"id_token", b"token", b"auth", b"auth_token",
    b"private_token", b"api_key", b"apikey", b"key", b"password", b"passwd", b"pwd",
    b"secret", b"client_secret", b"signature", b"sig", b"session", b"sessionid", b"session_id",
    b"x_amz_signature", b"x_amz_security_token", b"x_goog_signature",
})
# The HTTP headers whose values are credentials (lower case): the four HTTP names them, and those
# named as a credential parameter (``-`` for ``_``) after ``X-`` (``X-Api-Key``,
# ``X-Auth-Token``, ``X-Amz-Security-Token``) or, when the name has a ``-``, without it
# (``Api-Key``, GitLab's ``Private-Token``): what ``?api_key=`` hides in a URL, ``X-Api-Key:``
# carries in a head. A one-word name without ``X-`` (``Key``, ``Token``, ``Session``) is left
# out: it is also how many a Redis key starts (``session:42``), which a text view would take for
# a header line.
SECRET_HEADERS = frozenset(
    {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"}
    | {b"x-" + p.replace(b"_", b"-") for p in SECRET_PARAMS if not p.startswith(b"x_")}
    | {p.replace(b"_", b"-") for p in SECRET_PARAMS if b"_" in p})
# The HTTP headers whose values are URLs (lower case): their credential parameters are hidden as
# a request target's are (``Referer: /cb?access_token=``, a redirect's ``Location``, an OAuth
# implicit grant's ``Location: /cb#access_token=``, ``Refresh: 0; url=...``). Looked at only
# when the value has a ``?`` or a ``#`` (``has_params``).
URL_HEADERS = frozenset({b"referer", b"location", b"content-location", b"refresh"})
# Header name (lower case) -> True: its value is a credential (``SECRET_HEADERS``); False: a URL
# that may carry credential query parameters (``URL_HEADERS``). One look-up per header.
HEADER_SECRETS = {**dict.fromkeys(URL_HEADERS, False), **dict.fromkeys(SECRET_HEADERS, True)}


def redact_message(target: bytes | None, target_secrets, *header_lists):
    """What a request (and its answer) shows, in one walk: ``(target, header_lists, secrets)``,
    ``target`` with the values at ``target_secrets`` (its ``query_secrets``, as the HTTP
    decoder found them) shown as ``REDACTED``, each of ``header_lists`` with each credential's
    value shown as ``REDACTED`` and a URL header's credential parameter values as
    ``redact_target`` shows them (the same tuple when there is none), and the values hidden in
    them, longest first, for ``mask_preview``: the target's as ``redact_query`` gives them; a
    secret header's value, and the credential after an ``Authorization`` scheme; a URL header's
    value with credential parameters (``URL_HEADERS``), and those values (so a body that echoes
    them, httpbin's ``/headers``, ``/get``, is masked in previews too)."""
    found: list[bytes] = []
    if target_secrets:
        target, found = _hide(target, target_secrets)
    shown = tuple(_redacted(headers, found) for headers in header_lists)
    return target, shown, _longest_first(found)


def secret_values(*header_lists) -> list[bytes]:
    """The values ``redact_message`` hides in ``header_lists``, longest first (a replay's
    report masks its previews with them)."""
    found: list[bytes] = []
    for headers in header_lists:
        _redacted(headers, found)
    return _longest_first(found)


def _redacted(headers, found: list) -> tuple:
    """``headers`` as ``redact_message`` shows them, the one walk over them; each value hidden
    is appended to ``found`` (in no order)."""
    out = None
    for i, (k, v) in enumerate(headers):
        kind = HEADER_SECRETS.get(k.lower())
        if kind is None or not v:
            continue
        if kind:
            shown = REDACTED
            found.append(v)
            credential = v.partition(b" ")[2]
            if len(credential) >= 4:
                found.append(credential.strip())
        elif has_params(v):
            shown, values = redact_query(v)
            if shown is v:
                continue
            found.append(v)
            found += values
        else:
            continue
        if out is None:
            out = list(headers)
        out[i] = (k, shown)
    return headers if out is None else tuple(out)


def _longest_first(secrets: list[bytes]) -> list[bytes]:
    """``secrets`` without repeats, the longest first: ``mask_preview`` masks whole values
    first."""
    return sorted(set(secrets), key=len, reverse=True)


_PARAMS_START = re.compile(rb"[?#]")


def params_start(url: bytes, start: int = 0, end: int | None = None) -> int:
    """Where the parameters of a URL (or of a request target) begin in ``url[start:end]``:
    at its first ``?`` (a query) or ``#`` (a fragment: an OAuth implicit grant's
    ``#access_token=``), whichever comes first; -1 without either."""
    m = _PARAMS_START.search(url, start, len(url) if end is None else end)
    return -1 if m is None else m.start()


def has_params(url: bytes) -> bool:
    """Whether ``url`` may carry parameters (a ``?`` or a ``#``): the quick test before
    ``query_secrets``."""
    return b"?" in url or b"#" in url


def secret_param(name: bytes) -> bool:
    """Whether URL parameter ``name`` (as sent) is one of ``SECRET_PARAMS``."""
    if b"%" in name:
        name = unquote_to_bytes(name)
    if name[-2:] == b"[]":  # a list's (PHP, Rails): ``access_token[]=``
        name = name[:-2]
    return name.lower().replace(b"-", b"_") in SECRET_PARAMS


def _names_pattern() -> re.Pattern:
    """A name of ``SECRET_PARAMS`` as sent (any case, ``-`` or ``_``, maybe with ``[]``), or a
    name with a ``%`` (``secret_param`` decodes it), where a name may begin (after the ``?`` or
    ``#`` the parameters start with, ``&`` or ``;``), followed by its ``=``."""
    names = sorted(SECRET_PARAMS, key=len, reverse=True)
    plain = b"|".join(re.escape(n).replace(b"_", b"[-_]") for n in names)
    return re.compile(rb"(?<=[?#&;])(?:(?i:" + plain + rb")(?:\[\])?|([^?#&;=%]*%[^?#&;=]*))=")


_NAMES = _names_pattern()


def query_secrets(target: bytes) -> list[tuple[int, int]]:
    """Where the values of credential parameters (``SECRET_PARAMS``) are in a request target or
    a URL: ``[(start, end), ...]`` in ``target``, in order, none empty; ``[]`` without a ``?``
    or a ``#`` (``has_params``). A query's and a fragment's ``name=value`` pairs are read
    alike (a fragment's ``#access_token=``, a hash route's ``#/cb?token=``). Parameters are
    split at ``&``; a name may also start after a ``;`` (servers that split there too), a
    ``?`` or a ``#``, and a secret's value runs to the next ``&``, so whichever way a server
    splits ``token=a;b`` or ``x=1;token=b``, what it takes for the secret is inside the range.
    One regular-expression scan for the names (``_NAMES``): a query of many ordinary parameters
    costs no Python work per parameter."""
    q = params_start(target)
    if q < 0:
        return []
    out = []
    last = q + 1  # where the last secret's value ends: a name inside it is part of the value
    for m in _NAMES.finditer(target, q + 1):
        at = m.start()
        if at < last or (m.group(1) is not None and not secret_param(m.group(1))):
            continue
        eq = m.end()
        amp = target.find(b"&", eq)
        end = len(target) if amp < 0 else amp
        if end > eq:
            out.append((eq, end))
        last = end
    return out


def redact_target(target: bytes) -> bytes:
    """``target`` with each credential parameter's value (``query_secrets``) shown as
    ``REDACTED``; the same bytes when there is none."""
    return redact_query(target)[0]


def redact_query(target: bytes) -> tuple[bytes, list[bytes]]:
    """``(target redacted, values)``: ``target`` as ``redact_target`` shows it, and the
    credential values it hid (as sent and percent-decoded; those of 4 bytes or more), so a body
    that echoes them (httpbin's ``/get``: ``"args": {"access_token": ...}``) can be masked in
    previews as ``secret_values``' are."""
    spans = query_secrets(target)
    return _hide(target, spans) if spans else (target, [])


def _hide(target: bytes, spans) -> tuple[bytes, list[bytes]]:
    """``redact_query`` of ``target`` whose secrets are at ``spans`` (not empty)."""
    parts = []
    values = []
    last = 0
    for start, end in spans:
        parts += (target[last:start], REDACTED)
        last = end
        value = target[start:end]
        values.append(value)
        if b"%" in value or b"+" in value:
            values.append(unquote_to_bytes(value.replace(b"+", b" ")))
    parts.append(target[last:])
    return b"".join(parts), [v for v in values if len(v) >= 4]


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

"""Redaction's one module: the secret headers and query parameters, and how headers, request
targets and body previews are masked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.decode.redaction import (
    REDACTED,
    SECRET_HEADERS,
    SECRET_PARAMS,
    URL_HEADERS,
    mask_preview,
    query_secrets,
    redact_message,
    redact_query,
    redact_target,
    secret_values,
)

pytestmark = pytest.mark.pure


def redact_headers(headers) -> tuple:
    """One header list as ``redact_message`` shows it."""
    return redact_message(None, (), headers)[1][0]


def test_the_secret_headers():
    assert {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"} <= SECRET_HEADERS


@pytest.mark.parametrize("name", [b"X-Api-Key", b"x-auth-token", b"X-Access-Token",
                                  b"Api-Key", b"PRIVATE-TOKEN", b"X-Amz-Security-Token",
                                  b"X-Session-Id", b"x-apikey", b"X-Password", b"X-Secret"])
def test_headers_named_like_a_credential_parameter_are_credentials(name):
    """What ``?api_key=`` hides in a URL, ``X-Api-Key:`` carries in a head: a header named as
    a credential parameter (``SECRET_PARAMS``, ``-`` for ``_``) after ``X-``, or without it
    when the name has a ``-`` (GitLab's ``PRIVATE-TOKEN``), is one."""
    headers = ((b"Host", b"h"), (name, b"k3y-s3cret"))
    assert redact_headers(headers) == ((b"Host", b"h"), (name, REDACTED))
    assert secret_values(headers) == [b"k3y-s3cret"]


@pytest.mark.parametrize("name", [b"Key", b"Token", b"Session", b"Signature", b"Auth",
                                  b"X-Csrf", b"Sec-WebSocket-Key", b"Keys"])
def test_one_word_headers_and_others_are_not(name):
    """A one-word name (``Key``, ``Session``) is also the start of many a Redis key
    (``session:42``), which the text view would take for a header line: left alone."""
    headers = ((name, b"v4lue"),)
    assert redact_headers(headers) is headers


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


def test_url_headers_hide_their_credential_query_values():
    """``Referer``, ``Location``, ``Content-Location`` and ``Refresh`` (any case) carry URLs:
    their credential query values are hidden as a request target's; a short one too, as
    ``secret_values`` is not empty for it (the records' headers are redacted only then)."""
    assert URL_HEADERS == {b"referer", b"location", b"content-location", b"refresh"}
    headers = ((b"referer", b"http://h/cb?access_token=abc123&x=1"), (b"LOCATION", b"/a?key=k"),
               (b"Refresh", b"0; url=/r?sig=s1g"), (b"X-Url", b"/a?token=abc123"),
               (b"Content-Location", b"/c?page=2"))
    assert redact_headers(headers) == (
        (b"referer", b"http://h/cb?access_token=(redacted)&x=1"),
        (b"LOCATION", b"/a?key=(redacted)"), (b"Refresh", b"0; url=/r?sig=(redacted)"),
        (b"X-Url", b"/a?token=abc123"), (b"Content-Location", b"/c?page=2"))
    assert secret_values(headers) == [b"http://h/cb?access_token=abc123&x=1",
                                      b"0; url=/r?sig=s1g", b"/a?key=k", b"abc123"]
    assert secret_values(((b"Location", b"/a?k=1"),)) == []
    plain = ((b"Location", b"/a?page=2"), (b"Referer", b"http://h/"))
    assert redact_headers(plain) is plain
    # an OAuth implicit grant's redirect carries the token in the fragment
    implicit = ((b"Location", b"https://app/cb#access_token=s3cr3t-tok&token_type=bearer"),)
    assert redact_headers(implicit) == (
        (b"Location", b"https://app/cb#access_token=(redacted)&token_type=bearer"),)
    assert secret_values(implicit) == [implicit[0][1], b"s3cr3t-tok"]


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


def test_credential_query_parameters_are_found_by_name_in_any_case_or_spelling():
    target = (b"/cb?access_token=abc123&x=1&API-Key=k&Access%5Ftoken=pct&key=&token"
              b"&X-Amz-Signature=f00d&page=2")
    assert [target[s:e] for s, e in query_secrets(target)] == [b"abc123", b"k", b"pct", b"f00d"]
    assert redact_target(target) == (b"/cb?access_token=(redacted)&x=1&API-Key=(redacted)"
                                     b"&Access%5Ftoken=(redacted)&key=&token"
                                     b"&X-Amz-Signature=(redacted)&page=2")
    assert query_secrets(b"/search?q=token&code=US&state=x") == []  # names, not values
    assert query_secrets(b"/no-query") == [] and query_secrets(b"/?") == []
    assert query_secrets(b"/#") == [] and query_secrets(b"/#section-2") == []


def test_a_fragment_s_parameters_are_read_as_a_query_s():
    """An OAuth implicit grant answers ``#access_token=...`` (a fragment, no ``?``); a hash
    route puts its query after the ``#``; a list's name ends in ``[]``."""
    assert redact_target(b"/cb#access_token=s3cr3t&token_type=bearer&state=xy") == (
        b"/cb#access_token=(redacted)&token_type=bearer&state=xy")
    assert redact_target(b"/cb?x=1#id_token=s3cr3t") == b"/cb?x=1#id_token=(redacted)"
    assert redact_target(b"/#/callback?token=s3cr3t&x=1") == (
        b"/#/callback?token=(redacted)&x=1")
    assert redact_target(b"/?access_token[]=a1&API-Key[]=b2&Access%5Ftoken%5B%5D=c3&x[]=4") == (
        b"/?access_token[]=(redacted)&API-Key[]=(redacted)&Access%5Ftoken%5B%5D=(redacted)"
        b"&x[]=4")
    assert {b"access_token", b"token", b"api_key", b"apikey", b"key", b"password",
            b"passwd", b"secret", b"client_secret", b"signature", b"sig", b"auth",
            b"session"} <= SECRET_PARAMS


def test_a_secret_value_runs_to_the_next_ampersand_whichever_way_a_server_splits():
    # ``;`` splits parameters for some servers: a name after it counts, and a secret's value
    # is masked up to the next ``&`` (covering ``b`` when a server reads ``token=a;b``)
    assert redact_target(b"/?token=a;b&x=1") == b"/?token=(redacted)&x=1"
    assert redact_target(b"/?x=1;token=s3cret&y") == b"/?x=1;token=(redacted)&y"
    assert redact_target(b"/?flag;password=s3cret") == b"/?flag;password=(redacted)"


def test_redact_query_gives_the_values_for_previews_sent_and_decoded():
    target = b"/get?token=a%2Bb%20c&sig=ab&password=p+w+d1"
    shown, values = redact_query(target)
    assert shown == b"/get?token=(redacted)&sig=(redacted)&password=(redacted)"
    assert values == [b"a%2Bb%20c", b"a+b c", b"p+w+d1", b"p w d1"]  # "ab": too short alone
    assert redact_query(b"/get?page=2") == (b"/get?page=2", [])


def test_redact_message_is_the_target_s_and_the_headers_redaction_in_one_walk():
    """What the chain's HTTP records show: the target as ``redact_target`` shows it (from the
    ranges the decoder found), the headers with their credentials hidden, and every value
    hidden, longest first, for the previews."""
    target = b"/get?token=s3cr3t-tok&page=2"
    req = ((b"Referer", b"http://h/?sig=s1g-value"), (b"Cookie", b"sid=1"), (b"Host", b"h"))
    resp = ((b"Location", b"/cb#access_token=loc-tok"),)
    shown, headers, secrets = redact_message(target, query_secrets(target), req, resp)
    # what a user sees, said literally
    assert shown == b"/get?token=(redacted)&page=2"
    assert headers == (((b"Referer", b"http://h/?sig=(redacted)"), (b"Cookie", b"(redacted)"),
                        (b"Host", b"h")), ((b"Location", b"/cb#access_token=(redacted)"),))
    assert {b"s3cr3t-tok", b"s1g-value", b"loc-tok", b"sid=1"} <= set(secrets)
    assert shown == redact_target(target)
    assert secret_values(req, resp) == redact_message(None, (), req, resp)[2]
    assert secrets == sorted(set(secret_values(req, resp) + redact_query(target)[1]),
                             key=len, reverse=True)
    plain = ((b"Host", b"h"),)
    assert redact_message(None, (), plain) == (None, (plain,), [])
    assert redact_message(None, (), plain)[1][0] is plain


def _query_secrets_by_parameter(target: bytes) -> list[tuple[int, int]]:
    """The rule ``query_secrets`` keeps, said one parameter at a time (its first version, a
    Python loop over every parameter): the oracle for the one-scan version."""
    from playground.decode.redaction import secret_param

    def separator(lo, hi, seps=(b";", b"?", b"#")):  # the first of seps in lo..hi, or -1
        found = [i for i in (target.find(c, lo, hi) for c in seps) if i >= 0]
        return min(found, default=-1)

    q = separator(0, len(target), (b"?", b"#"))  # the query's or the fragment's start
    if q < 0:
        return []
    out, n, start = [], len(target), q + 1
    while start < n:
        amp = target.find(b"&", start)
        end = n if amp < 0 else amp
        at = start
        while True:
            eq = target.find(b"=", at, end)
            if eq < 0:
                break
            semi = separator(at, eq)
            if semi >= 0:
                at = semi + 1
                continue
            if secret_param(target[at:eq]):
                if end > eq + 1:
                    out.append((eq + 1, end))
                break
            semi = separator(eq + 1, end)
            if semi < 0:
                break
            at = semi + 1
        start = end + 1
    return out


_QUERY_PARTS = [b"a", b"=", b"&", b";", b"?", b"#", b"[]", b"%", b"61", b"-", b"_", b"+", b"x",
                b"%5F", b"%5B%5D",
                b"token", b"TOKEN", b"access_token", b"api-key", b"Api_Key", b"sig", b"passwd",
                b"%61ccess_token", b"x-amz-signature", b"=="]


@given(st.lists(st.sampled_from(_QUERY_PARTS), max_size=14))
def test_query_secrets_finds_what_the_rule_says(parts):
    target = b"/p" + b"".join(parts)
    assert query_secrets(target) == _query_secrets_by_parameter(target)


def test_many_ordinary_parameters_cost_no_work_per_parameter(monkeypatch):
    """A 64 KiB query of 16,000 ordinary parameters: one scan finds no name (it asked
    ``secret_param`` of each, 12 ms a request, twice: the decoder's spans, the records)."""
    import playground.decode.redaction as redaction

    asked = []
    secret_param = redaction.secret_param
    monkeypatch.setattr(redaction, "secret_param", lambda name: asked.append(name) or
                        secret_param(name))
    target = b"/x?" + b"a=1&" * 16000 + b"%61ccess_token=s3cret&b=token"
    assert [target[s:e] for s, e in query_secrets(target)] == [b"s3cret"]
    assert asked == [b"%61ccess_token"]  # only a name that has to be decoded is asked about

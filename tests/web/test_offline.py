"""The page works with the network off: nothing it ships or serves names another host.

Every asset under ``playground/web/static`` and the page the site generates (with and without a
token) is read for what would make a browser reach elsewhere: a URL with a scheme
(``https://``, ``wss://``, ...) anywhere, comments included; a protocol-relative ``//host`` in a
string, an attribute or a CSS ``url()``; and every relative reference (``src``, ``href``, CSS
``url()`` and ``@import``, fonts included) must name a file the package ships. The
Content-Security-Policy allows nothing but the page's own origin, and the package data takes
every asset into the wheel. The browser side (chromium with every non-loopback request failing)
is in ``test_browser.py``.
"""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import PurePosixPath

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from playground.web.capture import Capture
from playground.web.site import ASSETS, CSP, WebRoot, load_assets
from tests.support.paths import ROOT

STATIC = ROOT / "playground" / "web" / "static"

SCHEME_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://", re.I)
# "//host" right after a quote, an "=", or "url(": a protocol-relative URL (not a JS comment)
PROTOCOL_RELATIVE = re.compile(r"""(?:["'`=]|url\(\s*["']?)\s*//[^/\s"'`)]""", re.I)
HTML_REFERENCE = re.compile(
    r"""\b(?:src|href|action|poster|data|srcset|formaction)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""",
    re.I)
CSS_REFERENCE = re.compile(
    r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))\s*\)|@import\s+(?:"([^"]*)"|'([^']*)')""",
    re.I)


def _references(name: str, text: str) -> list[str]:
    if name.endswith(".html"):
        pattern = HTML_REFERENCE
    elif name.endswith(".css"):
        pattern = CSS_REFERENCE
    else:
        return []
    return [next(g for g in m.groups() if g is not None) for m in pattern.finditer(text)]


def external_references(name: str, text: str, shipped: set[str]) -> list[str]:
    """What in asset ``name`` (served at ``/`` for the page, else ``/static/NAME``) would make a
    browser ask for something that is not a file the package ships, or ask another host."""
    found = [m.group(0) for m in SCHEME_URL.finditer(text)]
    found += [m.group(0) for m in PROTOCOL_RELATIVE.finditer(text)]
    base = PurePosixPath("/") if name == "index.html" else PurePosixPath("/static")
    for ref in _references(name, text):
        path = ref.split("?", 1)[0].split("#", 1)[0]
        if not path:
            continue  # "#", "?token=...": this page itself
        if ":" in path.split("/", 1)[0]:
            found.append(ref)  # data:, javascript:, a scheme
            continue
        target = PurePosixPath("/", *(base / path).parts[1:])
        if target.parent != PurePosixPath("/static") or target.name not in shipped:
            found.append(ref)
    return found


def _shipped() -> dict[str, str]:
    return {p.name: p.read_text("utf-8") for p in sorted(STATIC.iterdir()) if p.is_file()}


@pytest.mark.pure
def test_no_asset_names_another_host_or_a_file_not_shipped():
    assets = _shipped()
    assert {"index.html", "app.js", "app.css"} <= set(assets)
    for name, text in assets.items():
        assert external_references(name, text, set(assets)) == [], name


@pytest.mark.pure
def test_the_site_serves_every_asset_and_nothing_else():
    assert set(ASSETS) == set(_shipped())  # a file added to static/ is served (and so checked)
    assert load_assets().keys() == ASSETS.keys()


@pytest.mark.pure
@pytest.mark.parametrize("name, text", [
    ("index.html", '<script src="https://cdn.example.com/x.js"></script>'),
    ("index.html", '<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Inter">'),
    ("index.html", "<img src=//tracker.example/p.gif>"),
    ("index.html", '<link rel="dns-prefetch" href="https:example.com">'),
    ("index.html", '<script src="static/nosuch.js"></script>'),
    ("index.html", '<img src="data:image/png;base64,AAAA">'),
    ("app.css", "@import url(https://fonts.googleapis.com/css2?family=Inter);"),
    ("app.css", '@import "https://example.com/more.css";'),
    ("app.css", "@font-face { font-family: x; src: url(//fonts.gstatic.com/x.woff2); }"),
    ("app.css", "@font-face { font-family: x; src: url('x.woff2'); }"),  # not shipped
    ("app.css", "body { background: url(/elsewhere/bg.png); }"),
    ("app.js", 'fetch("//api.example.com/data");'),
    ("app.js", "const ws = new WebSocket(`wss://example.com/feed`);"),
    ("app.js", "// see http://example.com for the format"),
])
def test_the_check_catches_what_would_reach_elsewhere(name, text):
    assert external_references(name, text, {"index.html", "app.js", "app.css"}) != []


@pytest.mark.pure
@pytest.mark.parametrize("name, text", [
    ("index.html", '<script src="static/app.js" defer></script><a href="#top">top</a>'),
    ("index.html", '<link rel="stylesheet" href="static/app.css?token=abc%2Bdef">'),
    ("app.css", "th.sorted::after { content: ' ▲'; } /* a comment */"),
    ("app.js", 'fetch(api("api/connections")); // the list, from this origin'),
    ("app.js", 'const s = a + "//" + b; x = y // 2;'),
])
def test_the_check_lets_the_page_own_files_through(name, text):
    assert external_references(name, text, {"index.html", "app.js", "app.css"}) == []


@pytest.mark.memory
@pytest.mark.parametrize("token", [None, "letmein-42"])
def test_the_page_as_served_names_no_other_host(token):
    root = WebRoot(Capture(), token=token, reactor=MemoryReactorClock())
    request = DummyRequest([b""])
    if token:
        request.args[b"token"] = [token.encode()]
    body = root.render(request).decode("utf-8")
    assert request.responseCode in (None, 200)
    assert external_references("index.html", body, set(ASSETS)) == []
    if token:
        assert 'src="static/app.js?token=letmein-42"' in body


@pytest.mark.pure
def test_the_content_security_policy_allows_only_this_origin():
    for directive in CSP.split(";"):
        name, *sources = directive.split()
        assert sources and set(sources) <= {"'none'", "'self'"}, directive
    assert "default-src 'none'" in CSP


@pytest.mark.pure
def test_the_wheel_takes_every_asset():
    """pyproject's package data covers every file under static/ (tests/e2e/test_packaging.py
    lists the built wheel)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["playground.web"]
    for name in _shipped():
        assert any(fnmatch(f"static/{name}", p) for p in patterns), name

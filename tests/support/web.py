"""The web view's address, as a twistd proxy started with --web prints it, and its JSON API
asked with curl (``api_get``, ``api_post``; ``ACTION``: the header a close must carry)."""

from __future__ import annotations

import json
import re
import subprocess

from tests.support.processes import Twistd, need

ACTION = ("-H", "X-Tcpplay-Action: close")


def web_url(proc: Twistd) -> str:
    line = proc.wait_for("web view: open http://")
    return re.search(r"(http://\S+)", line).group(1)


def api_post(url: str, body: str | None, *extra: str) -> tuple[int, dict | str]:
    """POST ``body`` (JSON text) to ``url`` with curl: (status, parsed JSON or text)."""
    argv = [need("curl"), "-sS", "-w", "\n%{http_code}", "-X", "POST", *extra]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", body]
    out = subprocess.run(argv + [url], capture_output=True, timeout=20, check=True, text=True)
    text, _, status = out.stdout.rpartition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status), text


def api_get(url: str, *extra: str) -> dict:
    """GET ``url`` with curl (``extra``: its options, e.g. ``--unix-socket PATH``): the JSON."""
    out = subprocess.run([need("curl"), "-sS", *extra, url], capture_output=True, timeout=20,
                         check=True)
    return json.loads(out.stdout)

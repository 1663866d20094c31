"""The web view's address, as a twistd proxy started with --web prints it."""

from __future__ import annotations

import re

from tests.support.processes import Twistd


def web_url(proc: Twistd) -> str:
    line = proc.wait_for("web view: open http://")
    return re.search(r"(http://\S+)", line).group(1)

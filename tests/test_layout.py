"""The design holds: pure cores import no Twisted; the README documents every subcommand option."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

from playground.tap import SUBCOMMANDS
from tests.conftest import ROOT

PURE = ["chatcore", "detect", "httpapp", "httpcore", "httpdecoder", "observer", "records", "resp",
        "respcore", "respdecoder", "stats", "views", "pcap", "linesecrets",
        "redaction", "defaultreactor"]


@pytest.mark.parametrize("name", PURE)
def test_pure_core_imports_no_twisted(name):
    code = (f"import sys, playground.{name}; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, f"playground.{name} pulls in {out.stdout.strip()}{out.stderr}"


def test_default_reactor_is_the_given_one_or_the_global_one():
    from twisted.internet import reactor
    from twisted.internet.testing import MemoryReactorClock

    from playground.common.defaultreactor import default_reactor

    clock = MemoryReactorClock()
    assert default_reactor(clock) is clock
    assert default_reactor(None) is reactor
    assert default_reactor() is reactor


def _long_options(options) -> set[str]:
    names = set()
    for entry in list(getattr(options, "optParameters", [])) + list(getattr(options, "optFlags", [])):
        names.add(entry[0])
    for attr in dir(options):
        if attr.startswith("opt_") and len(attr) > 5:
            names.add(attr[4:].replace("_", "-"))
    return names - {"help", "version"}


@pytest.mark.parametrize("name, module", [(n, m) for n, m, _ in SUBCOMMANDS])
def test_readme_documents_every_option(name, module):
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^#+ .*\b{name}\b", readme, re.M), f"no README section for {name}"
    options = importlib.import_module(module).Options()
    missing = sorted(o for o in _long_options(options) if f"--{o}" not in readme)
    assert not missing, f"README does not mention {name} options: {missing}"

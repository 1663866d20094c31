"""The design holds: pure cores import no Twisted; the README documents every subcommand option."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

from playground.tap import SUBCOMMANDS
from tests.support.paths import ROOT

PLAYGROUND = ROOT / "playground"


def _modules(package: str) -> list[str]:
    """Every module of a package, by dotted name."""
    base = PLAYGROUND / package.replace(".", "/")
    return sorted("playground." + ".".join(p.relative_to(PLAYGROUND).with_suffix("").parts)
                  .removesuffix(".__init__") for p in base.rglob("*.py"))


# Pure: no Twisted at all. Whole packages, and the pure module of each mixed one.
PURE = (_modules("codec") + ["playground.examples.chat.core", "playground.examples.pool.core",
                            "playground.examples.http.parser",
                            "playground.examples.http.app", "playground.proxy.observer",
                            "playground.sinks.pcapwriter", "playground.daemon.stats",
                            "playground.common.defaultreactor",
                            "playground.common.digits",
                            "playground.web.capture",
                            "playground.web.export",
                            "playground.web.filterscan",
                            "playground.web.latency",
                            "playground.faults.model",
                            "playground.faults.toxics",
                            "playground.faults.respfaults",
                            "playground.faults.httpfaults",
                            ]
        + [m for m in _modules("replay") if m.split(".")[-1] not in ("run", "cli")]
        + [m for m in _modules("examples.resp") if m != "playground.examples.resp.server"])
# Pure apart from logging: twisted.logger and what it imports, nothing else of Twisted.
LOGGING_ONLY = _modules("decode")

_CHECK = """
import sys
{baseline}
before = set(sys.modules)
import {name}
bad = sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'twisted')
print(bad)
sys.exit(1 if bad else 0)
"""


def _twisted_pulled_in(name: str, baseline: str = "") -> subprocess.CompletedProcess:
    code = _CHECK.format(baseline=baseline, name=name)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


@pytest.mark.pure
def test_the_package_lists_are_not_empty():
    assert len(_modules("codec")) >= 2 and len(LOGGING_ONLY) >= 8


@pytest.mark.real
@pytest.mark.parametrize("name", PURE)
def test_pure_module_imports_no_twisted(name):
    out = _twisted_pulled_in(name)
    assert out.returncode == 0, f"{name} pulls in {out.stdout.strip()}{out.stderr}"


@pytest.mark.real
@pytest.mark.parametrize("name", LOGGING_ONLY)
def test_decode_imports_nothing_of_twisted_but_its_logger(name):
    out = _twisted_pulled_in(name, baseline="import twisted.logger")
    assert out.returncode == 0, f"{name} pulls in {out.stdout.strip()}{out.stderr}"


@pytest.mark.real
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


@pytest.mark.pure
@pytest.mark.parametrize("name, module", [(n, m) for n, m, _ in SUBCOMMANDS])
def test_readme_documents_every_option(name, module):
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^#+ .*\b{name}\b", readme, re.M), f"no README section for {name}"
    options = importlib.import_module(module).Options()
    missing = sorted(o for o in _long_options(options) if f"--{o}" not in readme)
    assert not missing, f"README does not mention {name} options: {missing}"


def _private_uses(path) -> list[str]:
    """``module._name`` reads and ``from module import _name`` of playground modules in a file."""
    import ast

    tree = ast.parse(path.read_text())
    modules = {}  # local name -> a playground module
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("playground"):
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                if (PLAYGROUND.parent / (dotted.replace(".", "/") + ".py")).exists():
                    modules[alias.asname or alias.name] = dotted
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("playground") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"{modules[node.value.id]}.{node.attr}")
    return found


@pytest.mark.pure
def test_no_module_uses_another_modules_private_names():
    """A module that needs a sibling's private name is in the wrong place: the shared piece
    gets a module both import (as the console and JSON sinks share sinks.batching and
    sinks.plain)."""
    found = {str(p.relative_to(PLAYGROUND)): uses for p in sorted(PLAYGROUND.rglob("*.py"))
             if (uses := _private_uses(p))}
    assert not found, found


@pytest.mark.pure
def test_no_docstring_holds_a_control_character():
    # help() and pydoc print docstrings raw: addresstext's, about escaping a unix socket name
    # such as \x1b[2J (ESC [2J), held that ESC itself (a "\x1b" in a docstring that is not raw)
    # and cleared the terminal of whoever read it
    import ast

    found = []
    for path in sorted(PLAYGROUND.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False) or ""
                if any(c != "\n" and not c.isprintable() for c in doc):
                    found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'name', '')}")
    assert found == []

"""The built wheel carries the twistd dropin and, once installed, makes ``twistd tcpplay`` work.

The wheel is built from a copy of the tree (so concurrent runs never share ``build/``), installed
with ``pip --python`` into a fresh venv that has no pip and no project checkout on its path; the
dependencies come from the project venv's site-packages through a plain ``.pth`` path line (plain
lines do not run that directory's own ``.pth`` files, so the checkout's editable path stays out).
Every check runs with ``python -I`` from an empty directory.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from playground.tap import SUBCOMMANDS
from tests.support.paths import ROOT

TWISTD_CODE = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; sys.exit(run())"
)
COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".ruff_cache",
    ".hypothesis",
    ".pytest_cache",
    "*.pcap",
    "*.pcapng",
    "results*",
    "*.log",
)


def run(args, cwd, timeout=120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], cwd=str(cwd), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, the fresh venv's python, an empty working directory, its site-packages, the copy)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    dist = tmp / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, src], cwd=tmp, timeout=240)
    [wheel] = dist.glob("tcpplay-*.whl")

    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    purelib = run(
        [python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp
    ).stdout.strip()
    (Path(purelib) / "tcpplay-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(
        [
            Path(sys.executable).parent / "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            wheel,
        ],
        cwd=tmp,
    )
    empty = tmp / "cwd"
    empty.mkdir()
    return wheel, python, empty, Path(purelib), src


@pytest.mark.real
def test_wheel_contents(installed):
    wheel, src = installed[0], installed[4]
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/tcpplay_plugin.py" in names
    # either of these would shadow Twisted's own packages
    assert "twisted/plugins/__init__.py" not in names
    assert "twisted/__init__.py" not in names
    assert not any(n.endswith("dropin.cache") for n in names)
    # every module of the package is shipped, including ones added later
    for module in sorted((src / "playground").glob("*.py")):
        assert f"playground/{module.name}" in names
    assert not any(n.startswith("tests/") for n in names)
    # the web view's page ships in the package (served from it: works offline)
    static = sorted((src / "playground" / "web" / "static").iterdir())
    assert {"index.html", "app.js", "app.css", "plots.js"} <= {p.name for p in static}
    for asset in static:
        assert f"playground/web/static/{asset.name}" in names


@pytest.mark.real
def test_installed_code_comes_from_the_wheel(installed):
    _, python, cwd, purelib, _ = installed
    out = run(
        [
            python,
            "-I",
            "-c",
            "import json, sys, playground, twisted.plugins.tcpplay_plugin as p; "
            "print(playground.__file__); print(p.__file__); print(json.dumps(sys.path))",
        ],
        cwd=cwd,
    ).stdout
    playground_file, plugin_file, path = out.splitlines()
    assert Path(playground_file).is_relative_to(purelib)
    assert Path(plugin_file).is_relative_to(purelib)
    assert not any(Path(entry) in (ROOT, Path(cwd)) for entry in json.loads(path) if entry)


@pytest.mark.twistd
def test_installed_twistd_lists_tcpplay(installed):
    _, python, cwd, _, _ = installed
    out = run([python, "-I", "-c", TWISTD_CODE, "--help"], cwd=cwd).stdout
    assert re.search(r"^ +tcpplay +\S", out, re.M), out


@pytest.mark.twistd
def test_installed_twistd_tcpplay_help(installed):
    _, python, cwd, _, _ = installed
    out = run([python, "-I", "-c", TWISTD_CODE, "tcpplay", "--help"], cwd=cwd).stdout
    listed = set(re.findall(r"^ {2,}(\S+) {2,}\S", out.split("Commands:")[1], re.M))
    assert {name for name, _, _ in SUBCOMMANDS} <= listed

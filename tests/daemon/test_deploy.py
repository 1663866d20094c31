"""Deployment files, checked offline: the systemd unit and the Kubernetes manifests in config/.

The commands they run are parsed with the real ``playground.tap.Options`` and the config parser,
so renaming a flag or a key breaks these tests. The manifests need PyYAML (``pyyaml``).
"""

from __future__ import annotations

import configparser
import shlex
import subprocess
from pathlib import Path

import pytest

from playground import tap
from playground.daemon import config as C
from tests.support.processes import need

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
K8S = CONFIG / "k8s"
UNIT = CONFIG / "tcpplay.service"
BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def _yaml():
    try:
        import yaml
    except ImportError:
        pytest.fail("PyYAML is needed to check config/k8s: add 'pyyaml' to the test extras")
    return yaml


def manifests() -> dict[str, dict]:
    """kind/name -> document, from every YAML file in config/k8s."""
    yaml = _yaml()
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path
            assert doc.get("apiVersion") and doc.get("kind"), path
            key = f"{doc['kind']}/{doc.get('metadata', {}).get('name', '')}"
            assert key not in docs, f"{key} twice"
            docs[key] = doc
    return docs


def twistd_args(argv: list[str]) -> tuple[dict, list[str]]:
    """Split a twistd command line: (twistd's own options, the args after 'tcpplay')."""
    from twisted.scripts.twistd import ServerOptions

    assert Path(argv[0]).name == "twistd", argv
    i = argv.index("tcpplay")
    own = ServerOptions()
    # parse twistd's own options only (no plugin subcommand)
    import getopt

    opts, rest = getopt.getopt(argv[1:i], own.shortOpt, own.longOpt)
    assert rest == []
    return {own.synonyms.get(k.lstrip("-"), k.lstrip("-")): v for k, v in opts}, argv[i + 1:]


def parse_tcpplay(args: list[str], config_text: str | None = None, tmp_path=None):
    """Parse ``tcpplay ARGS`` with the real options; a serve --config path is replaced by a
    local copy of ``config_text`` when given."""
    if config_text is not None:
        local = tmp_path / "tcpplay.toml"
        local.write_text(config_text)
        args = [str(local) if a.startswith("/etc/tcpplay/") else a for a in args]
    o = tap.Options()
    o.parseOptions(args)
    return o


# -- systemd -------------------------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    p.optionxform = str
    p.read_string(UNIT.read_text())
    return p


@pytest.mark.pure
def test_systemd_unit_fields():
    u = unit()
    assert set(u.sections()) == {"Unit", "Service", "Install"}
    s = u["Service"]
    assert s["Type"] == "simple"
    for key, expected in [("DynamicUser", "yes"), ("NoNewPrivileges", "yes"),
                          ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                          ("PrivateTmp", "yes"), ("KillSignal", "SIGTERM"),
                          ("Restart", "on-failure"), ("LogsDirectory", "tcpplay"),
                          ("StateDirectory", "tcpplay")]:
        assert s[key] == expected, key
    assert u["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.pure
def test_systemd_execstart_is_a_valid_tcpplay_command(tmp_path):
    s = unit()["Service"]
    argv = shlex.split(s["ExecStart"])
    own, args = twistd_args(argv)
    assert "nodaemon" in own and own.get("pidfile") == ""  # foreground, no pid file
    o = parse_tcpplay(args, (CONFIG / "tcpplay.toml").read_text(), tmp_path)
    assert o.subCommand == "serve"
    assert args[args.index("--config") + 1] == "/etc/tcpplay/tcpplay.toml"
    # the stop timeout leaves room for every proxy's drain
    drains = [svc.options["drain-timeout"] for svc in o.subOptions.config.services
              if svc.kind == "proxy"]
    assert drains and int(s["TimeoutStopSec"]) > max(drains)
    # the pre-start check is the config checker on the same file
    pre = shlex.split(s["ExecStartPre"])
    assert pre[1:] == ["-m", "playground", "check-config", "/etc/tcpplay/tcpplay.toml"]


@pytest.mark.real
def test_systemd_analyze_verify(tmp_path):
    tool = need("systemd-analyze")
    # point the executables at this checkout's venv so the paths exist
    local = tmp_path / "tcpplay.service"
    local.write_text(UNIT.read_text().replace("/opt/tcpplay/bin/", f"{BIN}/"))
    proc = subprocess.run([tool, "verify", str(local)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "tcpplay.service" in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


# -- Kubernetes ----------------------------------------------------------------------------


@pytest.mark.pure
def test_manifests_parse_and_have_their_kinds():
    docs = manifests()
    assert {"Deployment/redis", "Service/redis", "ConfigMap/tcpplay-config",
            "Kustomization/"} <= set(docs)
    kustomization = _yaml().safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _containers():
    spec = manifests()["Deployment/redis"]["spec"]["template"]["spec"]
    return spec, {c["name"]: c for c in spec["containers"]}


@pytest.mark.pure
def test_deployment_runs_redis_and_the_proxy_sidecar(tmp_path):
    docs = manifests()
    dep = docs["Deployment/redis"]
    assert dep["apiVersion"] == "apps/v1"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    spec, containers = _containers()
    assert set(containers) == {"redis", "tcpplay"}
    for c in containers.values():
        assert c["image"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (c["name"], kind)
    proxy = containers["tcpplay"]
    own, args = twistd_args(proxy["command"] + proxy.get("args", []))
    assert "nodaemon" in own and own.get("pidfile") == ""
    toml = docs["ConfigMap/tcpplay-config"]["data"]["tcpplay.toml"]
    o = parse_tcpplay(args, toml, tmp_path)
    assert o.subCommand == "serve"
    (svc,) = o.subOptions.config.services
    assert svc.kind == "proxy"
    # listens on every interface of the pod, explicitly, on the port the probes use
    assert svc.options["listen"].startswith("tcp:6479:interface=0.0.0.0")
    assert svc.options["target"] == "tcp:host=127.0.0.1:port=6379"
    ports = {p["name"]: p for p in proxy["ports"]}
    assert ports["redis-proxy"]["containerPort"] == 6479
    assert all(p["protocol"] == "TCP" for p in ports.values())
    for probe in ("readinessProbe", "livenessProbe"):
        assert proxy[probe]["tcpSocket"]["port"] == "redis-proxy"
    # the metrics endpoint is reachable from outside the pod, on the declared port
    assert o.subOptions.config.metrics.startswith("tcp:9100:interface=0.0.0.0")
    assert ports["metrics"]["containerPort"] == 9100
    # the config is the ConfigMap, mounted where the command reads it
    mount = {m["name"]: m for m in proxy["volumeMounts"]}["config"]
    assert mount["mountPath"] == "/etc/tcpplay"
    volume = {v["name"]: v for v in spec["volumes"]}["config"]
    assert volume["configMap"]["name"] == "tcpplay-config"
    assert args[args.index("--config") + 1] == "/etc/tcpplay/tcpplay.toml"
    # grace period longer than the drain
    assert spec["terminationGracePeriodSeconds"] > svc.options["drain-timeout"]
    # redis only on the pod's loopback: clients go through the proxy
    redis_args = containers["redis"]["args"]
    assert redis_args[redis_args.index("--bind") + 1] == "127.0.0.1"
    assert redis_args[redis_args.index("--port") + 1] == "6379"


@pytest.mark.pure
def test_service_targets_the_proxy():
    docs = manifests()
    svc = docs["Service/redis"]["spec"]
    _, containers = _containers()
    names = {p["name"] for p in containers["tcpplay"]["ports"]}
    dep_labels = docs["Deployment/redis"]["spec"]["template"]["metadata"]["labels"]
    assert svc["selector"].items() <= dep_labels.items()
    for port in svc["ports"]:
        assert port["protocol"] == "TCP"
        assert port["targetPort"] in names
    assert {p["port"]: p["targetPort"] for p in svc["ports"]} == {6379: "redis-proxy",
                                                                  9100: "metrics"}


@pytest.mark.pure
def test_configmap_toml_passes_the_config_parser():
    toml = manifests()["ConfigMap/tcpplay-config"]["data"]["tcpplay.toml"]
    cfg = C.loads(toml, "configmap:tcpplay.toml")
    assert [(s.kind, s.name) for s in cfg.services] == [("proxy", "redis")]
    assert cfg.stats_interval > 0


# -- the image -------------------------------------------------------------------------------


@pytest.mark.pure
def test_dockerfile_builds_what_the_deployment_runs(tmp_path):
    import json

    lines = (CONFIG / "Dockerfile").read_text().splitlines()
    instructions = [line.split(None, 1) for line in lines if line and not line.startswith("#")
                    and not line.startswith(" ")]
    kinds = [i[0] for i in instructions]
    assert kinds[0] == "FROM" and "python:3.11" in instructions[0][1]
    copied = [i[1].split()[0] for i in instructions if i[0] == "COPY"]
    for path in copied:  # every copied path exists in the checkout
        assert (ROOT / path).exists(), path
    assert {"playground", "twisted", "pyproject.toml"} <= set(copied)
    assert "USER" in kinds and "STOPSIGNAL" in kinds
    cmd = json.loads(next(i[1] for i in instructions if i[0] == "CMD"))
    deployment = next(d for k, d in manifests().items() if k.startswith("Deployment/"))
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                     if c["image"].startswith("tcpplay:"))
    assert cmd == container["command"]
    own, args = twistd_args(cmd)
    o = parse_tcpplay(args, (CONFIG / "tcpplay.toml").read_text(), tmp_path)
    assert o.subCommand == "serve"


@pytest.mark.pure
def test_systemd_install_steps_write_the_plugin_cache():
    """ProtectSystem=strict leaves /opt read-only to the service: with no plugin cache written
    at install (pip writes none), every start scanned the plugins again and began the journal
    with 'Unable to write to plugin cache .../dropin.cache: error number 30'."""
    assert unit()["Service"]["ProtectSystem"] == "strict"
    step = "/opt/tcpplay/bin/twistd --help >/dev/null"
    header = "\n".join(line for line in UNIT.read_text().splitlines() if line.startswith("#"))
    assert step in header
    docs = (ROOT / "docs" / "daemon.md").read_text()
    systemd = docs[docs.index("## systemd"):docs.index("## Kubernetes")]
    assert step in systemd

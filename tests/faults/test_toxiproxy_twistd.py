"""End to end through ``twistd``: ``tcpplay toxiproxy --api PORT`` driven with curl in front of a
real redis-server (the proxies it creates decode: the console shows the PING), ``--config``
toxiproxy's file, ``proxy --api --name`` (enabled false: redis-cli gets "Connection refused"),
start-up errors in one line, SIGTERM exits 0."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.faultsapi import listen_port
from tests.support.net import free_port
from tests.support.paths import ROOT, TWISTD
from tests.support.processes import need, start_proxy

pytestmark = pytest.mark.twistd


def curl(port: int, path: str, *extra: str) -> tuple[int, object]:
    out = subprocess.run([need("curl"), "-sS", "-w", "\n%{http_code}", *extra,
                          f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, timeout=20, check=True, text=True)
    body, _, status = out.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else None


def redis_cli(port: int, *args: str) -> str:
    out = subprocess.run([need("redis-cli"), "-p", str(port), *args], capture_output=True,
                         timeout=20, text=True)
    return (out.stdout + out.stderr).strip()


def test_toxiproxy_api_alone_then_proxies_through_it(twistd, redis_server):
    api = free_port()
    t = twistd(["toxiproxy", "--api", api, "--color", "never"])
    assert f"toxiproxy API listening on 127.0.0.1:{api}" in t.wait_for("toxiproxy API listening")
    assert curl(api, "/proxies") == (200, {})  # no proxies at start, like toxiproxy-server
    status, version = curl(api, "/version")
    assert status == 200 and version["version"].startswith("tcpplay ")
    body = json.dumps({"name": "redis", "upstream": f"127.0.0.1:{redis_server.port}"})
    status, proxy = curl(api, "/proxies", "-d", body)
    assert status == 201 and proxy["enabled"] is True
    port = listen_port(proxy)
    t.wait_for(f"proxy redis listening on 127.0.0.1:{port}")
    assert redis_cli(port, "ping") == "PONG"
    t.wait_for("ping -> +PONG")  # a decoding tcpplay proxy: the console shows the command
    status, toxic = curl(api, "/proxies/redis/toxics", "-d", '{"type": "latency"}')
    assert status == 200 and toxic["name"] == "latency_downstream"
    status, proxy = curl(api, "/proxies/redis", "-d", '{"enabled": false}')
    assert status == 200 and proxy["enabled"] is False
    assert "Connection refused" in redis_cli(port, "ping")
    assert curl(api, "/reset", "-X", "POST") == (204, None)
    assert redis_cli(port, "ping") == "PONG"
    assert curl(api, "/proxies/redis/toxics") == (200, [])
    code = t.terminate()
    out = t.output()
    assert code == 0, out
    assert "toxiproxy API stopped listening" in out and "Traceback" not in out


def test_config_file_proxies_at_start(twistd, redis_server, tmp_path):
    api, port = free_port(), free_port()
    config = tmp_path / "toxiproxy.json"
    config.write_text(json.dumps([{"name": "redis", "listen": f"127.0.0.1:{port}",
                                   "upstream": f"127.0.0.1:{redis_server.port}"}]))
    t = twistd(["toxiproxy", "--api", api, "--config", config, "--quiet"])
    t.wait_for("toxiproxy API listening")
    status, listing = curl(api, "/proxies")
    assert status == 200 and listing["redis"]["listen"] == f"127.0.0.1:{port}"
    assert redis_cli(port, "ping") == "PONG"
    assert t.terminate() == 0


def test_proxy_api_names_the_running_proxy(twistd, redis_server):
    api, port = free_port(), free_port()
    t = twistd(["proxy", "--listen", port, "--target", redis_server.port, "--api", api,
                "--name", "cache", "--quiet"])
    t.wait_for("toxiproxy API listening")
    status, listing = curl(api, "/proxies")
    assert status == 200
    assert listing == {"cache": {"name": "cache", "listen": f"127.0.0.1:{port}",
                                 "upstream": f"127.0.0.1:{redis_server.port}",
                                 "enabled": True, "toxics": []}}
    assert curl(api, "/proxies/cache", "-d", '{"enabled": false}')[1]["enabled"] is False
    assert "Connection refused" in redis_cli(port, "ping")
    assert curl(api, "/proxies/cache", "-X", "PATCH", "-d", '{"enabled": true}')[0] == 200
    assert redis_cli(port, "ping") == "PONG"
    status, error = curl(api, "/proxies/cache", "-X", "DELETE")
    assert status == 400 and "cannot be deleted" in error["error"]
    assert t.terminate() == 0


@pytest.mark.parametrize("config, message", [
    ('[{"name": "r"}]', "--config {path}: missing required field: upstream at proxy 1"),
    ('[{"name": "r", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:{busy}"}]',
     "tcpplay toxiproxy: --config {path}: listen 127.0.0.1:{busy}: "),
])
def test_config_errors_are_one_line(tmp_path, config, message):
    import socket

    path = tmp_path / "toxiproxy.json"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path.write_text(config.replace("{busy}", str(port)))
        out = subprocess.run([TWISTD, "-n", "--pidfile=", "tcpplay", "toxiproxy", "--api",
                              str(free_port()), "--config", str(path), "--quiet"],
                             capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    [line] = [line for line in text.splitlines() if "--config" in line]
    assert message.format(path=path, busy=port) in line
    assert "Traceback" not in text


def test_serve_config_proxy_table_takes_api(twistd, redis_server, tmp_path):
    api, port = free_port(), free_port()
    config = tmp_path / "tcpplay.toml"
    config.write_text(f'[proxy.cache]\nlisten = "{port}"\ntarget = "{redis_server.port}"\n'
                      f'api = "{api}"\nname = "cache"\nquiet = true\n')
    t = twistd(["serve", "--config", config])
    t.wait_for("toxiproxy API listening")
    status, listing = curl(api, "/proxies/cache")
    assert status == 200 and listing["listen"] == f"127.0.0.1:{port}"
    assert t.terminate() == 0


def test_proxy_api_on_port_0_comes_back_on_its_port_and_takes_the_down_toxic(twistd, redis_server):
    api = free_port()
    t, port = start_proxy(twistd, redis_server.port, "--api", api, "--quiet")
    t.wait_for("toxiproxy API listening")
    assert listen_port(curl(api, "/proxies/tcpplay")[1]) == port  # --name's default
    curl(api, "/proxies/tcpplay", "-d", '{"enabled": false}')
    assert "Connection refused" in redis_cli(port, "ping")
    status, proxy = curl(api, "/proxies/tcpplay", "-d", '{"enabled": true}')
    assert status == 200 and listen_port(proxy) == port  # the same port, not a new one
    assert redis_cli(port, "ping") == "PONG"
    # tcpplay's down toxic through the API: refused while it is there
    status, _ = curl(api, "/proxies/tcpplay/toxics", "-d", '{"type": "down"}')
    assert status == 200
    t.wait_for("proxy down (toxic down_downstream)")
    assert "Connection refused" in redis_cli(port, "ping")
    assert curl(api, "/proxies/tcpplay/toxics/down_downstream", "-X", "DELETE")[0] == 204
    t.wait_for("proxy up again")
    assert redis_cli(port, "ping") == "PONG"
    assert t.terminate() == 0

"""The pure parts of the toxiproxy API's registry and options: toxiproxy's ``listen`` and
``upstream`` forms mapped to endpoint strings, a proxy's JSON body checked with toxiproxy's
defaults and errors, the ``--api`` options and toxiproxy's config file; random input raises
nothing but the error that names the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.python import usage

from playground.faults import apioptions
from playground.faults.registry import (
    ApiError,
    ListenAddress,
    address_text,
    listen_address,
    proxy_fields,
    upstream_target,
)
from playground.faults.toxiproxy import Options, read_config

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("text, host, port, endpoint", [
    ("127.0.0.1:0", "127.0.0.1", 0, "tcp:0:interface=127.0.0.1:backlog=1024"),
    ("localhost:6380", "127.0.0.1", 6380, "tcp:6380:interface=127.0.0.1:backlog=1024"),
    ("[::1]:80", "::1", 80, r"tcp:80:interface=\:\:1:backlog=1024"),
    (":8666", "", 8666, "tcp:8666:interface=0.0.0.0:backlog=1024"),  # toxiproxy: every interface
])
def test_listen_forms(text, host, port, endpoint):
    address = listen_address(text)
    assert address == ListenAddress(host, port)
    assert address.endpoint == endpoint


@pytest.mark.parametrize("text", ["8474", "host", "127.0.0.1:99999", "h:x", "", None, 5,
                                  "a b:1"])
def test_bad_listen_is_a_400_naming_listen(text):
    with pytest.raises(ApiError) as e:
        listen_address(text)
    assert e.value.status == 400 and e.value.message.startswith("listen: ")


def test_address_text_is_toxiproxys():
    assert address_text("127.0.0.1", 8080) == "127.0.0.1:8080"
    assert address_text("::1", 8080) == "[::1]:8080"


def test_proxy_fields_defaults_as_toxiproxy():
    assert proxy_fields({"name": "r", "upstream": "127.0.0.1:6379", "other": 1}) == {
        "name": "r", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:6379", "enabled": True}
    assert proxy_fields({"name": "r", "upstream": "h:1", "enabled": None,
                         "listen": ""})["enabled"] is True


@pytest.mark.parametrize("body, message", [
    ({"upstream": "h:1"}, "missing required field: name at proxy 3"),
    ({"name": "", "upstream": "h:1"}, "missing required field: name at proxy 3"),
    ({"name": "r"}, "missing required field: upstream at proxy 3"),
    ({"name": 5, "upstream": "h:1"}, "name: 1-64 letters, digits or _.:- expected, got 5"),
    ({"name": "r", "upstream": 6379}, "upstream: expected HOST:PORT, got 6379"),
    ({"name": "r", "upstream": "h:1", "enabled": "no"},
     "bad request body: enabled: expected true or false, got 'no'"),
    ("r", "bad request body: expected a JSON object at proxy 3"),
])
def test_proxy_fields_errors(body, message):
    with pytest.raises(ApiError) as e:
        proxy_fields(body, " at proxy 3")
    assert (e.value.status, e.value.message) == (400, message)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@given(st.dictionaries(st.sampled_from(["name", "listen", "upstream", "enabled", "x"]), _json)
       | _json)
def test_any_json_body_is_checked_or_a_400(body):
    try:
        fields = proxy_fields(body)
    except ApiError as e:
        assert e.status == 400
    else:
        assert set(fields) == {"name", "listen", "upstream", "enabled"}


@given(st.text(max_size=40))
def test_any_listen_text_is_read_or_a_400(text):
    try:
        listen_address(text)
    except ApiError as e:
        assert e.status == 400


def test_api_options_token_only_beyond_loopback():
    opts = {"api": "8474", "api-token": None}
    apioptions.check_options(opts)
    assert opts == {"api": "tcp:8474:interface=127.0.0.1:backlog=1024", "api-token": None}
    opts = {"api": "0.0.0.0:8474", "api-token": None}
    apioptions.check_options(opts)
    assert len(opts["api-token"]) >= 20
    opts = {"api": "0.0.0.0:8474", "api-token": "given-token"}
    apioptions.check_options(opts)
    assert opts["api-token"] == "given-token"


@pytest.mark.parametrize("opts, message", [
    ({"api": None, "api-token": "abcdefgh12"}, "--api-token needs --api"),
    ({"api": "8474", "api-token": "short"}, "--api-token: at least 8 printable characters"),
    ({"api": "nowhere", "api-token": None}, "--api: cannot read 'nowhere'"),
    ({"api": "8474", "api-token": None, "name": "a/b"}, "--name: 1-64 letters"),
])
def test_api_options_errors_name_the_flag(opts, message):
    with pytest.raises(usage.UsageError, match=message.replace("'", ".")):
        apioptions.check_options(opts)


def test_toxiproxy_options_default_to_loopback_8474(tmp_path):
    opts = Options()
    opts.parseOptions(["--quiet"])
    assert opts["api"] == "tcp:8474:interface=127.0.0.1:backlog=1024"
    assert opts["api-token"] is None and opts.populate == []
    config = tmp_path / "toxiproxy.json"
    config.write_text(json.dumps([{"name": "redis", "listen": "127.0.0.1:26379",
                                   "upstream": "127.0.0.1:6379"}]))
    opts = Options()
    opts.parseOptions(["--quiet", "--config", str(config), "--api", "18474"])
    assert opts.populate == [{"name": "redis", "listen": "127.0.0.1:26379",
                              "upstream": "127.0.0.1:6379", "enabled": True}]


@pytest.mark.parametrize("text, message", [
    ("[{", "not JSON"),
    ('{"name": "a"}', "expected a JSON list of proxies"),
    ('[{"name": "a", "upstream": "h:1"}, {"name": "b"}]',
     "missing required field: upstream at proxy 2"),
])
def test_config_file_errors_name_the_file_and_the_entry(tmp_path, text, message):
    config = tmp_path / "toxiproxy.json"
    config.write_text(text)
    with pytest.raises(usage.UsageError) as e:
        read_config(str(config))
    assert str(e.value).startswith(f"--config {config}: ") and message in str(e.value)


def test_config_file_missing(tmp_path):
    with pytest.raises(usage.UsageError, match="--config: cannot read .*No such file"):
        read_config(str(tmp_path / "none.json"))


@pytest.mark.parametrize("text", ["unix:path=/var/run/docker.sock", "unix:/tmp/x.sock"])
def test_the_api_refuses_an_upstream_on_a_local_socket(text):
    """Whoever reaches the API must not reach a daemon's control socket through a proxy."""
    with pytest.raises(ApiError) as caught:
        upstream_target(text)
    assert caught.value.status == 400
    assert "only a network address" in caught.value.message


@pytest.mark.parametrize("text", ["127.0.0.1:6379", "[::1]:6379", "tcp:host=127.0.0.1:port=1",
                                  "localhost:80"])
def test_the_api_takes_network_upstreams(text):
    assert upstream_target(text).kind in ("tcp", "tcp6")


@pytest.mark.parametrize("listen, upstream", [
    ("127.0.0.1:26379", "127.0.0.1:26379"),
    ("127.0.0.1:26379", "localhost:26379"),
    (":26379", "127.0.0.1:26379"),
    ("0.0.0.0:26379", "127.0.0.2:26379"),
    ("[::1]:26379", "[::1]:26379"),
    ("127.0.0.1:26379", "[::ffff:127.0.0.1]:26379"),
])
def test_a_proxy_whose_upstream_is_itself_is_a_400(listen, upstream):
    # one client connection chained a connection to itself until the fds ran out
    with pytest.raises(ApiError, match="is the proxy's own listen address") as e:
        proxy_fields({"name": "loop", "listen": listen, "upstream": upstream})
    assert e.value.status == 400


@pytest.mark.parametrize("listen, upstream", [
    ("127.0.0.1:0", "127.0.0.1:26379"),  # port 0: a free port, never the upstream's
    ("127.0.0.1:26379", "127.0.0.1:26380"),
    ("127.0.0.1:26379", "10.0.0.1:26379"),
    ("127.0.0.1:26379", "127.example:26379"),  # a name, not a loopback address
    ("127.0.0.1:26379", "127.0.0.2:26379"),  # another loopback address: another listener's
])
def test_a_proxy_to_another_port_or_host_is_fine(listen, upstream):
    assert proxy_fields({"name": "p", "listen": listen, "upstream": upstream})["listen"] == listen

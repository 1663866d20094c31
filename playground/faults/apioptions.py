"""The options of the toxiproxy-compatible API, for the ``toxiproxy`` and ``proxy`` subcommands.

``api_parameters(default)`` are ``--api ADDR`` (a bare port is 127.0.0.1) and ``--api-token``;
``NAME_PARAMETER`` is the ``proxy`` subcommand's ``--name`` (its proxy's name in the API).
``check_options(opts)`` validates them in place (a ``UsageError`` names the flag): an address
that is not loopback needs a token, ``--api-token`` or else a random one, logged at start.
Light on purpose: the proxy imports it whether or not the API is on.
"""

from __future__ import annotations

from twisted.python import usage

from playground.faults.model import NAME_RULE, valid_name
from playground.web.options import check_token

DEFAULT_NAME = "tcpplay"


def api_parameters(default: str | None) -> list:
    where = "Off by default. " if default is None else ""
    return [
        ["api", None, default,
         "Serve toxiproxy's HTTP JSON API at ADDR (PORT = 127.0.0.1:PORT, HOST:PORT, or an "
         f"endpoint string), so toxiproxy's clients drive the proxies. {where}On any address "
         "but loopback, every request needs the token (--api-token)."],
        ["api-token", None, None,
         "The token the API asks for (Authorization: Bearer TOKEN, the X-Tcpplay-Token header, "
         "or ?token=). Default: none on loopback; elsewhere a random one, logged at start."],
    ]


NAME_PARAMETER = ["name", None, DEFAULT_NAME,
                  "The proxy's name in the API (--api): /proxies/NAME."]


def check_options(opts) -> None:
    """Validate ``--api``, ``--api-token`` (and ``--name`` when present) in place."""
    if "name" in opts and not valid_name(str(opts["name"])):
        raise usage.UsageError(f"--name: {NAME_RULE} expected, got {opts['name']!r}")
    check_token(opts, "api", "api-token")

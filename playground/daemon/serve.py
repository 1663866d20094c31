"""``twistd tcpplay serve --config FILE``: run every service a TOML config file describes.

The file is read and checked by ``playground.daemon.config`` while the options are parsed, so a bad file
is a usage error and nothing starts. Each ``[KIND.NAME]`` table is built by its own subcommand's
``make_service`` from the options its own ``Options`` class parsed; all of them share one stats
registry, served by one ``metrics`` endpoint and one ``stats-interval`` log timer (global keys);
without either, no stats are kept (and a proxy may then decode in a child process, as
``proxy`` does by default).

``--set KIND.NAME.KEY=VALUE`` (repeatable) replaces or adds one key of one service after the file
is read; ``--set KEY=VALUE`` does the same for a global key. Services start in file order and stop
in reverse (each drains as its own subcommand does on SIGTERM).
"""

from __future__ import annotations

import importlib

from twisted.application import service
from twisted.python import usage

from playground.common.options import CommandOptions
from playground.daemon import config as C
from playground.daemon import metrics


class Options(CommandOptions):
    synopsis = "--config FILE [--set KIND.NAME.KEY=VALUE ...]"
    longdesc = (
        "Run the services described in a TOML config file (see config/tcpplay.toml and "
        "docs/daemon.md). Example: twistd -n tcpplay serve --config config/tcpplay.toml "
        "--set proxy.redis.listen=7000"
    )
    optParameters = [
        ["config", "c", None, "The TOML file describing the services (required)."],
    ]

    def __init__(self):
        super().__init__()
        self["set"] = []
        self.config: C.Config | None = None

    def opt_set(self, value):
        """Override one key of the file: KIND.NAME.KEY=VALUE (a service's key) or KEY=VALUE (a
        global key, e.g. metrics=9100). VALUE is read as TOML when it is one (7000, true,
        "text"), else as a string. Repeatable."""
        self["set"].append(value)

    def postOptions(self):
        if not self["config"]:
            raise usage.UsageError("--config FILE is required (e.g. config/tcpplay.toml)")
        self.config = C.load(self["config"], self["set"], parent=self)


class _Table(service.MultiService):
    """One ``[KIND.NAME]`` table's service: a listener that cannot bind ends start-up with its
    one line (``playground.common.listening``) prefixed by the file, line and table, since
    several services of a kind would otherwise say the same ``tcpplay KIND: ...``."""

    def __init__(self, where: str):
        super().__init__()
        self.where = where

    def _named(self, start):
        try:
            start()
        except SystemExit as e:
            if not isinstance(e.code, str):
                raise
            raise SystemExit(f"{self.where} {e.code}") from None

    def privilegedStartService(self):
        self._named(super().privilegedStartService)

    def startService(self):
        self._named(super().startService)


def make_service(options, reactor=None) -> service.IService:
    cfg: C.Config = options.config
    # the shared registry, when a global key reads it; else no one would: no stats are kept
    registry = metrics.Registry() if cfg.metrics or cfg.stats_interval else None
    services = service.MultiService()
    for spec in cfg.services:
        if registry is not None:
            spec.options.stats_registry = registry  # stats go to the shared registry
            spec.options.stats_name = spec.name
        module = importlib.import_module(C.kinds()[spec.kind])
        svc = module.make_service(spec.options, reactor=reactor)
        svc = metrics.attach(svc, spec.options, spec.kind, reactor=reactor)
        line = f"{spec.line}:" if spec.line is not None else ""
        table = _Table(f"{cfg.path}:{line} [{spec.kind}.{spec.name}]")
        svc.setServiceParent(table)
        table.setName(spec.name)
        table.setServiceParent(services)
    if registry is None:
        return services
    return metrics.wrap(services, registry, cfg.metrics, cfg.stats_interval, reactor=reactor)

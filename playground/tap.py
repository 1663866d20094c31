"""``twistd tcpplay``: the top-level options with one subcommand per service, and makeService.

Each subcommand lives in its own module exposing ``Options`` (a ``usage.Options``) and
``make_service(options, reactor=None)``; modules are imported only when their subcommand is used.
"""

from __future__ import annotations

import importlib

from twisted.application import service
from twisted.python import usage

# (name, module, one-line description)
SUBCOMMANDS = [
    ("echo", "playground.echo", "Echo server: every byte comes back (half-close aware)"),
]


def _lazy_options(module_name: str):
    def build():
        return importlib.import_module(module_name).Options()

    return build


class Options(usage.Options):
    synopsis = "<subcommand> [options]"
    longdesc = (
        "A TCP protocol playground. Run 'twistd -n tcpplay <subcommand> --help' for the options "
        "of each subcommand."
    )
    subCommands = [[name, None, _lazy_options(mod), desc] for name, mod, desc in SUBCOMMANDS]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError(
                "choose a subcommand: " + ", ".join(name for name, _, _ in SUBCOMMANDS)
            )


def makeService(options) -> service.IService:
    modules = {name: mod for name, mod, _ in SUBCOMMANDS}
    module = importlib.import_module(modules[options.subCommand])
    top = service.MultiService()
    module.make_service(options.subOptions).setServiceParent(top)
    return top

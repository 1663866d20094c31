"""``python -m playground COMMAND ...`` (or ``tcpplay COMMAND ...``): the project's command-line
tools, one subcommand each. The servers are ``twistd tcpplay`` subcommands (``playground.tap``);
asked for here, one line says so.

Each entry names a module and its ``main(argv, prog)`` function, imported only when used, so a
new tool is one more line in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys

# name -> (module, one-line description); the module's main(argv, prog) returns an exit code
COMMANDS = {
    "chat-client": ("playground.examples.chat.client", "interactive client for the chat server"),
    "check-config": ("playground.daemon.config", "check a serve config file, start nothing"),
    "pool": ("playground.examples.pool.cli", "requests/s and latency with and without a "
             "connection pool"),
    "replay": ("playground.replay.cli", "replay a capture against a server, compare the replies"),
}


def _prog() -> str:
    """How the user called us: ``tcpplay`` (the console entry) or ``python -m playground``."""
    return "tcpplay" if os.path.basename(sys.argv[0]) == "tcpplay" else "python -m playground"


def usage_text() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {_prog()} COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {desc}" for name, (_, desc) in sorted(COMMANDS.items())]
    lines += ["", f"Run '{_prog()} COMMAND --help' for the arguments of each command.",
              f"The servers ({', '.join(_servers())}) are twistd's:",
              "run 'twistd -n tcpplay SERVER --help'."]
    return "\n".join(lines)


def _servers() -> list[str]:
    """The ``twistd tcpplay`` subcommands (``playground.tap``), which are not tools of ours."""
    from playground.tap import SUBCOMMANDS

    return [name for name, _, _ in SUBCOMMANDS]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # a usage error: the usage on stderr, as argparse and twistd do
        print(usage_text(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        print(usage_text())
        return 0
    name, rest = argv[0], argv[1:]
    if name in _servers():  # ``tcpplay proxy ...``: what a newcomer types first
        print(f"{_prog()}: {name!r} is a server, run by twistd: "
              f"twistd -n tcpplay {shlex.join(argv)}", file=sys.stderr)
        return 2
    if name not in COMMANDS:
        from playground.common.options import did_you_mean

        print(f"{_prog()}: unknown command {name!r}{did_you_mean(name, COMMANDS, quote=True)}"
              f"\n\n{usage_text()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest, prog=f"{_prog()} {name}")


if __name__ == "__main__":
    sys.exit(main())

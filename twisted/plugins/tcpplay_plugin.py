"""twistd dropin: registers the ``tcpplay`` subcommand (see playground.tap)."""

from twisted.application.service import ServiceMaker

tcpplay = ServiceMaker(
    "tcpplay",
    "playground.tap",
    "TCP protocol playground: decoding proxy, echo, chat, HTTP and RESP servers",
    "tcpplay",
)

"""tcpplay: a Twisted TCP protocol playground (decoding proxy and example servers)."""

__version__ = "0.1.0"

"""What every layer shares: addresses and endpoint strings, the one text for an address,
command-line option helpers, the listening service, connection limits, the SIGTERM drain, the
default reactor, decimal numbers of ASCII digits only (``digits``), globs compiled once by what
holds them (``globs``), and the one module that uses Twisted's private API (``twistedprivate``:
the direct socket write among others).

May import Twisted and the standard library; imports nothing else from ``playground``, so every
other package can import it. ``addresstext``, ``defaultreactor``, ``digits`` and ``globs`` import
no Twisted at all (the pure observer contract uses ``addresstext``).
"""

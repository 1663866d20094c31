"""The live web view (``--web ADDR``): connections, their exchanges and their byte streams in a page.

``capture`` is pure (no Twisted, no clock): the bounded store the page and the JSON API read.
``sink`` feeds it from the decoder chain (records, and the chain's redacted byte path, as the
pcap sink gets it); ``site`` serves it with ``twisted.web`` on the proxy's reactor; ``options``
and ``service`` are ``--web`` and the service that owns the rest; ``export`` (pure) makes one
connection's pcap and JSON lines downloads; ``filterscan`` (pure) finds the connections a filter
matches in bounded steps; ``static/`` holds the page's
files (plain JS, no framework, nothing fetched from elsewhere). Docs: ``docs/web.md``.

May import the decoder records (``playground.decode.records``) and escaping (``views.escape``), the observer contract
(``playground.proxy.observer``), ``codec`` for reply types, the console's value formatting
(``playground.sinks.console``: rows read as the console's lines do), the pcap sink's pure
writer (``playground.sinks.pcapwriter``: the download's pcap), ``common`` and
``twisted.web``; never the splice internals.
"""

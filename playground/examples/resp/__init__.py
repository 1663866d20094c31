"""The in-memory Redis-protocol server (``twistd tcpplay resp``). ``server`` is the Twisted
adapter; everything else is pure (no Twisted, clock passed in): ``engine`` (sessions, dispatch,
the command table built from ``engine.MODULES``), one module per Redis group or data type
(``connection``, ``admin``, ``strings``, ``keys``, ``lists``, ``hashes``, ``sets``,
``sortedsets``, ``pubsub``, ``transactions``), and what they share: ``replies`` (effects, reply values, error texts),
``commands`` (how a module declares its commands), ``keyspace``, ``session``, ``arguments``."""

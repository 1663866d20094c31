"""Running tcpplay as a daemon: the TOML config file (``config``) and the ``serve`` subcommand
that starts what it describes, Prometheus metrics and periodic stats lines (``metrics``,
``stats``), and JSON log lines for twistd's ``--logger`` (``jsonlog``).

May import every other package: it builds services out of them.
"""

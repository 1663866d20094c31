"""The in-memory Redis-protocol server: ``engine`` (pure: commands and data types, clock passed
in) and ``server`` (the Twisted adapter, ``twistd tcpplay resp``)."""

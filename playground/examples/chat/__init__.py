"""The chat-line server: ``core`` (the pure state machine: nicks, rooms, messages), ``server``
(the Twisted adapter, ``twistd tcpplay chat``) and ``client`` (``tcpplay-chat``)."""

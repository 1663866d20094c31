"""The HTTP/1.1 responder: ``parser`` (pure request parser), ``app`` (pure httpbin-style
endpoints), ``server`` (the Twisted adapter, ``twistd tcpplay http``)."""

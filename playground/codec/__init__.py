"""The RESP wire format (RESP2 and RESP3): the value types, the incremental parser (with hiredis
behind one entry point) and the encoder.

Pure: no Twisted, no sockets, no clock; imports nothing else from ``playground``. The decoders
(``playground.decode``) and the RESP server (``playground.examples.resp``) both build on it.
"""

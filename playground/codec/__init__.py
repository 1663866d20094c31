"""The RESP wire format (RESP2 and RESP3), a module per job:

- ``values``: the value model (``Simple``, ``Error``, ``Map``, ``Truncated``, ``ProtocolError``...);
- ``parser``: ``RespParser``, the incremental, bounded parser (its pure loop reads everything);
- ``hiredisprefix``: ``HiredisPrefix.parse_prefix``, hiredis as the parser's fast path on runs
  of commands and of bulk replies, with the argument for why it gives exactly the pure loop's
  values;
- ``encoder``: ``encode`` and ``encode_command``;
- ``inline``: ``split_inline``, an inline command split as redis-server splits it.

Pure: no Twisted, no sockets, no clock; imports nothing else from ``playground``. The decoders
(``playground.decode``) and the RESP server (``playground.examples.resp``) both build on it.
"""

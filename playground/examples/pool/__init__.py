"""A bounded client connection pool for RESP, made to be watched through the proxy: ``core``
(the pool's bookkeeping, a pure state machine with the clock passed in), ``respclient`` (a small
RESP client protocol on ``playground.codec``), ``pool`` (the Twisted adapter: Deferreds from
``acquire``), ``httpload`` (the same load over HTTP through Twisted's own
``HTTPConnectionPool``) and ``cli`` (``tcpplay-pool``: requests per second, latency and
connections opened, with and without a pool)."""

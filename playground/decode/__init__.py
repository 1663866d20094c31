"""Decoding what crossed a pair: protocol detection, the per-protocol conversation decoders (RESP,
HTTP) each with the stream adapter the chain feeds beside it, the text and hex views, redaction
(what is secret and how it is masked, in one module), and the records the sinks consume;
``chain`` puts them together as the proxy's observer.

Pure apart from ``twisted.logger`` (the chain logs a decoder that fails): ``feed(bytes) ->
events``, timestamps passed in. May import ``codec`` and the observer contract
(``playground.proxy.observer``); never the splice, the sinks or the reactor.
"""

"""Replaying a capture against a server and comparing the replies: ``tcpplay replay``.

``reassembly`` (TCP streams from segments) and ``capture`` (pcap, pcapng and tcpplay's JSON lines
read into connections) turn a file into each connection's client and server streams; ``compare``
splits them into requests and recorded replies with the decoders of ``playground.decode`` and
holds new replies against the recorded ones; ``run`` sends the requests to a target over
Twisted; ``cli`` is the command line (``python -m playground replay``, ``tcpplay-replay``).

Pure apart from ``run`` and ``cli``: ``reassembly``, ``capture`` and ``compare`` import no
Twisted. May import ``codec``, ``decode`` and ``common``; never the proxy's splice, the sinks,
the web view or the examples.
"""

"""Where decoded records go: the console view, JSON lines, the pcap file, the command statistics,
and the writers that keep a slow terminal or disk from stalling the proxy. The console and JSON
sinks share their batched writes (``batching``) and their fast paths' checks (``plain``); on
together, they share one queue (``sharedbatch``).

Twisted services (batched writes on later reactor turns). May import ``decode`` (records and
views), ``codec``, ``common`` and the observer contract; never the splice.
"""

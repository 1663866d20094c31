"""Twisted's own twisted.protocols.portforward, as the baseline: portforward.py LISTEN_PORT TARGET_PORT."""

import sys

from twisted.internet import reactor
from twisted.protocols import portforward

listen, target = int(sys.argv[1]), int(sys.argv[2])
reactor.listenTCP(listen, portforward.ProxyFactory("127.0.0.1", target), 1024, "127.0.0.1")
print(f"portforward listening on 127.0.0.1:{listen}", flush=True)
reactor.run()

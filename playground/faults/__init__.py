"""Fault injection: break a connection on purpose.

``model`` (pure) is what a fault is: toxiproxy's toxic (name, type, stream, toxicity, attributes) plus
tcpplay's own types, their checking, the ``--fault`` syntax, the live set a proxy holds and
``ConnectionToxics``, the toxicity roll and ``nth`` count one connection's protocol faults share.
``toxics`` (pure) is one direction's byte-level toxics as a pipeline the splice
(``proxy.splice``) drives; ``respfaults`` (pure) one pair's ``resp`` faults (commands and replies
in, actions out), which the splice drives too. The toxiproxy-compatible HTTP API builds on them:
``httpfaults`` (pure) the same for ``http`` faults (requests and responses in, actions out).
``registry`` (the named proxies, each a ``proxy.service.ProxyService``), ``api`` (its routes,
twisted.web), ``apioptions`` (``--api``, ``--api-token``, ``--name``) and ``toxiproxy`` (the
subcommand).

May import: ``playground.common``, ``playground.codec``, ``playground.decode``, ``playground.proxy``,
``playground.web.options`` (``check_token`` and ``authorised``, for the API's token) and
Twisted (apart from ``model``, ``toxics``, ``respfaults`` and ``httpfaults``, which import nothing
of Twisted, so the splice can use them).
"""

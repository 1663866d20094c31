"""The proxy: the splice that forwards every byte both ways (``splice``), the observer contract
it tells what crossed (``observer``), and the ``proxy`` subcommand's options and service
(``service``, with the decoding options in ``decoding``).

``observer`` is pure (it imports only ``common.addresstext``, pure too): it is the contract
``decode`` and ``sinks`` build on.
``splice`` imports ``common`` and the pure fault cores (``faults.model``, ``faults.toxics``,
``faults.respfaults``, ``faults.httpfaults``: it frames with ``decode.httpdecoder``)
only; ``service`` and ``decoding`` put the pieces together and may import ``decode``, ``sinks``
and ``faults`` (``service``'s ``--api``: the toxiproxy API).
"""

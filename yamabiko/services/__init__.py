"""Node-level services: what outlives a request and is shared by the node's sessions.

Generations and syntheses (jobs that produce streams, :mod:`.jobs`), the ghost-text
models, the conversation watch, the sweeper of orphaned streams, and the typed
container the handlers reach them through (:mod:`.container`). Stream item kinds and
their wire codecs live in :mod:`.items`.

Layering: handlers -> services -> engines, store. Nothing here imports a handler or
the server; the server (:mod:`yamabiko.server.wiring`) builds them.
"""

"""Pull engine, backfill, delete reconciliation and the outbox drain.

``engine.SyncEngine(store, connector, conn)`` (``sync``, ``backfill``, ``sweep_deletes``: one
transaction per page), ``runner`` (cycles over connections), ``budget.ApiBudget``, and
``outbox.drain(store, connector, conn)``: the push policy over the SQL in ``crmsync.store.outbox``.
"""

"""Pull engine, backfill, delete reconciliation and the outbox drain."""

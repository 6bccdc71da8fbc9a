"""The worker: embedded scheduler (APScheduler on one machine), distributed mode (procrastinate on
PostgreSQL), the pipeline run per connection cycle, the HTTP endpoint (health, readiness, metrics,
webhooks).

Entry points: ``crmsync.runtime.embedded.EmbeddedWorker``, ``crmsync.runtime.distributed.run_worker``,
``crmsync.runtime.pipeline.run_connection_cycle`` and the ``crmsync worker`` command in
``crmsync.runtime.commands``.
"""

from __future__ import annotations

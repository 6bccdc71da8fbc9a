"""The admin console: a Starlette web app over the store and the rule files.

Layers (each imports only the ones below it):

- ``app`` / ``pages_*``: routes, templates, forms (HTTP only);
- ``drafts``, ``impact``, ``why``, ``operations``: what each page shows or does, as plain functions;
- ``accounts``, ``audit``, ``yamledit``: users and sessions, the audit trail, comment-keeping YAML edits;
- ``crmsync.rules``, ``crmsync.store``: the rule loader/engine and the store, unchanged.

The rule files under ``settings.rules_dir`` stay the source of truth: the console edits a draft copy
(comments kept) and publishing writes the draft back into the rule directory, where the worker
picks it up at its next cycle.
"""

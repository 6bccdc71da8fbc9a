"""The rules run over the store: stored records in, decisions logged and writes queued in the outbox.

``rules`` is pure (records and a context in, decisions out); this package is its edge to the store:
``runner`` loads the records, runs the rule sets and writes the decision log and the outbox,
``closing`` closes the tasks a finding no longer needs, ``inputs`` reads the calls, usage and
invoices the rules score, ``digest`` writes the daily digest of decisions.
"""

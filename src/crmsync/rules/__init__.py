"""crmsync.rules: typed YAML rule files compiled once, evaluated as pure functions.

``loader.load_rules(directory) -> RuleSet`` reads and compiles ``scoring``, ``routing``,
``hygiene``, ``handoff`` and ``renewal`` (errors name file, line and key; ``RuleSetHolder`` keeps
the last good set). ``engine.evaluate`` / ``engine.incremental`` turn records and a
``context.RuleContext`` into ``decisions.Decision``s without I/O. Their edge to the store is the
``crmsync.decide`` package (decisions -> decision-log and outbox rows in one transaction); the CLI
is ``commands``.
"""

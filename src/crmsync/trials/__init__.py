"""Workflow trials over the store: shadow periods (a rule-set version decided beside the live one,
never pushed) and experiments (assignments stored, variant writes queued); the pure parts
(``rules.experiments``) stay in ``rules``."""

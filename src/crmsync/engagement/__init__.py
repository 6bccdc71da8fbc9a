"""Sales engagement: the tools' objects in the store, and sequence enrolments decided by the rules."""

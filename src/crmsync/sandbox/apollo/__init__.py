"""Apollo.io API v1 simulator (contacts, sequences = emailer campaigns, email accounts, messages)."""

from crmsync.sandbox.apollo.simulator import ApolloSimulator

__all__ = ["ApolloSimulator"]

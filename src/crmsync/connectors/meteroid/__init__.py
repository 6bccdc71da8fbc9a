"""The Meteroid (billing) connector."""

from crmsync.billing_keys import customer_alias, subscription_marker
from crmsync.connectors.meteroid.connector import MeteroidConnector
from crmsync.connectors.meteroid.errors import AlreadyExists, AmbiguousCreate, NotFound

__all__ = ["AlreadyExists", "AmbiguousCreate", "MeteroidConnector", "NotFound", "customer_alias",
           "subscription_marker"]

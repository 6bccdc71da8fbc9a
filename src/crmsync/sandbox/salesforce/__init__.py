"""A faithful local Salesforce org: REST (query, sObjects, collections), Bulk 2.0 and OAuth."""

from crmsync.sandbox.salesforce.auth import SandboxCredentials
from crmsync.sandbox.salesforce.simulator import SalesforceSimulator
from crmsync.sandbox.salesforce.soql import SoqlError, parse

__all__ = ["SalesforceSimulator", "SandboxCredentials", "SoqlError", "parse"]

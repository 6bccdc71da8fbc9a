"""Salesforce connector: REST keyset and Bulk 2.0 pulls, sObject Collections pushes."""

from crmsync.connectors.salesforce.connector import SalesforceConnector
from crmsync.connectors.salesforce.soql import SoqlBuildError, literal, quote, soql

__all__ = ["SalesforceConnector", "SoqlBuildError", "literal", "quote", "soql"]

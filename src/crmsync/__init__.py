"""crmsync: a CRM sync and sales-automation worker (Salesforce, HubSpot, Pipedrive, Meteroid).

The layers and the import directions between the packages are drawn in docs/engineering.md and
checked by tests/core/test_import_layers.py.
"""

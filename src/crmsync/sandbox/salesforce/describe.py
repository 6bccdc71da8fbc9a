"""sObject metadata as the REST API serves it: the ``/sobjects`` list entries and ``/sobjects/{name}/describe``.

Facts (Salesforce SOAP API guide, DescribeSObjectResult and DescribeGlobalSObjectResult,
developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm;
Airbyte's source-salesforce reads ``queryable`` from the list and ``fields[].type`` from describe): DescribeGlobal lists each object with its
capability flags (``queryable``, ``replicateable``, ``retrieveable``, ``createable``, ``updateable``,
``deletable``, ``custom``, ``layoutable``, ``searchable``...); the per-object describe adds
``fields``, each with ``name``, ``type`` (``id``, ``reference``, ``string``, ``boolean``,
``currency``, ``double``, ``percent``, ``int``, ``date``, ``datetime``...), ``soapType``,
``custom``, ``nillable``, ``createable``, ``updateable``, ``externalId``, ``referenceTo``.
"""

from __future__ import annotations

from typing import Any

from crmsync.sandbox.salesforce.schema import SObjectType

# sandbox field type -> (describe type, soapType)
FIELD_TYPES: dict[str, tuple[str, str]] = {
    "id": ("id", "tns:ID"), "ref": ("reference", "tns:ID"), "string": ("string", "xsd:string"),
    "boolean": ("boolean", "xsd:boolean"), "currency": ("currency", "xsd:double"),
    "double": ("double", "xsd:double"), "percent": ("percent", "xsd:double"), "int": ("int", "xsd:int"),
    "date": ("date", "xsd:date"), "datetime": ("datetime", "xsd:dateTime"),
}
# Field history rows are written by the platform only.
READ_ONLY_OBJECTS = frozenset({"OpportunityFieldHistory", "OpportunityHistory"})
_REFERENCE_TARGETS = {"OwnerId": "User", "CreatedById": "User", "LastModifiedById": "User", "ManagerId": "User",
                      "AccountId": "Account", "ContactId": "Contact", "OpportunityId": "Opportunity",
                      "Pricebook2Id": "Pricebook2", "Product2Id": "Product2", "PricebookEntryId": "PricebookEntry",
                      "ConvertedAccountId": "Account", "ConvertedContactId": "Contact",
                      "ConvertedOpportunityId": "Opportunity"}


def _urls(sobj: SObjectType, version: str) -> dict[str, str]:
    base = f"/services/data/{version}/sobjects/{sobj.name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def object_flags(sobj: SObjectType, version: str) -> dict[str, Any]:
    """One entry of ``GET /sobjects`` (DescribeGlobal)."""
    writable = sobj.name not in READ_ONLY_OBJECTS
    return {
        "name": sobj.name, "label": sobj.name, "labelPlural": f"{sobj.name}s", "keyPrefix": sobj.prefix,
        "custom": sobj.name.endswith("__c"), "customSetting": False, "createable": writable, "updateable": writable,
        "deletable": writable, "undeletable": writable and sobj.replicable, "mergeable": sobj.name in
        ("Account", "Contact", "Lead"), "queryable": True, "retrieveable": True, "replicateable": sobj.replicable,
        "searchable": writable, "layoutable": writable, "triggerable": writable, "feedEnabled": False,
        "activateable": False, "deprecatedAndHidden": False, "urls": _urls(sobj, version),
    }


def field_describe(sobj: SObjectType, name: str, kind: str) -> dict[str, Any]:
    sf_type, soap = FIELD_TYPES[kind]
    writable = sobj.writable(name) and sobj.name not in READ_ONLY_OBJECTS
    reference: list[str] = []
    if kind == "ref":
        if name in ("WhatId", "ParentId"):
            reference = ["Account", "Opportunity"]
        elif name == "WhoId":
            reference = ["Contact", "Lead"]
        else:
            reference = [sobj.name if name == "MasterRecordId" else _REFERENCE_TARGETS.get(name, "User")]
    return {
        "name": name, "label": name, "type": sf_type, "soapType": soap, "custom": name.endswith("__c"),
        "nillable": name not in sobj.required and kind not in ("id", "boolean") and name != "IsDeleted",
        "createable": writable, "updateable": writable, "filterable": True, "sortable": True,
        "externalId": name in sobj.external_ids, "idLookup": kind == "id" or name in sobj.external_ids,
        "unique": False, "calculated": False, "defaultedOnCreate": name in ("Id", "IsDeleted", "CreatedDate",
                                                                            "SystemModstamp"),
        "length": sobj.max_lengths.get(name, 255) if kind == "string" else 18 if kind in ("id", "ref") else 0,
        "referenceTo": reference, "relationshipName": name[:-2] if kind == "ref" and name.endswith("Id") else None,
    }


def describe(sobj: SObjectType, version: str) -> dict[str, Any]:
    """``GET /sobjects/{name}/describe``."""
    return {**object_flags(sobj, version),
            "fields": [field_describe(sobj, name, kind) for name, kind in sobj.fields.items()],
            "childRelationships": [], "recordTypeInfos": [], "supportedScopes": []}

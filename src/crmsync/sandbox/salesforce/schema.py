"""The sObjects the simulator serves: fields with their SOAP-ish types, key prefixes, rules.

Types drive SOQL literal checks, JSON/CSV rendering and write validation:
``id`` (the record's own Id), ``ref`` (a lookup id), ``string``, ``boolean``, ``currency``,
``double``, ``percent``, ``int``, ``date``, ``datetime``.

Custom fields crmsync's example rules write (``Crmsync_Score__c``, ``Crmsync_Grade__c``, Lead
``Lifecycle_Stage__c``) are declared as an admin would create them. ``Note`` is the classic note
(ParentId, Title ≤80, Body ≤32,000): like the real one it takes no custom fields, so crmsync keeps
its idempotency key as a ``[crmsync:…]`` marker in the Title (see the connector's ``notes`` module).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crmsync.sandbox.salesforce.ids import KEY_PREFIXES
from crmsync.sandbox.world import DEAL_CUSTOM_FIELDS

NUMBER_TYPES = frozenset({"currency", "double", "percent", "int"})
TEXT_TYPES = frozenset({"string"})
ID_TYPES = frozenset({"id", "ref"})

AUDIT_FIELDS: dict[str, str] = {
    "Id": "id", "IsDeleted": "boolean", "CreatedDate": "datetime", "CreatedById": "ref",
    "LastModifiedDate": "datetime", "LastModifiedById": "ref", "SystemModstamp": "datetime",
}
READ_ONLY = frozenset(AUDIT_FIELDS) | {"IsClosed", "IsWon", "ForecastCategoryName", "HasOpportunityLineItem",
                                        "TotalPrice", "Name__computed", "FiscalYear", "FiscalQuarter",
                                        "MasterRecordId", "ProductCode", "ListPrice"}


def custom_field_name(key: str) -> str:
    """``economic_buyer`` -> ``Economic_Buyer__c``."""
    return "_".join(part.capitalize() for part in key.split("_")) + "__c"


DEAL_CUSTOM_SF = {key: custom_field_name(key) for key in DEAL_CUSTOM_FIELDS}
CRMSYNC_SCORE_FIELDS = {"Crmsync_Score__c": "double", "Crmsync_Grade__c": "string"}


@dataclass(frozen=True)
class SObjectType:
    name: str
    fields: dict[str, str]
    required: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    replicable: bool = True  # supports updated/deleted and IsDeleted
    extra_read_only: frozenset[str] = frozenset()
    max_lengths: dict[str, int] = field(default_factory=dict)  # text fields with a length limit
    lower: dict[str, str] = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        self.lower.update({name.lower(): name for name in self.fields})

    @property
    def prefix(self) -> str:
        return KEY_PREFIXES[self.name]

    def resolve(self, name: str) -> str | None:
        """The canonical spelling of a field name (SOQL and JSON keys are case-insensitive)."""
        return self.lower.get(name.lower())

    def writable(self, name: str) -> bool:
        return name not in READ_ONLY and name not in self.extra_read_only


def _obj(name: str, fields: dict[str, str], **kw: object) -> SObjectType:
    return SObjectType(name, {**AUDIT_FIELDS, **fields}, **kw)  # type: ignore[arg-type]


OPPORTUNITY = _obj("Opportunity", {
    "Name": "string", "StageName": "string", "Amount": "currency", "CloseDate": "date",
    "Probability": "percent", "OwnerId": "ref", "AccountId": "ref", "ContactId": "ref", "IsClosed": "boolean",
    "IsWon": "boolean", "ForecastCategoryName": "string", "Type": "string", "LeadSource": "string",
    "Pricebook2Id": "ref", "HasOpportunityLineItem": "boolean", "CurrencyIsoCode": "string",
    "FiscalYear": "int", "FiscalQuarter": "int", "Description": "string", "NextStep": "string",
    "LastActivityDate": "date", "LastStageChangeDate": "datetime", "MasterRecordId": "ref",
    **{sf: ("boolean" if key == "discount_approved" else "string") for key, sf in DEAL_CUSTOM_SF.items()},
    "Contract_Start__c": "date", "Contract_End__c": "date", "Handoff_Done__c": "boolean",
    "Loss_Reason__c": "string", "Competitor__c": "string",
    "Crmsync_Key__c": "string", **CRMSYNC_SCORE_FIELDS,
}, required=("Name", "StageName", "CloseDate"), external_ids=("Crmsync_Key__c",), max_lengths={"Name": 120})

LEAD = _obj("Lead", {
    "FirstName": "string", "LastName": "string", "Name": "string", "Email": "string", "Company": "string",
    "Title": "string", "Status": "string", "LeadSource": "string", "Country": "string", "Industry": "string",
    "NumberOfEmployees": "int", "OwnerId": "ref", "IsConverted": "boolean", "ConvertedAccountId": "ref",
    "ConvertedContactId": "ref", "ConvertedOpportunityId": "ref", "ConvertedDate": "date",
    "LastActivityDate": "date", "Rating": "string", "Region__c": "string", "Lead_Score__c": "double",
    "MasterRecordId": "ref", "Crmsync_Key__c": "string", **CRMSYNC_SCORE_FIELDS, "Lifecycle_Stage__c": "string",
}, required=("LastName", "Company"), external_ids=("Crmsync_Key__c",), extra_read_only=frozenset({"Name"}))

ACCOUNT = _obj("Account", {
    "Name": "string", "Website": "string", "Industry": "string", "BillingCountry": "string",
    "NumberOfEmployees": "int", "AnnualRevenue": "currency", "OwnerId": "ref", "Type": "string",
    "Region__c": "string", "Segment__c": "string", "MasterRecordId": "ref", "Crmsync_Key__c": "string",
}, required=("Name",), external_ids=("Crmsync_Key__c",))

CONTACT = _obj("Contact", {
    "FirstName": "string", "LastName": "string", "Name": "string", "Email": "string", "Title": "string",
    "AccountId": "ref", "OwnerId": "ref", "MasterRecordId": "ref", "Crmsync_Key__c": "string",
}, required=("LastName",), external_ids=("Crmsync_Key__c",), extra_read_only=frozenset({"Name"}))

USER = _obj("User", {
    "Username": "string", "FirstName": "string", "LastName": "string", "Name": "string", "Email": "string",
    "IsActive": "boolean", "ManagerId": "ref", "TimeZoneSidKey": "string", "Department": "string",
    "UserRoleId": "ref", "ProfileId": "ref", "Region__c": "string", "Role__c": "string",
    "Capacity_Per_Day__c": "double",
}, required=("LastName", "Username"), replicable=False, extra_read_only=frozenset({"Name"}))

OPPORTUNITY_STAGE = _obj("OpportunityStage", {
    "ApiName": "string", "MasterLabel": "string", "IsActive": "boolean", "IsClosed": "boolean",
    "IsWon": "boolean", "DefaultProbability": "percent", "ForecastCategoryName": "string", "SortOrder": "int",
}, replicable=False)

PRODUCT2 = _obj("Product2", {
    "Name": "string", "ProductCode": "string", "Family": "string", "IsActive": "boolean",
    "Description": "string", "QuantityUnitOfMeasure": "string",
}, required=("Name",), extra_read_only=frozenset())

PRICEBOOK2 = _obj("Pricebook2", {
    "Name": "string", "IsActive": "boolean", "IsStandard": "boolean", "Description": "string",
}, required=("Name",))

PRICEBOOK_ENTRY = _obj("PricebookEntry", {
    "Name": "string", "Pricebook2Id": "ref", "Product2Id": "ref", "UnitPrice": "currency",
    "IsActive": "boolean", "ProductCode": "string", "CurrencyIsoCode": "string", "UseStandardPrice": "boolean",
}, required=("Pricebook2Id", "Product2Id", "UnitPrice"))

OPPORTUNITY_LINE_ITEM = _obj("OpportunityLineItem", {
    "OpportunityId": "ref", "PricebookEntryId": "ref", "Product2Id": "ref", "ProductCode": "string",
    "Name": "string", "Quantity": "double", "UnitPrice": "currency", "ListPrice": "currency",
    "TotalPrice": "currency", "Discount": "percent", "ServiceDate": "date", "SortOrder": "int",
    "CurrencyIsoCode": "string", "Billing_Period__c": "string", "Term_Months__c": "double",
}, required=("OpportunityId", "Quantity"))

TASK = _obj("Task", {
    "Subject": "string", "OwnerId": "ref", "WhatId": "ref", "WhoId": "ref", "ActivityDate": "date",
    "Status": "string", "IsClosed": "boolean", "Priority": "string", "Description": "string",
    "Crmsync_Key__c": "string",
}, required=("Subject",), external_ids=("Crmsync_Key__c",), extra_read_only=frozenset({"IsClosed"}))

# The classic Note (not ContentNote): attached to any record by ParentId; no custom fields.
NOTE = _obj("Note", {
    "ParentId": "ref", "Title": "string", "Body": "string", "IsPrivate": "boolean", "OwnerId": "ref",
}, required=("ParentId", "Title"), max_lengths={"Title": 80, "Body": 32_000})

# Field history (tracked fields; StageName here). Real rows carry CreatedDate only; SystemModstamp
# (= CreatedDate) is kept here so the same keyset index serves them. A record's creation is one row
# with Field "created" and no values; a stage change is a "StageName" row with OldValue/NewValue.
OPPORTUNITY_FIELD_HISTORY = _obj("OpportunityFieldHistory", {
    "OpportunityId": "ref", "Field": "string", "OldValue": "string", "NewValue": "string", "DataType": "string",
}, replicable=False, extra_read_only=frozenset({"OpportunityId", "Field", "OldValue", "NewValue", "DataType"}))

# Stage history kept by every org (no tracking setup): one row on creation and one on each change
# of StageName, Amount, Probability or CloseDate, each a snapshot of those fields (docs/crm-history.md).
_HISTORY_FIELDS = {
    "OpportunityId": "ref", "StageName": "string", "Amount": "currency", "CloseDate": "date",
    "Probability": "percent", "ForecastCategory": "string", "ExpectedRevenue": "currency",
    "PrevAmount": "currency", "PrevCloseDate": "date", "CurrencyIsoCode": "string",
}
OPPORTUNITY_HISTORY = _obj("OpportunityHistory", _HISTORY_FIELDS, replicable=False,
                           extra_read_only=frozenset(_HISTORY_FIELDS))

SOBJECTS: dict[str, SObjectType] = {o.name: o for o in (
    OPPORTUNITY, LEAD, ACCOUNT, CONTACT, USER, OPPORTUNITY_STAGE, PRODUCT2, PRICEBOOK2, PRICEBOOK_ENTRY,
    OPPORTUNITY_LINE_ITEM, TASK, NOTE, OPPORTUNITY_FIELD_HISTORY, OPPORTUNITY_HISTORY)}
SOBJECTS_LOWER = {name.lower(): o for name, o in SOBJECTS.items()}
PREFIX_TO_OBJECT = {o.prefix: o.name for o in SOBJECTS.values()}


def sobject(name: str) -> SObjectType | None:
    return SOBJECTS_LOWER.get(name.lower())

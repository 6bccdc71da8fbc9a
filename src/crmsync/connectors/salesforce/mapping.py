"""Field tables: Salesforce sObjects to canonical records (custom fields kept in ``extra``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from crmsync.connectors.converters import (
    as_bool,
    as_date,
    as_decimal,
    as_id,
    as_int,
    as_percent,
    as_str,
    as_timestamp,
)
from crmsync.connectors.mapping import FieldMap, ObjectMapping
from crmsync.model import ObjectType, parse_date

PIPELINE_ID = "default"  # Salesforce has one opportunity stage list; crmsync sees it as one pipeline


def as_day_start(value: Any, name: str) -> dt.datetime | None:
    """A date field (``LastActivityDate``) where the canonical model wants a timestamp: 00:00 UTC."""
    day = parse_date(value, field_name=name)
    return None if day is None else dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def as_id_list(value: Any, name: str) -> list[str]:
    single = as_id(value, name)
    return [single] if single else []


def as_domain(value: Any, name: str) -> str | None:
    text = as_str(value, name)
    if text is None:
        return None
    return text.split("://", 1)[-1].split("/", 1)[0].lower() or None


AUDIT = {"id_field": "Id", "modified_field": "SystemModstamp", "created_field": "CreatedDate"}
IGNORE = frozenset({"attributes", "CreatedDate", "IsDeleted"})  # created/deleted are mapped, not extra
DEAL_CUSTOM_TEXT = ("Metrics__c", "Economic_Buyer__c", "Decision_Criteria__c", "Decision_Process__c",
                    "Identified_Pain__c", "Champion__c", "Use_Case__c", "Success_Criteria__c",
                    "Technical_Requirements__c", "Billing_Period__c", "Crmsync_Key__c")


def _m(name: str, otype: ObjectType, sobject: str, fields: list[FieldMap], *, deleted: bool = True,
       **kw: Any) -> ObjectMapping:
    audit = {**AUDIT, **kw.pop("audit", {})}
    return ObjectMapping(name, otype, sobject, audit["id_field"], audit["modified_field"], tuple(fields),
                         created_field=audit["created_field"], deleted_field="IsDeleted" if deleted else None,
                         ignore=IGNORE, **kw)


F = FieldMap
DEALS = _m("deals", ObjectType.DEAL, "Opportunity", [
    F("Name", "name"), F("Amount", "amount", as_decimal), F("CurrencyIsoCode", "currency"),
    F("StageName", "stage_id"), F("Probability", "probability", as_percent), F("IsClosed", "is_closed", as_bool),
    F("IsWon", "is_won", as_bool), F("CloseDate", "close_date", as_date), F("OwnerId", "owner_id", as_id),
    F("AccountId", "account_id", as_id), F("ContactId", "contact_ids", as_id_list), F("Type", "deal_type"),
    F("LeadSource", "lead_source"), F("LastStageChangeDate", "stage_changed_at", as_timestamp),
    F("LastActivityDate", "last_activity_at", as_day_start), F("Contract_Start__c", "contract_start", as_date),
    F("Contract_End__c", "contract_end", as_date),
    *(F(name, f"extra.{name}", as_str) for name in DEAL_CUSTOM_TEXT),
    F("Discount_Approved__c", "extra.Discount_Approved__c", as_bool),
    F("Handoff_Done__c", "extra.Handoff_Done__c", as_bool),
], defaults={"pipeline_id": PIPELINE_ID})

LEADS = _m("leads", ObjectType.LEAD, "Lead", [
    F("FirstName", "first_name"), F("LastName", "last_name"), F("Email", "email"), F("Company", "company"),
    F("Title", "title"), F("Status", "status"), F("LeadSource", "source"), F("Country", "country"),
    F("Industry", "industry"), F("NumberOfEmployees", "employees", as_int), F("OwnerId", "owner_id", as_id),
    F("IsConverted", "is_converted", as_bool), F("ConvertedAccountId", "converted_account_id", as_id),
    F("ConvertedOpportunityId", "extra.converted_opportunity_id", as_id),
    F("ConvertedDate", "extra.converted_date", as_str),
    F("LastActivityDate", "last_activity_at", as_day_start), F("Region__c", "region"),
    F("Lead_Score__c", "score", as_decimal), F("Rating", "grade"), F("Crmsync_Key__c", "extra.Crmsync_Key__c"),
])

ACCOUNTS = _m("accounts", ObjectType.ACCOUNT, "Account", [
    F("Name", "name"), F("Website", "domain", as_domain), F("Industry", "industry"),
    F("BillingCountry", "country"), F("Region__c", "region"), F("Segment__c", "segment"),
    F("NumberOfEmployees", "employees", as_int), F("AnnualRevenue", "annual_revenue", as_decimal),
    F("OwnerId", "owner_id", as_id),
])

CONTACTS = _m("contacts", ObjectType.CONTACT, "Contact", [
    F("FirstName", "first_name"), F("LastName", "last_name"), F("Email", "email"), F("Title", "title"),
    F("AccountId", "account_id", as_id), F("OwnerId", "owner_id", as_id),
])

OWNERS = _m("owners", ObjectType.OWNER, "User", [
    F("Name", "name"), F("Email", "email"), F("IsActive", "active", as_bool), F("Department", "team"),
    F("Region__c", "region"), F("TimeZoneSidKey", "timezone"), F("Capacity_Per_Day__c", "capacity_per_day", as_int),
    F("ManagerId", "manager_id", as_id), F("Role__c", "extra.Role__c"),
], deleted=False)

STAGES = _m("stages", ObjectType.STAGE, "OpportunityStage", [
    F("MasterLabel", "name"), F("SortOrder", "display_order", as_int),
    F("DefaultProbability", "probability", as_percent), F("IsClosed", "is_closed", as_bool),
    F("IsWon", "is_won", as_bool), F("Id", "extra.Id", as_id), F("IsActive", "extra.IsActive", as_bool),
], deleted=False, audit={"id_field": "ApiName"}, defaults={"pipeline_id": PIPELINE_ID})

LINE_ITEMS = _m("line_items", ObjectType.LINE_ITEM, "OpportunityLineItem", [
    F("OpportunityId", "deal_id", as_id), F("Product2Id", "product_id", as_id), F("ProductCode", "product_code"),
    F("Name", "name"), F("Quantity", "quantity", as_decimal), F("UnitPrice", "unit_price", as_decimal),
    F("ListPrice", "list_price", as_decimal), F("Discount", "discount_percent", as_decimal),
    F("TotalPrice", "total", as_decimal), F("CurrencyIsoCode", "currency"), F("ServiceDate", "service_date", as_date),
    F("Billing_Period__c", "billing_period"), F("Term_Months__c", "term_months", as_int),
])

PRODUCTS = _m("products", ObjectType.PRODUCT, "Product2", [
    F("Name", "name"), F("ProductCode", "code"), F("Family", "family"), F("IsActive", "active", as_bool),
])

PRICE_BOOK_ENTRIES = _m("price_book_entries", ObjectType.PRICE_BOOK_ENTRY, "PricebookEntry", [
    F("Pricebook2Id", "price_book_id", as_id), F("Product2Id", "product_id", as_id),
    F("UnitPrice", "unit_price", as_decimal), F("CurrencyIsoCode", "currency"), F("IsActive", "active", as_bool),
])

TASKS = _m("tasks", ObjectType.TASK, "Task", [
    F("Subject", "subject"), F("OwnerId", "owner_id", as_id), F("WhatId", "deal_id", as_id),
    F("WhoId", "lead_id", as_id), F("ActivityDate", "due_date", as_date), F("IsClosed", "done", as_bool),
    F("Crmsync_Key__c", "crmsync_key"), F("Status", "extra.Status"),
])


@dataclass(frozen=True)
class SObjectSpec:
    mapping: ObjectMapping
    replicable: bool = True  # queryAll + IsDeleted + getDeleted

    @property
    def sobject(self) -> str:
        return self.mapping.source_object


OBJECTS: dict[str, SObjectSpec] = {
    "owners": SObjectSpec(OWNERS, replicable=False),
    "stages": SObjectSpec(STAGES, replicable=False),
    "accounts": SObjectSpec(ACCOUNTS), "contacts": SObjectSpec(CONTACTS), "leads": SObjectSpec(LEADS),
    "deals": SObjectSpec(DEALS), "line_items": SObjectSpec(LINE_ITEMS), "products": SObjectSpec(PRODUCTS),
    "price_book_entries": SObjectSpec(PRICE_BOOK_ENTRIES), "tasks": SObjectSpec(TASKS),
}
SOBJECT_TO_NAME = {spec.sobject.lower(): name for name, spec in OBJECTS.items()}

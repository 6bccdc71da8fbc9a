"""The seeded World in Salesforce's dialect: native rows for every sObject, built on demand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from crmsync.sandbox.salesforce.evaluate import sf_datetime
from crmsync.sandbox.salesforce.ids import make_id
from crmsync.sandbox.salesforce.schema import DEAL_CUSTOM_SF, SOBJECTS
from crmsync.sandbox.salesforce.tables import Table
from crmsync.sandbox.world import (
    PRODUCTS,
    STAGES,
    WAccount,
    WContact,
    WDeal,
    WLead,
    World,
    WOwner,
    crm_list_price,
)

Row = dict[str, Any]
STANDARD_PRICEBOOK = make_id("01s", 1)
FORECAST = {"qualification": "Pipeline", "discovery": "Pipeline", "demo": "Pipeline", "proposal": "Best Case",
            "negotiation": "Commit", "closedwon": "Closed", "closedlost": "Omitted"}
# OpportunityHistory.ForecastCategory holds the API names of the forecast categories
FORECAST_API = {"Pipeline": "Pipeline", "Best Case": "BestCase", "Commit": "Forecast", "Closed": "Closed",
                "Omitted": "Omitted"}


def user_id(owner: int) -> str:
    return make_id("005", owner)


def _audit(record_id: str, created: dt.datetime, modified: dt.datetime, by: str) -> Row:
    return {"Id": record_id, "IsDeleted": False, "CreatedDate": sf_datetime(created), "CreatedById": by,
            "LastModifiedDate": sf_datetime(modified), "LastModifiedById": by, "SystemModstamp": sf_datetime(modified)}


class WorldRows:
    """Builders that turn World objects into native rows, and the loader that registers them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.admin = user_id(1)
        self.epoch = world.now - dt.timedelta(days=720)

    def _static_time(self, n: int) -> dt.datetime:
        return self.epoch + dt.timedelta(seconds=n)

    def loaders(self) -> dict[str, Callable[[Table], None]]:
        """One loader per sObject; the simulator runs the big secondary ones on first use."""
        w = self.world
        return {
            "User": lambda t: self._load(t, w.owners, "005", lambda o: self._static_time(o.id), self.user),
            "Opportunity": lambda t: self._load(t, w.deals, "006", lambda d: d.modified_at, self.opportunity),
            "Account": lambda t: self._load(t, w.accounts, "001", lambda a: self._static_time(a.id), self.account),
            "Contact": lambda t: self._load(t, w.contacts, "003", lambda c: self._static_time(c.id), self.contact),
            "Lead": lambda t: self._load(t, w.leads, "00Q", lambda le: le.modified_at, self.lead),
            "OpportunityStage": self._load_stages, "Pricebook2": self._load_pricebook,
            "Product2": lambda t: self._load_catalog(t, "01t", self.product),
            "PricebookEntry": lambda t: self._load_catalog(t, "01u", self.entry),
            "OpportunityLineItem": self._load_line_items, "OpportunityFieldHistory": self.load_history,
            "OpportunityHistory": self.load_opportunity_history,
            "Task": lambda t: t.seal(1), "Note": lambda t: t.seal(1),
        }

    def _load_stages(self, table: Table) -> None:
        for stage in STAGES:
            table.add_lazy(make_id("01J", stage.order + 1), sf_datetime(self.epoch), self.stage, stage)
        table.seal(len(STAGES) + 1)

    def _load_pricebook(self, table: Table) -> None:
        table.add_lazy(STANDARD_PRICEBOOK, sf_datetime(self.epoch), self.pricebook, "standard")
        table.seal(2)

    def _load_catalog(self, table: Table, prefix: str, builder: Any) -> None:
        for n, product in enumerate(PRODUCTS, start=1):
            table.add_lazy(make_id(prefix, n), sf_datetime(self.epoch), builder, (n, product))
        table.seal(len(PRODUCTS) + 1)

    def _load_line_items(self, table: Table) -> None:
        top = 0
        for deal in self.world.deals:  # the count per deal is known without deriving the items
            stamp = sf_datetime(deal.created_at)
            for pos in range(1 + deal.id % 3):
                top = deal.id * 10 + pos
                table.add_lazy(make_id("00k", top), stamp, self.line_item, (deal, pos))
        table.seal(top + 1)

    def load_history(self, table: Table) -> None:
        """Field history of every World deal: a "created" row, then one StageName row per change."""
        for deal in self.world.deals:
            history = self.world.stage_history(deal)
            owner = user_id(deal.owner_id)
            opportunity = make_id("006", deal.id)
            row = created_row(make_id("017", deal.id * 10), opportunity, sf_datetime(history[0][1]), owner)
            table.add_lazy(row["Id"], row["SystemModstamp"], _built, row)
            for n in range(1, len(history)):
                row = history_row(make_id("017", deal.id * 10 + n), opportunity, history[n - 1][0].label,
                                  history[n][0].label, sf_datetime(history[n][1]), owner)
                table.add_lazy(row["Id"], row["SystemModstamp"], _built, row)
        table.seal(len(self.world.deals) * 10 + 10)

    def load_opportunity_history(self, table: Table) -> None:
        """OpportunityHistory of every World deal: one snapshot row per stage entered (creation first)."""
        for deal in self.world.deals:
            for n, (stage, at) in enumerate(self.world.stage_history(deal)):
                stamp = sf_datetime(at)
                table.add_lazy(make_id("008", deal.id * 10 + n), stamp, self.opportunity_history,
                               (deal, n, stage, stamp))
        table.seal(len(self.world.deals) * 10 + 10)

    def opportunity_history(self, item: tuple[WDeal, int, Any, str]) -> Row:
        deal, n, stage, stamp = item
        return opportunity_history_row(make_id("008", deal.id * 10 + n), make_id("006", deal.id), stage.label,
                                       deal.amount, deal.close_date.isoformat(), stage.probability * 100,
                                       FORECAST[stage.key], deal.currency, stamp, user_id(deal.owner_id),
                                       prev_amount=deal.amount if n else None,
                                       prev_close=deal.close_date.isoformat() if n else None)

    @staticmethod
    def _load(table: Table, objects: list[Any], prefix: str, modified: Any, builder: Any) -> None:
        top = 0
        for obj in objects:
            table.add_lazy(make_id(prefix, obj.id), sf_datetime(modified(obj)), builder, obj)
            top = max(top, obj.id)
        table.seal(top + 1)

    # --- builders --------------------------------------------------------------------------
    def user(self, o: WOwner) -> Row:
        at = self._static_time(o.id)
        return {**_audit(user_id(o.id), at, at, self.admin), "Username": o.email, "FirstName": o.first_name,
                "LastName": o.last_name, "Name": f"{o.first_name} {o.last_name}", "Email": o.email,
                "IsActive": o.active, "ManagerId": user_id(o.manager_id) if o.manager_id else None,
                "TimeZoneSidKey": o.timezone, "Department": o.team, "UserRoleId": None, "ProfileId": None,
                "Region__c": o.region, "Role__c": o.role, "Capacity_Per_Day__c": Decimal(o.capacity_per_day)}

    def account(self, a: WAccount) -> Row:
        at = self._static_time(a.id)
        return {**_audit(make_id("001", a.id), at, at, self.admin), "Name": a.name,
                "Website": f"https://{a.domain}", "Industry": a.industry, "BillingCountry": a.country,
                "NumberOfEmployees": Decimal(a.employees), "AnnualRevenue": None, "OwnerId": user_id(a.owner_id),
                "Type": "Customer", "Region__c": a.region, "Segment__c": a.segment, "MasterRecordId": None,
                "Crmsync_Key__c": None}

    def contact(self, c: WContact) -> Row:
        at = self._static_time(c.id)
        account = self.world.accounts[c.account_id - 1]
        return {**_audit(make_id("003", c.id), at, at, self.admin), "FirstName": c.first_name,
                "LastName": c.last_name, "Name": f"{c.first_name} {c.last_name}", "Email": c.email,
                "Title": c.title, "AccountId": make_id("001", c.account_id), "OwnerId": user_id(account.owner_id),
                "MasterRecordId": None, "Crmsync_Key__c": None}

    def lead(self, le: WLead) -> Row:
        row = self._lead_row(le)
        conversion = self.world.lead_conversion(le)
        if conversion is not None:
            account, opportunity, at = conversion
            row.update(IsConverted=True, ConvertedAccountId=make_id("001", account),
                       ConvertedOpportunityId=make_id("006", opportunity) if opportunity else None,
                       ConvertedDate=at.date().isoformat())
        return row

    def _lead_row(self, le: WLead) -> Row:
        return {**_audit(make_id("00Q", le.id), le.created_at, le.modified_at, self.admin),
                "FirstName": le.first_name, "LastName": le.last_name, "Name": f"{le.first_name} {le.last_name}",
                "Email": le.email, "Company": le.company, "Title": le.title, "Status": le.status,
                "LeadSource": le.source, "Country": le.country, "Industry": le.industry,
                "NumberOfEmployees": Decimal(le.employees),
                "OwnerId": user_id(le.owner_id) if le.owner_id else None, "IsConverted": False,
                "ConvertedAccountId": None, "ConvertedContactId": None, "ConvertedOpportunityId": None,
                "ConvertedDate": None,
                "LastActivityDate": le.last_activity_at.date().isoformat() if le.last_activity_at else None,
                "Rating": None, "Region__c": le.region, "Lead_Score__c": None, "MasterRecordId": None,
                "Crmsync_Key__c": None}

    def opportunity(self, d: WDeal) -> Row:
        stage = STAGES[d.stage]
        owner = user_id(d.owner_id)
        row = {**_audit(make_id("006", d.id), d.created_at, d.modified_at, owner), "Name": d.name,
               "StageName": stage.label, "Amount": d.amount, "CloseDate": d.close_date.isoformat(),
               "Probability": stage.probability * 100, "OwnerId": owner, "AccountId": make_id("001", d.account_id),
               "ContactId": make_id("003", d.contact_id) if d.contact_id else None, "IsClosed": stage.is_closed,
               "IsWon": stage.is_won, "ForecastCategoryName": FORECAST[stage.key], "Type": d.deal_type,
               "LeadSource": d.lead_source, "Pricebook2Id": STANDARD_PRICEBOOK, "HasOpportunityLineItem": True,
               "CurrencyIsoCode": d.currency, "FiscalYear": Decimal(d.close_date.year),
               "FiscalQuarter": Decimal((d.close_date.month - 1) // 3 + 1), "Description": None, "NextStep": None,
               "LastActivityDate": d.last_activity_at.date().isoformat() if d.last_activity_at else None,
               "LastStageChangeDate": sf_datetime(d.stage_changed_at), "MasterRecordId": None,
               "Contract_Start__c": d.contract_start.isoformat() if d.contract_start else None,
               "Contract_End__c": d.contract_end.isoformat() if d.contract_end else None,
               "Handoff_Done__c": d.handoff_done, "Crmsync_Key__c": None, "Loss_Reason__c": None,
               "Competitor__c": None}
        loss = self.world.loss(d)
        if loss is not None:
            row["Loss_Reason__c"], row["Competitor__c"] = loss
        for key, value in d.custom_fields().items():
            row[DEAL_CUSTOM_SF[key]] = (value == "true") if key == "discount_approved" else value
        return row

    def stage(self, s: Any) -> Row:
        return {**_audit(make_id("01J", s.order + 1), self.epoch, self.epoch, self.admin), "ApiName": s.label,
                "MasterLabel": s.label, "IsActive": True, "IsClosed": s.is_closed, "IsWon": s.is_won,
                "DefaultProbability": s.probability * 100, "ForecastCategoryName": FORECAST[s.key],
                "SortOrder": Decimal(s.order + 1)}

    def pricebook(self, _: Any) -> Row:
        return {**_audit(STANDARD_PRICEBOOK, self.epoch, self.epoch, self.admin), "Name": "Standard Price Book",
                "IsActive": True, "IsStandard": True, "Description": None}

    def product(self, item: tuple[int, Any]) -> Row:
        n, p = item
        return {**_audit(make_id("01t", n), self.epoch, self.epoch, self.admin), "Name": p.name,
                "ProductCode": p.code, "Family": p.family, "IsActive": True, "Description": None,
                "QuantityUnitOfMeasure": p.unit}

    def entry(self, item: tuple[int, Any]) -> Row:
        n, p = item
        return {**_audit(make_id("01u", n), self.epoch, self.epoch, self.admin), "Name": p.name,
                "Pricebook2Id": STANDARD_PRICEBOOK, "Product2Id": make_id("01t", n), "UnitPrice": crm_list_price(p),
                "IsActive": True, "ProductCode": p.code, "CurrencyIsoCode": "EUR", "UseStandardPrice": False}

    def line_item(self, item: tuple[WDeal, int]) -> Row:
        deal, pos = item
        li = self.world.line_items(deal)[pos]
        n = PRODUCTS.index(li.product) + 1
        return {**_audit(make_id("00k", li.id), deal.created_at, deal.created_at, user_id(deal.owner_id)),
                "OpportunityId": make_id("006", deal.id), "PricebookEntryId": make_id("01u", n),
                "Product2Id": make_id("01t", n), "ProductCode": li.product.code, "Name": li.product.name,
                "Quantity": li.quantity, "UnitPrice": li.unit_price, "ListPrice": li.list_price,
                "TotalPrice": li.total, "Discount": li.discount_percent or None, "ServiceDate": None,
                "SortOrder": Decimal(pos + 1), "CurrencyIsoCode": deal.currency,
                "Billing_Period__c": li.billing_period, "Term_Months__c": Decimal(li.term_months)}


def _built(row: Row) -> Row:
    return row


def history_row(record_id: str, opportunity_id: str, old: str | None, new: str | None, stamp: str, by: str) -> Row:
    return {"Id": record_id, "IsDeleted": False, "CreatedDate": stamp, "CreatedById": by,
            "LastModifiedDate": stamp, "LastModifiedById": by, "SystemModstamp": stamp,
            "OpportunityId": opportunity_id, "Field": "StageName", "OldValue": old, "NewValue": new,
            "DataType": "Picklist"}


def created_row(record_id: str, opportunity_id: str, stamp: str, by: str) -> Row:
    """The field-history row Salesforce writes when a record is created (no values)."""
    return {**history_row(record_id, opportunity_id, None, None, stamp, by), "Field": "created", "DataType": None}


def opportunity_history_row(record_id: str, opportunity_id: str, stage: str, amount: Decimal | None,
                            close_date: str | None, probability: Decimal | None, forecast: str | None,
                            currency: str | None, stamp: str, by: str, *, prev_amount: Decimal | None = None,
                            prev_close: str | None = None) -> Row:
    expected = None if amount is None or probability is None else (amount * probability / 100).quantize(
        Decimal("0.01"))
    return {"Id": record_id, "IsDeleted": False, "CreatedDate": stamp, "CreatedById": by,
            "LastModifiedDate": stamp, "LastModifiedById": by, "SystemModstamp": stamp,
            "OpportunityId": opportunity_id, "StageName": stage, "Amount": amount, "CloseDate": close_date,
            "Probability": probability, "ForecastCategory": FORECAST_API.get(forecast or "", forecast),
            "ExpectedRevenue": expected, "PrevAmount": prev_amount, "PrevCloseDate": prev_close,
            "CurrencyIsoCode": currency}


def empty_tables() -> dict[str, Table]:
    return {name: Table(sobj) for name, sobj in SOBJECTS.items()}

"""HubSpot's property definitions and token metadata, as peers read them before pulling.

- ``GET /crm/v3/properties/{objectType}`` -> ``{"results": [property, ...]}`` and the legacy
  ``GET /properties/v2/{objectType}/properties`` -> ``[property, ...]``; a property is
  ``name, label, description, groupName, type, fieldType, options[{label, value, displayOrder,
  hidden}], displayOrder, hidden, calculated, hubspotDefined, ...`` (developers.hubspot.com, CRM
  properties v3 and legacy deal properties).
- ``GET /crm/v3/schemas`` -> ``{"results": []}``: custom object schemas (this portal has none).
- ``GET /oauth/v1/access-tokens/{token}`` -> ``token, user, hub_domain, scopes, hub_id, app_id,
  expires_in, user_id, token_type`` (developers.hubspot.com "get OAuth token metadata"); the token in
  the path is the credential, no Authorization header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import json_response
from crmsync.sandbox.hubspot.hooks import error_body
from crmsync.sandbox.hubspot.schema import PROPERTIES, Prop, object_name

if TYPE_CHECKING:
    from crmsync.sandbox.hubspot.simulator import HubSpotSimulator

FIELD_TYPES = {"string": "text", "number": "number", "datetime": "date", "date": "date", "bool": "booleancheckbox",
               "enumeration": "select"}
SCOPES = ["crm.objects.deals.read", "crm.objects.deals.write", "crm.objects.companies.read",
          "crm.objects.contacts.read", "crm.objects.line_items.read", "crm.objects.owners.read",
          "crm.schemas.deals.read", "crm.objects.products.read", "e-commerce", "oauth", "contacts"]
HUB_ID = 4_242_424
# Standard object types every portal has (developers.hubspot.com "CRM objects"), though this
# sandbox keeps no records of them: their definitions list the properties every object carries.
STANDARD_TYPES = {"calls", "call", "deal_split", "deal_splits", "emails", "email", "feedback_submissions",
                  "feedback_submission", "form", "forms", "goal_targets", "goal_target", "leads", "lead", "meetings",
                  "meeting", "notes", "note", "ticket", "tickets", "communications", "postal_mail", "quotes", "quote"}
_BASE_PROPS = {p.name: p for p in (Prop("hs_object_id", "number", read_only=True),
                                    Prop("hs_createdate", "datetime", read_only=True),
                                    Prop("hs_lastmodifieddate", "datetime", read_only=True),
                                    Prop("hubspot_owner_id", "enumeration"))}


def definition(prop: Prop, order: int, *, v3: bool) -> dict[str, Any]:
    hubspot_type = "bool" if prop.type == "bool" else prop.type
    out: dict[str, Any] = {
        "name": prop.name, "label": prop.name.replace("_", " ").title(), "description": "",
        "groupName": "dealinformation", "type": "enumeration" if hubspot_type == "bool" else hubspot_type,
        "fieldType": FIELD_TYPES.get(prop.type, "text"),
        "options": [{"label": o, "value": o, "displayOrder": n, "hidden": False} for n, o in enumerate(prop.options)]
        if prop.type != "bool" else [{"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                                     {"label": "No", "value": "false", "displayOrder": 1, "hidden": False}],
        "displayOrder": order, "hidden": False, "calculated": prop.read_only, "hubspotDefined": True,
    }
    if v3:
        out["modificationMetadata"] = {"archivable": True, "readOnlyDefinition": True,
                                       "readOnlyValue": prop.read_only}
        out["formField"] = False
    else:
        out["readOnlyValue"] = prop.read_only
        out["readOnlyDefinition"] = True
        out["formField"] = False
        out["deleted"] = False
    return out


def routes(sim: HubSpotSimulator) -> list[Route]:
    def props_of(segment: str) -> dict[str, Prop] | None:
        name = object_name(segment)
        if name is None:
            return _BASE_PROPS if segment.lower() in STANDARD_TYPES else None
        return PROPERTIES.get(name)

    async def v3(request: Request) -> Response:
        found = props_of(request.path_params["object_type"])
        if found is None:
            return json_response(error_body("VALIDATION_ERROR", "Unable to infer object type"), 400)
        return json_response({"results": [definition(p, n, v3=True) for n, p in enumerate(found.values())]})

    async def v2(request: Request) -> Response:
        found = props_of(request.path_params["object_type"])
        if found is None:
            return json_response(error_body("VALIDATION_ERROR", "Unable to infer object type"), 400)
        return json_response([definition(p, n, v3=False) for n, p in enumerate(found.values())])

    async def token_info(request: Request) -> Response:
        token = request.path_params["token"]
        if token not in sim.tokens:
            return json_response(error_body("EXPIRED_AUTHENTICATION", "The OAuth token used to make this call "
                                            "expired or is invalid"), 401)
        return json_response({"token": token, "user": "sandbox@crmsync.invalid", "hub_domain": "sandbox.crmsync",
                              "scopes": SCOPES, "hub_id": HUB_ID, "app_id": 1, "expires_in": 1800, "user_id": 1,
                              "token_type": "access"})

    async def schemas(request: Request) -> Response:
        return json_response({"results": []})  # a portal without custom objects

    return [
        Route("/crm/v3/schemas", schemas, methods=["GET"]),
        Route("/crm/v3/properties/{object_type}", v3, methods=["GET"]),
        Route("/properties/v2/{object_type}/properties", v2, methods=["GET"]),
        Route("/oauth/v1/access-tokens/{token}", token_info, methods=["GET"]),
    ]

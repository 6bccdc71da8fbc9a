"""Token cost per operation, copied as data from the ``x-token-cost`` of Pipedrive's specs.

Source: /work/shared/specs/pipedrive/openapi-v2.yml and openapi-v1.yml (PDSPEC). A test reads
the spec and checks every entry here, so a drift fails loudly. Unknown routes cost 10 tokens.
"""

from __future__ import annotations

import re

V2 = "/api/v2"
V1 = "/v1"

# (method, path template relative to the version prefix) -> tokens
TOKEN_COSTS: dict[tuple[str, str], int] = {
    ("GET", V2 + "/deals"): 10,
    ("POST", V2 + "/deals"): 5,
    ("GET", V2 + "/deals/archived"): 20,
    ("GET", V2 + "/deals/{id}"): 1,
    ("PATCH", V2 + "/deals/{id}"): 5,
    ("DELETE", V2 + "/deals/{id}"): 3,
    ("GET", V2 + "/deals/products"): 10,
    ("GET", V2 + "/deals/{id}/products"): 10,
    ("GET", V2 + "/deals/{id}/followers"): 10,
    ("POST", V2 + "/deals/{id}/products"): 5,
    ("DELETE", V2 + "/deals/{id}/products"): 15,
    ("PATCH", V2 + "/deals/{id}/products/{product_attachment_id}"): 5,
    ("DELETE", V2 + "/deals/{id}/products/{product_attachment_id}"): 3,
    ("GET", V2 + "/stages"): 5,
    ("GET", V2 + "/stages/{id}"): 1,
    ("GET", V2 + "/pipelines"): 5,
    ("GET", V2 + "/pipelines/{id}"): 1,
    ("GET", V2 + "/activities"): 10,
    ("POST", V2 + "/activities"): 5,
    ("GET", V2 + "/activities/{id}"): 1,
    ("PATCH", V2 + "/activities/{id}"): 5,
    ("DELETE", V2 + "/activities/{id}"): 3,
    ("GET", V2 + "/organizations"): 10,
    ("GET", V2 + "/organizations/{id}"): 1,
    ("GET", V2 + "/persons"): 10,
    ("GET", V2 + "/persons/{id}"): 1,
    ("GET", V2 + "/products"): 10,
    ("GET", V2 + "/products/{id}"): 1,
    ("GET", V1 + "/deals/summary"): 40,
    ("GET", V1 + "/deals/{id}/changelog"): 20,
    ("GET", V1 + "/users"): 20,
    ("GET", V1 + "/users/me"): 2,
    ("GET", V1 + "/users/{id}"): 2,
    ("GET", V1 + "/dealFields"): 20,
    ("GET", V1 + "/activityFields"): 20,
    ("GET", V1 + "/personFields"): 20,
    ("GET", V1 + "/productFields"): 20,
    ("GET", V1 + "/noteFields"): 20,
    ("GET", V1 + "/notes"): 20,
    ("GET", V1 + "/recents"): 20,
    ("POST", V1 + "/notes"): 10,
    ("GET", V1 + "/notes/{id}"): 2,
    ("PUT", V1 + "/notes/{id}"): 10,
    ("DELETE", V1 + "/notes/{id}"): 6,
}
DEFAULT_COST = 10

_ID = re.compile(r"/\d+(?=/|$)")


def route_template(method: str, path: str) -> str:
    """``GET /api/v2/deals/17/products/170`` -> ``GET /api/v2/deals/{id}/products/{product_attachment_id}``."""
    if path.startswith("/api/v1/"):  # company-domain hosts use /api/v1
        path = path[len("/api"):]
    parts = _ID.split(path)
    names = ["{id}", "{product_attachment_id}"]
    template = parts[0]
    for n, rest in enumerate(parts[1:]):
        template += "/" + names[min(n, 1)] + rest
    return f"{method.upper()} {template}"


def token_cost(method: str, path: str) -> int:
    method_, template = route_template(method, path).split(" ", 1)
    return TOKEN_COSTS.get((method_, template), DEFAULT_COST)

"""Customer aliases and subscription markers that make creates look-up-able (never blind retries).

A customer's alias is ``<connection>:<CRM account id>``; Meteroid refuses an alias that starts
with an id prefix (``cus_``, ``plan_``...), so such an alias gets a ``crm-`` prefix. A
subscription created by crmsync carries ``purchase_order = crmsync:<connection>:<deal id>`` so a
retry finds it by customer + plan + start date + marker.
"""

from __future__ import annotations

import re

ID_PREFIXES = ("cus_", "plan_", "plv_", "sub_", "prd_", "pf_", "price_", "cou_", "inv_", "ive_", "acp_", "pri_",
               "bm_", "evt_", "tx_", "cn_", "ao_", "feat_", "ent_")
_UNSAFE = re.compile(r"[^A-Za-z0-9:._-]")
MARKER_PREFIX = "crmsync:"


def customer_alias(connection: str, account_id: str) -> str:
    alias = _UNSAFE.sub("-", f"{connection}:{account_id}")
    if alias.lower().startswith(ID_PREFIXES):
        alias = "crm-" + alias
    return alias


def subscription_marker(connection: str, deal_id: str) -> str:
    return _UNSAFE.sub("-", f"{MARKER_PREFIX}{connection}:{deal_id}")

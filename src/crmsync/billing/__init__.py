"""crmsync.billing: quote-to-cash between the CRMs and Meteroid.

``checks`` (pure: CRM line items against Meteroid's plans, with the money at stake), ``catalog``
and ``mapping`` (Meteroid's plans and the CRM product map), ``won_deals.provision`` (won deals to
customers and subscriptions, looked up before created), ``sync.run_billing_sync``, ``reports``
(drift and renewals); ``commands`` is the CLI and ``demo`` the part of ``crmsync demo``.
"""

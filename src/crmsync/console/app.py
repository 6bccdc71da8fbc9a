"""The console's routes: one small handler per page or action (see ``web`` for the plumbing).

Pages render server-side with Jinja2 (autoescaped); the only script is ``static/console.js``.
Handlers return 303 redirects after a successful POST and re-render the form with the loader's
messages (status 400) when a save is refused, keeping what the user typed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from crmsync.console import accounts, audit, drafts, forms, impact, operations, why
from crmsync.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Req,
    endpoint,
    forbidden,
    new_token,
    redirect,
    safe_next,
    set_cookie,
)
from crmsync.logging import get_logger
from crmsync.model import ObjectType, Owner, now_utc
from crmsync.rules.routing import unavailable_reason
from crmsync.settings import Settings
from crmsync.store import Store

log = get_logger("crmsync.console")
HERE = Path(__file__).parent
RULE_PAGES = ("routing", "scoring", "hygiene", "lifecycle")
PAGE_KINDS = {"routing": ("routing",), "scoring": ("scoring",), "hygiene": ("hygiene",),
              "lifecycle": ("handoff", "renewal")}


@dataclass
class Console:
    settings: Settings
    store: Store
    workspace: drafts.Workspace
    backfills: operations.Backfills
    funnel: operations.FunnelReport
    throttle: accounts.LoginThrottle = field(default_factory=accounts.LoginThrottle)
    open_counts: impact.OpenCounts = field(default_factory=impact.OpenCounts)
    env: jinja2.Environment = field(default_factory=lambda: _environment())

    @property
    def connections(self) -> list[str]:
        return [c.name for c in self.settings.connections]

    def render(self, req: Req, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        live = self.workspace.live()
        base = {"user": req.session.user if req.session else None,
                "csrf": req.session.csrf_token if req.session else "",
                "path": req.request.url.path, "has_draft": self.workspace.has_draft(),
                "live_hash": live.rule_set.hash[:12] if live.rule_set else None,
                "live_issues": live.issues, "message": req.query("msg")}
        html = self.env.get_template(template).render(**base, **context)
        return HTMLResponse(html, status_code=status)

    # --- owners (for pickers and availability) -----------------------------------------------
    def owners(self) -> list[Owner]:
        out = []
        for connection in self.connections:
            for owner in self.store.iter_records(ObjectType.OWNER, connection=connection):
                assert isinstance(owner, Owner)
                out.append(owner)
        return out


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["ts"] = lambda v: v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if v else "-"
    env.filters["pct"] = lambda v: f"{v * 100:.0f}%" if v is not None else "-"
    env.filters["path"] = lambda parts: forms.yamledit.format_path(tuple(parts))
    env.filters["csv"] = lambda v: ", ".join(str(x) for x in v) if isinstance(v, list | tuple) else (v or "")
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["fid"] = lambda v: "f-" + "".join(ch if ch.isalnum() else "-" for ch in str(v))
    return env


# ------------------------------------------------------------------------------------------- pages
def build_routes(c: Console) -> list[Any]:
    store = c.store

    def page(handler: Any, **kw: Any) -> Any:
        return endpoint(store, handler, **kw)

    # --- sign in / out --------------------------------------------------------------------------
    def login_form(req: Req, *, error: str | None = None, status: int = 200) -> Response:
        token = new_token()
        response = c.render(req, "login.html", status=status, login_csrf=token, error=error,
                            next=safe_next(req.query("next") or req.form.get("next")),
                            username=str(req.form.get("username") or ""))
        set_cookie(response, req.request, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    def login_submit(req: Req) -> Response:
        address = req.request.client.host if req.request.client else "-"
        if not c.throttle.allow(address):
            return login_form(req, error="Too many sign-in attempts from this address; wait a minute.", status=429)
        username = str(req.form.get("username") or "")
        result = accounts.authenticate(store, username, str(req.form.get("password") or ""))
        if result.user is None:
            log.info("console.login_failed")  # no user name: it may be a mistyped password
            return login_form(req, error=result.error, status=401)
        token, _ = accounts.open_session(store, result.user)
        audit.record(store, result.user.username, "login")
        response = RedirectResponse(safe_next(req.form.get("next")), status_code=303)
        set_cookie(response, req.request, SESSION_COOKIE, token, max_age=int(accounts.SESSION_TTL.total_seconds()))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    def logout(req: Req) -> Response:
        token = req.request.cookies.get(SESSION_COOKIE)
        if token:
            accounts.close_session(store, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- overview ---------------------------------------------------------------------------------
    def home(req: Req) -> Response:
        c.workspace.note_live_files()
        counts = store.outbox_counts()
        return c.render(req, "home.html", versions=c.workspace.versions(5), outbox=counts,
                        quarantined=store.quarantine_count(), recent=audit.recent(store, 10),
                        draft_info=c.workspace.draft_info(), runs=store.last_runs(5))

    # --- rules pages ------------------------------------------------------------------------------
    def rules_page(req: Req, name: str, *, issues: list[Any] | None = None, values: dict[str, str] | None = None,
                   focus: str | None = None, status: int = 200) -> Response:
        kinds = PAGE_KINDS[name]
        texts = c.workspace.texts()
        data = {k: c.workspace.data(k) for k in kinds}
        now = now_utc()
        owners = c.owners()
        availability = {o.source_id: unavailable_reason(o, now) or "available" for o in owners}
        draft = c.workspace.draft()
        return c.render(
            req, f"rules_{name}.html", status=status, page=name, data=data,
            yaml_files={c.workspace.file_name(k): texts.get(c.workspace.file_name(k), "") for k in kinds},
            owners=owners, availability=availability,
            owner_names={o.source_id: o.name or o.email or o.source_id for o in owners},
            teams=sorted({o.team for o in owners if o.team}),
            errors=forms.errors_by_key(issues or []), issues=issues or [], values=values or {}, focus=focus,
            draft_issues=draft.issues,
        )

    def rules_get(name: str) -> Any:
        return lambda req: rules_page(req, name)

    def save(req: Req, page_name: str, kind: str, change: Any, what: str, anchor: str) -> Response:
        issues = c.workspace.edit(req.user, kind, change, what=what)
        if issues:
            return rules_page(req, page_name, issues=issues, values=forms.resubmitted(req.form), focus=anchor,
                              status=400)
        return redirect(f"/rules/{page_name}#{anchor}", f"Saved to the draft ({what}).")

    def int_param(req: Req, name: str) -> int:
        return int(req.request.path_params[name])

    def pool_post(req: Req) -> Response:
        i = int_param(req, "index")
        return save(req, "routing", "routing", forms.pool_change(i, req.form), f"pool {i + 1}", f"pool-{i}")

    def routing_rule_post(req: Req) -> Response:
        i = int_param(req, "index")
        return save(req, "routing", "routing", forms.routing_rule_change(i, req.form), f"routing rule {i + 1}",
                    f"rule-{i}")

    def routing_move(req: Req) -> Response:
        i = int_param(req, "index")
        direction = "up" if req.form.get("direction") == "up" else "down"
        return save(req, "routing", "routing", forms.move_change("rules", i, direction),
                    f"routing rule {i + 1} moved {direction}", "rules")

    def fields_post(page_name: str, kind: str) -> Any:
        def handler(req: Req) -> Response:
            prefix = forms.yamledit.parse_path(str(req.form.get("_prefix"))) if req.form.get("_prefix") else ()
            anchor = str(req.form.get("_anchor") or "top")
            return save(req, page_name, kind, forms.fields_change(prefix, req.form),
                        f"{kind} {forms.yamledit.format_path(prefix) or 'settings'}", anchor)

        return handler

    def yaml_post(req: Req) -> Response:
        kind = str(req.request.path_params["kind"])
        page_name = next((p for p, kinds in PAGE_KINDS.items() if kind in kinds), None)
        if page_name is None:
            return forbidden("unknown rule file")
        issues = c.workspace.save_text(req.user, kind, str(req.form.get("text") or ""))
        if issues:
            return rules_page(req, page_name, issues=issues, values={f"yaml:{kind}": str(req.form.get("text"))},
                              focus=f"yaml-{kind}", status=400)
        return redirect(f"/rules/{page_name}#yaml-{kind}", f"Saved {kind} YAML to the draft.")

    # --- draft, impact, publish ----------------------------------------------------------------------
    def draft_page(req: Req, *, publish_issues: list[Any] | None = None, status: int = 200) -> Response:
        live, draft = c.workspace.live(), c.workspace.draft()
        results, test_issues = c.workspace.tests(draft.rule_set) if draft.rule_set else ([], [])
        diff = []
        if c.workspace.has_draft():
            a, b = c.workspace.texts(c.workspace.live_dir), c.workspace.texts(c.workspace.draft_dir)
            for name in sorted(set(a) | set(b)):
                lines = list(difflib.unified_diff(a.get(name, "").splitlines(), b.get(name, "").splitlines(),
                                                  f"live/{name}", f"draft/{name}", lineterm="", n=2))
                if lines:
                    diff.append((name, lines))
        rule_changes = []
        if live.rule_set and draft.rule_set and c.workspace.has_draft():
            from crmsync.rules.diff import diff_rule_sets

            rule_changes = diff_rule_sets(live.rule_set, draft.rule_set)
        info = c.workspace.draft_info()
        stale = bool(info and live.rule_set and info.get("base_hash") != live.rule_set.hash)
        return c.render(req, "draft.html", status=status, draft=draft, live=live, results=results,
                        test_issues=test_issues, diff=diff, rule_changes=rule_changes, info=info, stale=stale,
                        publish_issues=publish_issues or [])

    def impact_page(req: Req) -> Response:
        live, draft = c.workspace.live(), c.workspace.draft()
        raw = req.query("days", "30")
        error = None
        try:
            days = int(raw)
            if not 1 <= days <= 365:
                raise ValueError
        except ValueError:
            days, error = 30, f"days: expected a whole number of days from 1 to 365, got {raw!r}"
        report = None
        if error is None and live.rule_set and draft.rule_set:
            report = impact.preview(store, live.rule_set, draft.rule_set, connections=c.connections, days=days,
                                    counts=c.open_counts)
        return c.render(req, "impact.html", status=400 if error else 200, report=report, days=days, error=error,
                        live=live, draft=draft)

    def publish_post(req: Req) -> Response:
        note = str(req.form.get("note") or "").strip()
        version_id, issues, _ = c.workspace.publish(req.user, note)
        if version_id is None:
            return draft_page(req, publish_issues=issues, status=400)
        return redirect("/versions", f"Published version {version_id}; the worker applies it at its next cycle.")

    def discard_post(req: Req) -> Response:
        c.workspace.discard_draft(req.user)
        return redirect("/draft", "Draft discarded.")

    def versions_page(req: Req, *, issues: list[Any] | None = None, status: int = 200) -> Response:
        c.workspace.note_live_files()
        live = c.workspace.live()
        return c.render(req, "versions.html", status=status, versions=c.workspace.versions(100),
                        live_full=live.rule_set.hash if live.rule_set else None, issues=issues or [],
                        applied=store.rule_sets(10))

    def rollback_post(req: Req) -> Response:
        version_id = int_param(req, "version_id")
        new_id, issues = c.workspace.rollback(req.user, version_id, str(req.form.get("note") or ""))
        if new_id is None:
            return versions_page(req, issues=issues, status=400)
        return redirect("/versions", f"Rolled back to version {version_id} (now version {new_id}).")

    # --- why this rep -------------------------------------------------------------------------------
    def why_page(req: Req) -> Response:
        q = req.query("q")
        hits = why.search(store, c.connections, q) if q else []
        return c.render(req, "why.html", q=q, hits=hits)

    def why_record(req: Req) -> Response:
        p = req.request.path_params
        if p["object"] not in ("deal", "lead"):
            return forbidden("only deals and leads")
        story = why.story(store, c.workspace.live().rule_set, p["object"], p["connection"], p["source_id"])
        if story is None:
            return c.render(req, "why.html", q=p["source_id"], hits=[], status=404,
                            missing=f"No {p['object']} {p['source_id']} in {p['connection']}.")
        owners = {o.source_id: o.name or o.email or o.source_id for o in c.owners()}
        return c.render(req, "why_record.html", story=story, owner_names=owners, obj=p["object"])

    # --- operations ------------------------------------------------------------------------------
    def ops_page(req: Req, *, error: str | None = None, status: int = 200) -> Response:
        return c.render(req, "ops.html", status=status, connections=operations.connections(c.settings, store),
                        runs=operations.runs(store), running=c.backfills.running(), error=error,
                        values=forms.resubmitted(req.form))

    def backfill_post(req: Req) -> Response:
        error = c.backfills.start(req.user, str(req.form.get("connection") or ""), str(req.form.get("object") or ""),
                                  str(req.form.get("since") or "").strip() or None)
        if error:
            return ops_page(req, error=error, status=400)
        return redirect("/ops#runs", "Backfill started; its run appears below.")

    def outbox_page(req: Req, *, error: str | None = None, status: int = 200) -> Response:
        status_filter = req.query("status") or None
        conn_filter = req.query("connection") or None
        items = operations.outbox_page(store, status=status_filter, connection=conn_filter)
        return c.render(req, "outbox.html", status=status, items=items, counts=store.outbox_counts(),
                        status_filter=status_filter or "", conn_filter=conn_filter or "", error=error)

    def outbox_action(req: Req) -> Response:
        item_id = int_param(req, "item_id")
        action = req.request.path_params["action"]
        if action not in ("retry", "drop"):
            return forbidden("unknown outbox action")
        fn = operations.retry_item if action == "retry" else operations.drop_item
        error = fn(store, req.user, item_id)
        back = str(req.form.get("_back") or "/ops/outbox")
        if error:
            return outbox_page(req, error=error, status=400)
        return redirect(safe_next(back), f"Outbox item {item_id}: {action} done.")

    def quarantine_page(req: Req, *, error: str | None = None, status: int = 200) -> Response:
        return c.render(req, "quarantine.html", status=status, entries=operations.quarantine_page(store), error=error)

    def quarantine_retry(req: Req) -> Response:
        error = operations.retry_quarantined(store, req.user, int_param(req, "entry_id"))
        if error:
            return quarantine_page(req, error=error, status=400)
        return redirect("/ops/quarantine", "Marked resolved; the next sync reads the fixed record.")

    def runs_json(req: Req) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse([{"id": r.id, "kind": r.kind, "connection": r.connection, "object": r.object_name,
                              "status": r.status, "records": (r.counts or {}).get("records"),
                              "started": r.started_at.isoformat()} for r in operations.runs(store, 15)])

    def funnel_page(req: Req) -> Response:
        funnels, running = c.funnel.get()
        return c.render(req, "funnel.html", funnels=(funnels or [])[:12], ready=funnels is not None,
                        running=running, error=c.funnel.error)

    def funnel_png(req: Req) -> Response:
        import tempfile

        from crmsync.report.funnel_chart import render_funnel_chart

        funnels, _ = c.funnel.get()
        if not funnels:
            return Response(status_code=404)
        with tempfile.TemporaryDirectory() as tmp:
            path = render_funnel_chart(funnels[:4], Path(tmp) / "funnel.png")
            body = io.BytesIO(path.read_bytes()).getvalue()
        return Response(body, media_type="image/png")

    def audit_page(req: Req) -> Response:
        return c.render(req, "audit.html", entries=audit.recent(store, 300))

    admin = {"admin": True}
    routes: list[Any] = [
        Route("/login", page(login_form, public=True), methods=["GET"]),
        Route("/login", page(login_submit, public=True, login_form=True), methods=["POST"]),
        Route("/logout", page(logout), methods=["POST"]),
        Route("/", page(home)),
        Route("/rules", page(lambda req: redirect("/rules/routing"))),
        Route("/rules/routing/pools/{index:int}", page(pool_post, **admin), methods=["POST"]),
        Route("/rules/routing/rules/{index:int}", page(routing_rule_post, **admin), methods=["POST"]),
        Route("/rules/routing/rules/{index:int}/move", page(routing_move, **admin), methods=["POST"]),
        Route("/rules/routing/fields", page(fields_post("routing", "routing"), **admin), methods=["POST"]),
        Route("/rules/scoring/fields", page(fields_post("scoring", "scoring"), **admin), methods=["POST"]),
        Route("/rules/hygiene/fields", page(fields_post("hygiene", "hygiene"), **admin), methods=["POST"]),
        Route("/rules/lifecycle/handoff", page(fields_post("lifecycle", "handoff"), **admin), methods=["POST"]),
        Route("/rules/lifecycle/renewal", page(fields_post("lifecycle", "renewal"), **admin), methods=["POST"]),
        Route("/rules/yaml/{kind}", page(yaml_post, **admin), methods=["POST"]),
        Route("/draft", page(draft_page)),
        Route("/draft/impact", page(impact_page)),
        Route("/draft/publish", page(publish_post, **admin), methods=["POST"]),
        Route("/draft/discard", page(discard_post, **admin), methods=["POST"]),
        Route("/versions", page(versions_page)),
        Route("/versions/{version_id:int}/rollback", page(rollback_post, **admin), methods=["POST"]),
        Route("/why", page(why_page)),
        Route("/why/{object}/{connection}/{source_id:path}", page(why_record)),
        Route("/ops", page(ops_page)),
        Route("/ops/backfill", page(backfill_post, **admin), methods=["POST"]),
        Route("/ops/outbox", page(outbox_page)),
        Route("/ops/outbox/{item_id:int}/{action:str}", page(outbox_action, **admin), methods=["POST"]),
        Route("/ops/quarantine", page(quarantine_page)),
        Route("/ops/quarantine/{entry_id:int}/retry", page(quarantine_retry, **admin), methods=["POST"]),
        Route("/ops/runs.json", page(runs_json)),
        Route("/reports/funnel", page(funnel_page)),
        Route("/reports/funnel.png", page(funnel_png)),
        Route("/audit", page(audit_page)),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    for name in RULE_PAGES:
        routes.append(Route(f"/rules/{name}", page(rules_get(name))))
    from crmsync.console.trials import trial_routes  # shadow mode, experiments, rep feedback

    routes.extend(trial_routes(c, page, admin))
    return routes


def build_console(settings: Settings, store: Store, *, state_dir: Path) -> tuple[Starlette, Console]:
    """The console app; ``state_dir`` holds the draft (``state_dir/draft``)."""
    workspace = drafts.Workspace(store, Path(settings.rules_dir), Path(state_dir) / "draft")
    console = Console(settings, store, workspace, operations.Backfills(settings, store),
                      funnel=operations.FunnelReport(store))
    workspace.note_live_files()
    app = Starlette(routes=build_routes(console))
    app.state.console = console
    return app, console

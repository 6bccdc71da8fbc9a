"""Console pages of the workflow trials: shadow periods (start, stop, what they would change),
experiments (groups, outcomes, tests, status) and rep feedback (rejected findings per rule).

All three read the store through the same functions as ``crmsync report shadow|experiments|
feedback``, so the pages and the commands always agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from crmsync.console import audit
from crmsync.console.drafts import Workspace
from crmsync.console.web import Req, redirect
from crmsync.model import Owner, now_utc
from crmsync.report.experiments import experiment_results, experiments_page
from crmsync.report.feedback import feedback, feedback_page
from crmsync.report.shadow import shadow_page, shadow_report
from crmsync.store import Store
from crmsync.trials import shadow

DRAFT = "draft"


class TrialsHost(Protocol):
    """What these pages use of the console app (``console.app.Console``), without importing it."""

    store: Store
    workspace: Workspace

    def owners(self) -> list[Owner]: ...

    def render(self, req: Req, template: str, status: int = 200, **context: Any) -> HTMLResponse: ...


def _moment(text: str, field: str) -> dt.datetime:
    """A ``datetime-local`` input, read as UTC (the form says so)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{field}: expected a date and time (YYYY-MM-DDTHH:MM), got {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def trial_routes(c: TrialsHost, page: Any, admin: dict[str, Any]) -> list[Route]:
    def shadow_get(req: Req, *, error: str | None = None, status: int = 200) -> Response:
        periods = shadow.periods(c.store)
        wanted = req.query("period")
        chosen = next((p for p in periods if str(p.id) == wanted), periods[0] if periods else None)
        report = shadow_report(c.store, chosen.id) if chosen is not None else None
        names = {(o.connection, o.source_id): o.name for o in c.owners() if o.name}
        now = now_utc()
        return c.render(req, "trials_shadow.html", status=status, periods=periods, chosen=chosen, now=now,
                        report=report, page=shadow_page(report, names=names) if report is not None else None,
                        versions=c.workspace.versions(100), has_draft_set=c.workspace.has_draft(), error=error,
                        form={k: str(req.form.get(k) or "") for k in ("version", "start", "end", "note")},
                        default_start=now.strftime("%Y-%m-%dT%H:%M"),
                        default_end=(now + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"))

    def shadow_start(req: Req) -> Response:
        form = {k: str(req.form.get(k) or "") for k in ("version", "start", "end", "note")}
        try:
            starts, ends = _moment(form["start"], "start"), _moment(form["end"], "end")
            if form["version"] == DRAFT:
                if not c.workspace.has_draft():
                    raise ValueError("there is no draft to shadow")
                version_id = shadow.record_version(c.store, c.workspace.draft_dir, author=req.user,
                                                   note=form["note"] or "draft, in shadow")
            else:
                version_id = int(form["version"])
            period_id = shadow.start_period(c.store, version_id, starts, ends, created_by=req.user,
                                            note=form["note"] or None)
        except (ValueError, shadow.ShadowError) as exc:
            return shadow_get(req, error=str(exc), status=400)
        except Exception as exc:  # noqa: BLE001 - a draft that does not load: the loader's message
            return shadow_get(req, error=str(exc)[:500], status=400)
        audit.record(c.store, req.user, "shadow.start", f"period {period_id}", version=version_id,
                     starts_at=starts.isoformat(), ends_at=ends.isoformat())
        return redirect(f"/trials/shadow?period={period_id}", f"Shadow period {period_id} started: the worker "
                        "evaluates it beside the live rules while it is open.")

    def shadow_stop(req: Req) -> Response:
        period_id = int(req.request.path_params["period_id"])
        if not shadow.stop_period(c.store, period_id):
            return redirect(f"/trials/shadow?period={period_id}", f"Shadow period {period_id} was not open.")
        audit.record(c.store, req.user, "shadow.stop", f"period {period_id}")
        return redirect(f"/trials/shadow?period={period_id}", f"Shadow period {period_id} stopped.")

    def experiments_get(req: Req) -> Response:
        live = c.workspace.live()
        experiments = live.rule_set.experiments if live.rule_set is not None else []
        now = now_utc()
        results = experiment_results(c.store, experiments, now.date())
        return c.render(req, "trials_experiments.html", results=results, page=experiments_page(results, now=now))

    def feedback_get(req: Req) -> Response:
        rows, wrong = feedback(c.store)
        return c.render(req, "trials_feedback.html", page=feedback_page(rows, wrong, scope="all connections"),
                        rows=rows)

    return [
        Route("/trials", page(lambda req: redirect("/trials/shadow"))),
        Route("/trials/shadow", page(shadow_get)),
        Route("/trials/shadow", page(shadow_start, **admin), methods=["POST"]),
        Route("/trials/shadow/{period_id:int}/stop", page(shadow_stop, **admin), methods=["POST"]),
        Route("/trials/experiments", page(experiments_get)),
        Route("/trials/feedback", page(feedback_get)),
    ]

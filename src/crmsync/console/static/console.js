// crmsync console: small progressive enhancements; every page works without this script.
"use strict";

// Share bars: widths come from data attributes (no inline styles, so the CSP can forbid them).
function drawBars() {
  document.querySelectorAll(".bar .fill, .bar .mark").forEach((el) => {
    const w = Math.max(0, Math.min(100, parseFloat(el.dataset.w || "0")));
    if (el.classList.contains("fill")) { el.style.width = w + "%"; } else { el.style.left = w + "%"; }
  });
}

// Runs table: poll the run log while something is running (backfill progress).
function pollRuns() {
  const table = document.querySelector("table[data-poll]");
  if (!table) { return; }
  const body = table.querySelector("tbody");
  const tick = async () => {
    try {
      const response = await fetch(table.dataset.poll, { credentials: "same-origin" });
      if (!response.ok) { return; }
      const runs = await response.json();
      body.replaceChildren(...runs.map((r) => {
        const tr = document.createElement("tr");
        [r.id, r.kind, r.connection || "-", r.object || "-", r.started.slice(0, 19).replace("T", " ") + " UTC",
         r.status, r.records ?? "", ""].forEach((value, i) => {
          const td = document.createElement("td");
          if (i === 5) { const s = document.createElement("span"); s.className = "state " + value; s.textContent = value; td.append(s); }
          else { td.textContent = String(value); }
          tr.append(td);
        });
        return tr;
      }));
      if (runs.some((r) => r.status === "running")) { setTimeout(tick, 1500); }
    } catch (e) { /* the page still shows the last state */ }
  };
  if ([...body.querySelectorAll(".state")].some((s) => s.textContent === "running")) { setTimeout(tick, 1500); }
}

// After a refused save, move keyboard focus to the first invalid field.
function focusFirstError() {
  const bad = document.querySelector("[aria-invalid='true']");
  if (bad) { bad.focus(); }
}

document.addEventListener("DOMContentLoaded", () => { drawBars(); pollRuns(); focusFirstError(); });

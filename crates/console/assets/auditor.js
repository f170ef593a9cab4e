// The auditor's page: runs verify.js against this gateway's log (/log/...), trusting only the
// key pinned in this browser. Keeps, in this browser's localStorage, the pinned key (per log
// URL, from the first visit) and the last checkpoint that checked out (per log origin).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const panel = document.getElementById("verify");
  const V = window.ObhutVerify;
  if (!panel || !V) return;
  const logUrl = new URL(panel.dataset.log, location.href).href;
  const log = V.httpLog(logUrl);
  const keyShown = document.getElementById("pinned-key");
  const keptField = document.getElementById("kept");
  const summary = document.getElementById("verify-summary");
  const results = document.getElementById("verify-results");
  const originOf = (vkey) => (vkey ? vkey.split("+")[0] : null);
  // The page's language (English or German) for the checks' messages.
  const lang = document.documentElement.lang || "en";
  const say = V.messages(lang);

  function showKey() {
    keyShown.textContent = V.store.pinnedKey(logUrl) || "—";
  }

  async function run() {
    panel.dataset.state = "running";
    summary.textContent = "…";
    const pinned = V.store.pinnedKey(logUrl);
    try {
      const r = await V.audit({ log, pinnedKey: pinned, kept: keptField.value.trim() || null, entries: [], lang });
      if (!pinned && r.pinnedKey && r.checks[0].code === "key-pinned") V.store.pin(logUrl, r.pinnedKey);
      if (r.ok && r.keep && r.checkpoint) {
        V.store.keep(r.checkpoint.origin, r.keep);
        keptField.value = r.keep;
      }
      V.render(results, r.checks);
      const flagged = r.checks.filter((c) => c.state === "flagged");
      summary.textContent = flagged.length ? `${panel.dataset.flaggedText} (${flagged.length})` : panel.dataset.okText;
      summary.className = flagged.length ? "flagged" : "ok";
      panel.dataset.state = flagged.length ? "flagged" : "verified";
    } catch (e) {
      summary.textContent = say.couldNotRun(e.message);
      summary.className = "flagged";
      panel.dataset.state = "error";
    }
    showKey();
  }

  async function verifyRows(rows) {
    const pinned = V.store.pinnedKey(logUrl);
    for (const row of rows) {
      const s = row.querySelector(".inclusion-state");
      s.textContent = "…";
      s.dataset.state = "running";
    }
    if (!pinned) {
      for (const row of rows) {
        const s = row.querySelector(".inclusion-state");
        s.textContent = say.noKeyYet();
        s.dataset.state = "note";
        s.dataset.code = "no-key";
      }
      return [];
    }
    const items = rows.map((row) => ({ index: Number(row.dataset.index), entry: row.dataset.entry }));
    let checks;
    try {
      checks = await V.checkInclusion({ log, pinnedKey: pinned, items, lang });
    } catch (e) {
      checks = items.map((it) => ({ state: "flagged", code: "error", message: say.entryError(it.index, e.message) }));
    }
    rows.forEach((row, i) => {
      const s = row.querySelector(".inclusion-state");
      const c = checks[i];
      s.textContent = (c.state === "ok" ? "\u2713 " : c.state === "flagged" ? "\u2717 " : "") + c.message;
      s.dataset.state = c.state;
      s.dataset.code = c.code;
      s.className = "inclusion-state " + c.state;
    });
    return checks;
  }

  const pinnedNow = V.store.pinnedKey(logUrl);
  const kept = V.store.kept(originOf(pinnedNow));
  if (kept) keptField.value = kept;
  showKey();

  document.getElementById("verify-run").addEventListener("click", run);
  document.getElementById("unpin").addEventListener("click", () => {
    localStorage.removeItem("obhut-verify.key:" + logUrl);
    showKey();
    run();
  });
  const all = document.getElementById("verify-all");
  if (all) {
    all.addEventListener("click", async () => {
      const state = document.getElementById("verify-all-state");
      state.textContent = "…";
      state.dataset.state = "running";
      const checks = await verifyRows(Array.from(document.querySelectorAll("tr.entry[data-entry]")));
      const bad = checks.filter((c) => c.state === "flagged").length;
      const ok = checks.filter((c) => c.state === "ok").length;
      state.textContent = bad ? say.entriesFlagged(bad, checks.length) : say.entriesVerified(ok, checks.length);
      state.dataset.state = bad ? "flagged" : "verified";
    });
  }
  for (const button of document.querySelectorAll("button.verify-one")) {
    button.addEventListener("click", () => verifyRows([button.closest("tr")]));
  }
  run();
});

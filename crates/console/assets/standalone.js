// The standalone verifier's page (docs/verifier/obhut-verify.html, built by
// scripts/build-verifier around verify.js): the auditor gives the log's URL, the log key it
// trusts, optionally a checkpoint it kept and an entry; nothing here comes from the log's
// operator except what verify.js checks against that key.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const V = window.ObhutVerify;
  const $ = (id) => document.getElementById(id);
  const originOf = (vkey) => (vkey ? vkey.trim().split("+")[0] : null);
  const normal = (url) => url.trim().replace(/\/+$/, "");

  const params = new URLSearchParams(location.search);
  $("log-url").value = params.get("log") || localStorage.getItem("obhut-verify.last-log") || "";
  function fillFromStore() {
    const url = normal($("log-url").value);
    if (!url) return;
    const pinned = V.store.pinnedKey(url);
    if (pinned && !$("key").value.trim()) $("key").value = pinned;
    const kept = V.store.kept(originOf($("key").value));
    if (kept && !$("kept").value.trim()) $("kept").value = kept;
  }
  $("log-url").addEventListener("change", fillFromStore);
  fillFromStore();

  $("run").addEventListener("click", async () => {
    const out = $("verify-results");
    const summary = $("verify-summary");
    const url = normal($("log-url").value);
    summary.dataset.state = "running";
    summary.className = "";
    summary.textContent = "…";
    $("current-checkpoint").textContent = "";
    if (!/^https?:\/\/./.test(url)) {
      summary.textContent = "Give the log's URL, e.g. https://trustee.example:9001/log";
      summary.dataset.state = "error";
      return;
    }
    localStorage.setItem("obhut-verify.last-log", url);
    const entries = [];
    const index = $("entry-index").value.trim();
    if (index !== "") entries.push({ index: Number(index), entry: $("entry-text").value });
    try {
      const r = await V.audit({
        log: V.httpLog(url),
        pinnedKey: $("key").value.trim() || null,
        kept: $("kept").value.trim() || null,
        entries,
      });
      if (r.pinnedKey && r.checks[0].state !== "flagged") {
        V.store.pin(url, r.pinnedKey);
        $("key").value = r.pinnedKey;
      }
      if (r.ok && r.keep && r.checkpoint) {
        V.store.keep(r.checkpoint.origin, r.keep);
        $("kept").value = r.keep;
      }
      if (r.checkpoint) $("current-checkpoint").textContent = r.checkpoint.note;
      V.render(out, r.checks);
      const flagged = r.checks.filter((c) => c.state === "flagged");
      summary.textContent = flagged.length
        ? `FLAGGED: ${flagged.length} check${flagged.length > 1 ? "s" : ""} failed. Do not rely on this log until the trustee explains.`
        : "Verified: nothing wrong found.";
      summary.className = flagged.length ? "flagged" : "ok";
      summary.dataset.state = flagged.length ? "flagged" : "verified";
    } catch (e) {
      summary.textContent = "The check could not run: " + e.message;
      summary.className = "flagged";
      summary.dataset.state = "error";
    }
  });
});

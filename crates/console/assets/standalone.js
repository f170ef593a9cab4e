// The standalone verifier's page (docs/verifier/obhut-verify.html, built by
// scripts/build-verifier around verify.js): the auditor gives the log's URL, the log key it
// trusts, optionally a checkpoint it kept and an entry; nothing here comes from the log's
// operator except what verify.js checks against that key.
"use strict";

// The page's words in German (the HTML holds the English ones), by data-i18n key. Constant
// strings of this file only: nothing from the log or the user is ever put in as HTML.
const PAGE_DE = {
  title: "obhut-Protokollprüfer",
  intro: "Diese Datei prüft ein Transparenzprotokoll von obhut in Ihrem Browser und vertraut dabei nur " +
    "dem Protokollschlüssel, den Sie angeben: die Signatur des Checkpoints, dass die Hash-Kacheln des " +
    "Protokolls die signierte Wurzel ergeben, dass das Protokoll seit einem aufbewahrten Checkpoint nur " +
    "gewachsen ist, und dass ein Eintrag im Protokoll steht. Bewahren Sie diese Datei auf und vergleichen " +
    "Sie ihre SHA-256 mit der, die obhut veröffentlicht (docs/verifier.md); sie braucht sonst nichts.",
  logUrl: "URL des Protokolls (die Admin-URL, gefolgt von /log)",
  key: "Protokollschlüssel, dem Sie vertrauen, <code>&lt;Ursprung&gt;+&lt;Schlüssel-Hash&gt;+&lt;Schlüssel&gt;</code>, " +
    "wie der Treuhänder ihn veröffentlicht hat (leer: den nehmen, den das Protokoll jetzt unter " +
    "<code>/log/key</code> ausliefert, und aufbewahren)",
  kept: "Aufbewahrter Checkpoint (optional; der letzte, der hier die Prüfung bestand, wird in diesem Browser aufbewahrt)",
  entryIndex: "Zu prüfender Eintrag (optional): sein Index",
  entryText: "… und sein genauer Text (das Feld <code>entry</code> von <code>/v1/log/entries</code>, " +
    "oder der Eintrag, wie ihn die Prüfer-Seite der Konsole zeigt)",
  run: "Prüfen",
  current: "Aktueller Checkpoint",
  currentNote: "Nach bestandener Prüfung aufbewahren (er wird auch in diesem Browser aufbewahrt): " +
    "die nächste Prüfung beweist, dass das Protokoll seitdem nur gewachsen ist.",
};

document.addEventListener("DOMContentLoaded", () => {
  const V = window.ObhutVerify;
  const $ = (id) => document.getElementById(id);
  const originOf = (vkey) => (vkey ? vkey.trim().split("+")[0] : null);
  const normal = (url) => url.trim().replace(/\/+$/, "");

  const params = new URLSearchParams(location.search);

  // English or German: ?lang=, then the choice kept in this browser, then the browser's language.
  const english = {};
  for (const el of document.querySelectorAll("[data-i18n]")) english[el.dataset.i18n] = el.innerHTML;
  let lang = "en";
  function setLang(choice) {
    lang = String(choice || "").toLowerCase().startsWith("de") ? "de" : "en";
    document.documentElement.lang = lang;
    for (const el of document.querySelectorAll("[data-i18n]")) {
      el.innerHTML = lang === "de" ? PAGE_DE[el.dataset.i18n] : english[el.dataset.i18n];
    }
    for (const b of document.querySelectorAll("button[data-lang]")) {
      b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
    }
  }
  setLang(params.get("lang") || localStorage.getItem("obhut-verify.lang") || navigator.language);
  for (const b of document.querySelectorAll("button[data-lang]")) {
    b.addEventListener("click", () => {
      localStorage.setItem("obhut-verify.lang", b.dataset.lang);
      setLang(b.dataset.lang);
    });
  }
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
    const say = V.messages(lang);
    if (!/^https?:\/\/./.test(url)) {
      summary.textContent = say.giveUrl();
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
        lang,
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
      summary.textContent = flagged.length ? say.summaryFlagged(flagged.length) : say.summaryVerified();
      summary.className = flagged.length ? "flagged" : "ok";
      summary.dataset.state = flagged.length ? "flagged" : "verified";
    } catch (e) {
      summary.textContent = say.couldNotRun(e.message);
      summary.className = "flagged";
      summary.dataset.state = "error";
    }
  });
});

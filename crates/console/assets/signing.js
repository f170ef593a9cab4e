// Decisions signed in this browser (the officer's and the tenant admin's pages): grants,
// disclosure requests, quorum approvals (crypto-shreds, a disconnect), and on the tenant admin's
// page the revocation of its tenant's access keys.
//
// The browser makes an Ed25519 key pair with WebCrypto, its private half not extractable, and
// keeps it in IndexedDB (this origin only), so it survives reloads and never leaves the browser.
// Its public key is shown with the CLI command that enrols it (`obhut signing-key enrol`, signed
// with the principal's own key). A decision is built here as the CLI builds it, shown decoded,
// and signed only when asked ("obhut signed statement v1\n" + the statement's exact text); the
// console carries the signed statement to the admin API's /v1/act, and the trustee checks it.
"use strict";

(() => {
  const CONTEXT = "obhut signed statement v1\n";
  const DB_NAME = "obhut-console";
  const STORE = "signing-keys";
  // A prepared statement older than this is made again before it is signed (the trustee
  // accepts statements up to 5 minutes from its clock).
  const STALE_MS = 4 * 60 * 1000;

  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  const base64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
  const utf8 = (s) => new TextEncoder().encode(s);

  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  async function dbGet(key) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const req = db.transaction(STORE, "readonly").objectStore(STORE).get(key);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  async function dbPut(key, value) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, "readwrite");
      tx.objectStore(STORE).put(value, key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  async function makeKey() {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
    return { privateKey: pair.privateKey, publicKey: hex(raw), made: Date.now() };
  }

  // The scope digest an approval signs, from the fields this page shows (as the trustee's
  // grant_scope_digest: SHA-256 of the JSON of these fields, in this order).
  async function scopeDigest(card) {
    const d = card.dataset;
    const text = JSON.stringify({
      id: d.id, tenant: d.tenant, bucket: d.bucket, prefix: d.prefix, ops: JSON.parse(d.ops),
      duration_ms: Number(d.durationMs), requester: d.requester, reason: d.reason,
    });
    return hex(await crypto.subtle.digest("SHA-256", utf8(text)));
  }

  function nonce() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return hex(b);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const panel = document.getElementById("signing-key");
    if (!panel) return;
    const principal = panel.dataset.principal;
    const enrolled = JSON.parse(panel.dataset.keys || "[]");
    const slot = "key:" + principal;
    const stateLine = document.getElementById("key-state");
    let current = null;
    let active = false;

    function render() {
      const k = current && enrolled.find((e) => e.public_key === current.publicKey);
      let state = "none";
      if (current) state = k ? k.state : "not-enrolled";
      active = state === "active";
      panel.dataset.state = state;
      document.getElementById("browser-key").textContent = current ? current.publicKey : "—";
      document.getElementById("enrol-command").textContent = current
        ? `obhut signing-key enrol --public-key ${current.publicKey} --expires 30d --label console`
        : "—";
      const text = {
        none: panel.dataset.none, "not-enrolled": panel.dataset.notEnrolled,
        expired: panel.dataset.expired, revoked: panel.dataset.revoked,
      }[state];
      stateLine.textContent = active
        ? `${panel.dataset.active} ${new Date(k.expires_ms).toISOString().replace("T", " ").slice(0, 19)} UTC`
        : text;
      for (const b of document.querySelectorAll(
        "form.decide button.prepare, form.revoke-key button.prepare, form.quorum-sign button.prepare")) {
        b.disabled = !active;
      }
    }

    try {
      current = (await dbGet(slot)) || null;
    } catch (e) {
      current = null;
    }
    const newKey = document.getElementById("new-key");
    newKey.addEventListener("click", async () => {
      try {
        current = await makeKey();
        await dbPut(slot, current);
      } catch (e) {
        panel.dataset.state = "unsupported";
        stateLine.textContent = `${panel.dataset.unsupported} (${e})`;
        return;
      }
      render();
    });
    render();

    for (const form of document.querySelectorAll("form.decide")) {
      const card = form.closest("article.decision");
      const preview = form.querySelector(".preview");
      const error = form.querySelector(".decide-error");
      const fail = (text) => {
        error.textContent = text;
        error.hidden = false;
        preview.hidden = true;
        delete form.dataset.statement;
      };

      async function prepare(decision) {
        error.hidden = true;
        const kind = card.dataset.kind;
        const id = card.dataset.id;
        const reason = form.querySelector("textarea.reason").value.trim();
        let action;
        if (decision === "approve" && kind === "grant") {
          const scope = await scopeDigest(card);
          if (scope !== card.dataset.scopeDigest) return fail(panel.dataset.digestMismatch);
          action = { action: "approve_grant", id, scope };
        } else if (decision === "approve") {
          action = { action: "approve_disclosure", id };
        } else {
          if (!reason) return fail(panel.dataset.reasonMissing);
          action = { action: kind === "grant" ? "deny_grant" : "deny_disclosure", id, reason };
        }
        const statement = JSON.stringify({ principal, at_ms: Date.now(), nonce: nonce(), ...action });
        form.dataset.statement = statement;
        form.dataset.decision = decision;
        form.querySelector("pre.statement").textContent = JSON.stringify(JSON.parse(statement), null, 2);
        preview.hidden = false;
      }

      for (const b of form.querySelectorAll("button.prepare")) {
        b.addEventListener("click", () => prepare(b.dataset.decision));
      }
      form.querySelector("button.cancel").addEventListener("click", () => {
        preview.hidden = true;
        delete form.dataset.statement;
      });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const statement = form.dataset.statement;
        if (!statement) return;
        if (!active || !current) return fail(panel.dataset.noKey);
        if (Date.now() - JSON.parse(statement).at_ms > STALE_MS) {
          // Shown too long ago: made again (new time and nonce), to be looked at again.
          await prepare(form.dataset.decision);
          return;
        }
        const sig = await crypto.subtle.sign({ name: "Ed25519" }, current.privateKey, utf8(CONTEXT + statement));
        form.elements.namedItem("statement").value = statement;
        form.elements.namedItem("signature").value = base64(sig);
        form.submit();
      });
    }

    // A form with one button that shows the statement of `actionOf()` (what the CLI signs, with
    // this principal, the time and a nonce), decoded with its consequence, and signs it with
    // this browser's key on submit.
    function signingForm(form, actionOf) {
      const preview = form.querySelector(".preview");
      const error = form.querySelector(".decide-error");
      const fail = (text) => {
        error.textContent = text;
        error.hidden = false;
        preview.hidden = true;
        delete form.dataset.statement;
      };
      function prepare() {
        error.hidden = true;
        const statement = JSON.stringify({ principal, at_ms: Date.now(), nonce: nonce(), ...actionOf() });
        form.dataset.statement = statement;
        form.querySelector("pre.statement").textContent = JSON.stringify(JSON.parse(statement), null, 2);
        preview.hidden = false;
      }
      form.querySelector("button.prepare").addEventListener("click", prepare);
      form.querySelector("button.cancel").addEventListener("click", () => {
        preview.hidden = true;
        delete form.dataset.statement;
      });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const statement = form.dataset.statement;
        if (!statement) return;
        if (!active || !current) return fail(panel.dataset.noKey);
        if (Date.now() - JSON.parse(statement).at_ms > STALE_MS) {
          prepare();
          return;
        }
        const sig = await crypto.subtle.sign({ name: "Ed25519" }, current.privateKey, utf8(CONTEXT + statement));
        form.elements.namedItem("statement").value = statement;
        form.elements.namedItem("signature").value = base64(sig);
        form.submit();
      });
    }

    // A quorum approval (a crypto-shred of a tenant, a disconnect): the statement the CLI's
    // `obhut tenant shred` or `obhut trustee disconnect` signs, its action's fields given by the
    // form.
    for (const form of document.querySelectorAll("form.quorum-sign")) {
      signingForm(form, () => JSON.parse(form.dataset.action));
    }

    // Revoking an access key: the statement the CLI's `obhut tenant key-revoke` signs.
    const keys = document.getElementById("access-keys");
    for (const form of document.querySelectorAll("form.revoke-key")) {
      signingForm(form, () => ({
        action: "revoke_access_key", tenant: keys.dataset.tenant, access_key_id: form.dataset.key,
      }));
    }
  });
})();

// The obhut console's only script (no inline scripts: the Content-Security-Policy forbids them).
// Sign-in: a token (obt_…) never leaves the browser; the admin bearer is derived from it here,
// as `obhut token bearer` does: "obb_" + hex(HMAC-SHA256(key = token, "obhut admin bearer v1")).
"use strict";

async function bearerOf(token) {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw", enc.encode(token), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const tag = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode("obhut admin bearer v1")));
  return "obb_" + Array.from(tag, (b) => b.toString(16).padStart(2, "0")).join("");
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("sign-in");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    const field = form.elements.namedItem("bearer");
    const value = field.value.trim();
    if (!value.startsWith("obt_")) return;
    event.preventDefault();
    field.value = await bearerOf(value);
    form.submit();
  });
});

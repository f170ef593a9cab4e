// Unit tests of crates/console/assets/verify.js against the public test vectors that the Rust
// verifier (crates/tlog) is tested with, and against a log written by another implementation
// (tlog_tiles 0.2.0). Run: node --test tests/js/ (tests/integration/test_console_verifier.py does).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const V = require("../../crates/console/assets/verify.js");

const VECTORS = path.join(__dirname, "../../crates/tlog/tests/vectors");
const FIXTURE = path.join(VECTORS, "rust-tlog_tiles-0.2.0");
const json = (name) => JSON.parse(fs.readFileSync(path.join(VECTORS, name), "utf8"));
const b64 = (s) => (s == null ? null : V.b64decode(s));

test("RFC 6962 leaf and node hashes and roots (merkle_tree.json)", async () => {
  const t = json("merkle_tree.json");
  const leaves = t.leaf_inputs.map((h) => Buffer.from(h, "hex"));
  for (let size = 1; size <= leaves.length; size++) {
    const hashes = [];
    for (const l of leaves.slice(0, size)) hashes.push(await V.leafHash(new Uint8Array(l)));
    // A tree from level-0 hashes only: one partial tile.
    const tile = Buffer.concat(hashes.map((h) => Buffer.from(h)));
    const tree = new V.TileTree(size, async (p) => (p === V.tilePath(0, 0, size) ? new Uint8Array(tile) : null));
    assert.equal(Buffer.from(await tree.root()).toString("hex"), t.root_hashes[size], `root of size ${size}`);
    assert.equal(Buffer.from(hashes[size - 1]).toString("hex"), t.node_hashes[0][size - 1]);
  }
  assert.equal(Buffer.from(await new V.TileTree(0, async () => null).root()).toString("hex"), t.root_hashes[0]);
  for (const c of t.hasher) {
    if (c.op === "leaf") assert.equal(V.hex(await V.leafHash(new Uint8Array(Buffer.from(c.input_hex, "hex")))), c.want, c.desc);
  }
});

test("inclusion proofs: every transparency-dev case (merkle_inclusion.json)", async () => {
  const cases = json("merkle_inclusion.json").cases;
  assert.ok(cases.length >= 90);
  for (const c of cases) {
    const ok = await V.verifyInclusion(b64(c.leafHash), c.leafIdx, c.treeSize, (c.proof || []).map(b64), b64(c.root));
    assert.equal(ok, !c.wantErr, `${c.file}: ${c.desc}`);
  }
});

test("consistency proofs: every transparency-dev case (merkle_consistency.json)", async () => {
  const cases = json("merkle_consistency.json").cases;
  assert.ok(cases.length >= 90);
  for (const c of cases) {
    const ok = await V.verifyConsistency(c.size1, c.size2, (c.proof || []).map(b64), b64(c.root1), b64(c.root2));
    assert.equal(ok, !c.wantErr, `${c.file}: ${c.desc}`);
  }
});

test("verifier keys: key hash, algorithm, form (notes.json vkeys)", async () => {
  for (const c of json("notes.json").vkeys) {
    if (c.want_ok) {
      const k = await V.parseVerifierKey(c.vkey);
      assert.equal(k.name, c.name, c.vkey);
      assert.equal(k.idHex, c.key_id, c.vkey);
    } else {
      await assert.rejects(V.parseVerifierKey(c.vkey), /./, `${c.vkey} should be refused (${c.source})`);
    }
  }
});

test("signed notes open with the pinned key, as Go's sumdb/note does (notes.json notes)", async () => {
  for (const c of json("notes.json").notes) {
    const keys = [];
    for (const k of c.vkeys) {
      try {
        keys.push(await V.parseVerifierKey(k));
      } catch (e) {
        keys.push(null);
      }
    }
    // Verified by a key = that key opens it.
    const results = [];
    for (const k of keys.filter(Boolean)) {
      try {
        const opened = await V.openNote(c.note, k);
        if (c.want_text !== undefined) assert.equal(opened.text, c.want_text, c.desc);
        results.push([k.name, "ok"]);
      } catch (e) {
        results.push([k.name, e.code]);
      }
    }
    const verified = results.filter(([, r]) => r === "ok").map(([n]) => n);
    const failed = results.filter(([, r]) => r === "bad-signature" || r === "malformed");
    if (c.want_ok) {
      assert.deepEqual(verified.sort(), [...c.want_verified].sort(), `${c.desc}: ${JSON.stringify(results)}`);
      assert.equal(failed.length, 0, `${c.desc}: ${JSON.stringify(results)}`);
    } else {
      // Refused: no key opens it, or one of them finds it malformed or badly signed.
      assert.ok(verified.length === 0 || failed.length > 0 || keys.includes(null),
        `${c.desc} should be refused: ${JSON.stringify(results)}`);
    }
  }
});

test("checkpoint bodies: the strict C2SP verdict (notes.json checkpoint_bodies)", () => {
  for (const c of json("notes.json").checkpoint_bodies) {
    let ok = true;
    try {
      V.parseCheckpointBody(c.body);
    } catch (e) {
      ok = false;
    }
    assert.equal(ok, c.c2sp_strict_ok, `${JSON.stringify(c.body)}: ${c.why || ""}`);
  }
  const cp = json("notes.json").checkpoints[0];
  const text = cp.note.slice(0, cp.note.lastIndexOf("\n\n") + 1);
  const parsed = V.parseCheckpointBody(text);
  assert.equal(parsed.origin, cp.origin);
  assert.equal(parsed.size, cp.size);
  assert.equal(parsed.rootB64, cp.root_b64);
});

test("tile index encoding and paths (tiles.json)", () => {
  for (const c of json("tiles.json").index_encoding) assert.equal(V.encodeTileIndex(c.n), c.path);
  assert.equal(V.tilePath(0, 1234067, 17), "tile/0/x001/x234/067.p/17");
  assert.equal(V.tilePath(1, 0, 256), "tile/1/000");
});

function dirLog(dir) {
  const fetched = [];
  const read = (p) => {
    fetched.push(p);
    try {
      return new Uint8Array(fs.readFileSync(path.join(dir, p)));
    } catch (e) {
      return null;
    }
  };
  return {
    fetched,
    async text(p) {
      const d = read(p);
      if (!d) throw new V.VerifyError("unavailable", p);
      return Buffer.from(d).toString("utf8");
    },
    async bytes(p) {
      return read(p);
    },
  };
}

test("a log written by tlog_tiles 0.2.0: checkpoint, tiles, the proofs it made", async () => {
  const fx = JSON.parse(fs.readFileSync(path.join(FIXTURE, "fixture.json"), "utf8"));
  const log = dirLog(path.join(FIXTURE, fx.log_dir));
  const vk = await V.parseVerifierKey(fx.vkeys[0]);
  const cp = await V.verifyCheckpoint(await log.text("checkpoint"), vk);
  assert.equal(cp.size, fx.size);
  assert.equal(cp.rootB64, fx.root_b64);
  const tree = new V.TileTree(cp.size, (p) => log.bytes(p));
  assert.equal(V.b64encode(await tree.root()), fx.root_b64);
  assert.ok(log.fetched.includes("tile/1/000.p/2"), log.fetched);
  // Every proof the other implementation made is the one built here, and verifies.
  const lines = fs.readFileSync(path.join(FIXTURE, fx.proofs), "utf8").trim().split("\n").map(JSON.parse);
  let inclusion = 0;
  let consistency = 0;
  for (const p of lines) {
    const t = new V.TileTree(p.size ?? p.size2, (q) => log.bytes(q));
    if (p.kind === "inclusion") {
      const built = (await t.inclusionProof(p.index)).map(V.b64encode);
      assert.deepEqual(built, p.proof, `inclusion ${p.index} in ${p.size}`);
      assert.ok(await V.verifyInclusion(b64(p.leaf_hash), p.index, p.size, built.map(b64), b64(p.root)));
      inclusion++;
    } else if (p.kind === "consistency") {
      const built = (await t.consistencyProof(p.size1)).map(V.b64encode);
      assert.deepEqual(built, p.proof, `consistency ${p.size1} -> ${p.size2}`);
      assert.ok(await V.verifyConsistency(p.size1, p.size2, built.map(b64), b64(p.root1), b64(p.root2)));
      consistency++;
    }
  }
  assert.ok(inclusion > 0 && consistency > 0, `${inclusion} inclusion, ${consistency} consistency proofs`);
});

test("the audit of the tlog_tiles log: consistency with each older checkpoint; a rolled back log", async () => {
  const fx = JSON.parse(fs.readFileSync(path.join(FIXTURE, "fixture.json"), "utf8"));
  const log = dirLog(path.join(FIXTURE, fx.log_dir));
  for (const name of fx.older_checkpoints) {
    const kept = fs.readFileSync(path.join(FIXTURE, name), "utf8");
    const r = await V.audit({ log, pinnedKey: fx.vkeys[0], kept, entries: [] });
    const c = r.checks.find((x) => x.check === "consistency");
    assert.equal(c.code, "consistent", `${name}: ${c.message}`);
    assert.ok(r.ok && r.keep === r.checkpoint.note);
  }
  // The log serves an older checkpoint than the one kept: rolled back.
  const rolled = {
    text: async (p) => (p === "checkpoint" ? fs.readFileSync(path.join(FIXTURE, "checkpoint.300"), "utf8") : log.text(p)),
    bytes: (p) => log.bytes(p),
  };
  const kept = fs.readFileSync(path.join(FIXTURE, fx.log_dir, "checkpoint"), "utf8");
  const r = await V.audit({ log: rolled, pinnedKey: fx.vkeys[0], kept, entries: [] });
  assert.equal(r.checks.find((x) => x.check === "consistency").code, "rollback");
  assert.equal(r.ok, false);
  assert.equal(r.keep, kept, "a flagged audit keeps the old checkpoint");
});

// A log of our own, signed with a generated key, to make forks and altered tiles.
async function signedLog(entries, { keyPair, name = "example.org/fork-test" } = {}) {
  keyPair = keyPair || (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]));
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", keyPair.publicKey));
  const raw = new Uint8Array([1, ...pub]);
  const id = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array([...Buffer.from(name + "\n"), ...raw]))).slice(0, 4);
  const vkey = `${name}+${V.hex(id)}+${V.b64encode(raw)}`;
  const leaves = [];
  for (const e of entries) leaves.push(await V.leafHash(e));
  const files = new Map();
  const size = leaves.length;
  // Level-0 tiles only (enough for < 65536 entries: level-1 tiles hold level-8 nodes).
  for (let t = 0; t * 256 < size; t++) {
    const w = Math.min(256, size - t * 256);
    files.set(V.tilePath(0, t, w), Buffer.concat(leaves.slice(t * 256, t * 256 + w).map((l) => Buffer.from(l))));
  }
  if (size >= 256) {
    const n8 = Math.floor(size / 256);
    const hs = [];
    for (let i = 0; i < n8; i++) {
      let row = leaves.slice(i * 256, (i + 1) * 256);
      while (row.length > 1) {
        const next = [];
        for (let j = 0; j < row.length; j += 2) next.push(await V.nodeHash(row[j], row[j + 1]));
        row = next;
      }
      hs.push(Buffer.from(row[0]));
    }
    files.set(V.tilePath(1, 0, n8), Buffer.concat(hs));
  }
  const tree = new V.TileTree(size, async (p) => files.get(p) || null);
  const root = await tree.root();
  const text = `${name}\n${size}\n${V.b64encode(root)}\n`;
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, keyPair.privateKey, Buffer.from(text)));
  const note = `${text}\n\u2014 ${name} ${V.b64encode(new Uint8Array([...id, ...sig]))}\n`;
  files.set("checkpoint", Buffer.from(note));
  files.set("key", Buffer.from(vkey + "\n"));
  return {
    keyPair, vkey, note, files,
    log: {
      async text(p) {
        if (!files.has(p)) throw new V.VerifyError("unavailable", p);
        return files.get(p).toString("utf8");
      },
      async bytes(p) {
        return files.has(p) ? new Uint8Array(files.get(p)) : null;
      },
    },
  };
}

test("a fork (same size, another root, both signed) and a rewritten history are flagged", async () => {
  const entries = Array.from({ length: 300 }, (_, i) => `entry ${i}`);
  const a = await signedLog(entries);
  const forked = entries.slice();
  forked[7] = "entry 7, rewritten";
  const b = await signedLog(forked, { keyPair: a.keyPair });
  let r = await V.audit({ log: b.log, pinnedKey: a.vkey, kept: a.note, entries: [] });
  assert.equal(r.checks.find((c) => c.check === "consistency").code, "fork");
  // The rewritten log grew: its consistency proof from the kept checkpoint fails.
  const c = await signedLog(forked.concat(["entry 300"]), { keyPair: a.keyPair });
  r = await V.audit({ log: c.log, pinnedKey: a.vkey, kept: a.note, entries: [{ index: 7, entry: "entry 7" }] });
  assert.equal(r.checks.find((x) => x.check === "consistency").code, "not-consistent");
  assert.equal(r.checks.find((x) => x.check === "inclusion").code, "not-included");
  assert.equal(r.checks.find((x) => x.check === "checkpoint").code, "verified");
  // The honest log that grew: consistent, and its entries included.
  const d = await signedLog(entries.concat(["entry 300", "entry 301"]), { keyPair: a.keyPair });
  r = await V.audit({ log: d.log, pinnedKey: a.vkey, kept: a.note, entries: [{ index: 0, entry: "entry 0" }, { index: 301, entry: "entry 301" }] });
  assert.deepEqual(r.checks.map((x) => x.code), ["key-matches", "verified", "tiles-match", "consistent", "included", "included"]);
  assert.ok(r.ok);
});

test("altered checkpoints, keys and tiles are flagged with what happened", async () => {
  const entries = Array.from({ length: 40 }, (_, i) => `e${i}`);
  const a = await signedLog(entries);
  const codes = (r) => Object.fromEntries(r.checks.filter((c) => c.check !== "inclusion").map((c) => [c.check, c.code]));
  // Root changed, not re-signed.
  const lines = a.note.split("\n");
  const other = V.b64encode(new Uint8Array(32).fill(7));
  a.files.set("checkpoint", Buffer.from([lines[0], lines[1], other, ...lines.slice(3)].join("\n")));
  let r = await V.audit({ log: a.log, pinnedKey: a.vkey, kept: null, entries: [] });
  assert.equal(codes(r).checkpoint, "bad-signature");
  // Size changed, not re-signed.
  a.files.set("checkpoint", Buffer.from([lines[0], "41", ...lines.slice(2)].join("\n")));
  r = await V.audit({ log: a.log, pinnedKey: a.vkey, kept: null, entries: [] });
  assert.equal(codes(r).checkpoint, "bad-signature");
  // Re-signed by another key that the log now serves.
  const b = await signedLog(entries);
  r = await V.audit({ log: b.log, pinnedKey: a.vkey, kept: a.note, entries: [] });
  assert.equal(codes(r).key, "key-changed");
  assert.equal(codes(r).checkpoint, "not-signed");
  assert.equal(r.keep, a.note);
  // A hash changed in a tile: the tiles do not give the signed root, the entry is not included.
  a.files.set("checkpoint", Buffer.from(a.note));
  const tile = Buffer.from(a.files.get("tile/0/000.p/40"));
  tile[5 * 32] ^= 1;
  a.files.set("tile/0/000.p/40", tile);
  r = await V.audit({ log: a.log, pinnedKey: a.vkey, kept: null, entries: [{ index: 4, entry: "e4" }, { index: 39, entry: "e39" }] });
  assert.equal(codes(r).tiles, "tiles-mismatch");
  assert.deepEqual(r.checks.filter((c) => c.check === "inclusion").map((c) => c.code), ["not-included", "not-included"]);
  // A tile cut short.
  a.files.set("tile/0/000.p/40", tile.subarray(0, 32 * 39));
  r = await V.audit({ log: a.log, pinnedKey: a.vkey, kept: null, entries: [] });
  assert.equal(codes(r).tiles, "tile-malformed");
  // A malformed pinned key.
  await assert.rejects(V.parseVerifierKey(a.vkey.replace(/\+[0-9a-f]{8}\+/, "+00000000+")), (e) => e.code === "key-malformed");
});

test("a partial tile the log deleted is read from the full tile (C2SP allows deleting partial tiles)", async () => {
  const entries = Array.from({ length: 512 }, (_, i) => `x${i}`);
  const full = await signedLog(entries);
  const part = await signedLog(entries.slice(0, 300), { keyPair: full.keyPair });
  const files = new Map([...full.files, ...part.files]);
  assert.ok(files.delete("tile/0/001.p/44"));
  const log = {
    fetched: [],
    async text(p) {
      return files.get(p).toString("utf8");
    },
    async bytes(p) {
      this.fetched.push(p);
      return files.has(p) ? new Uint8Array(files.get(p)) : null;
    },
  };
  const r = await V.audit({ log, pinnedKey: part.vkey, kept: null, entries: [{ index: 299, entry: "x299" }, { index: 257, entry: "x257" }] });
  assert.deepEqual(r.checks.map((c) => c.code), ["key-matches", "verified", "tiles-match", "no-kept", "included", "included"]);
  assert.ok(log.fetched.includes("tile/0/001.p/44") && log.fetched.includes("tile/0/001"), log.fetched);
});

test("every message is in English and German; the audit speaks the language it is asked for", async () => {
  const en = V.messages("en");
  const de = V.messages("de-DE");
  assert.notEqual(en, de);
  assert.equal(V.messages("fr"), en, "any other language: English");
  assert.deepEqual(Object.keys(de).sort(), Object.keys(en).sort());
  for (const k of Object.keys(en)) {
    const args = ["A", "B", "C"];
    assert.equal(typeof de[k](...args), "string", k);
    assert.notEqual(de[k](...args), en[k](...args), `${k} is not translated`);
  }
  // Each flag keeps its English words in brackets, as docs and scripts name them.
  for (const [k, words] of [["keyChanged", "KEY CHANGED"], ["checkpointAltered", "CHECKPOINT ALTERED"],
    ["tilesAltered", "TILES ALTERED"], ["rolledBack", "LOG ROLLED BACK"], ["forked", "LOG FORKED"],
    ["notAppendOnly", "NOT APPEND-ONLY"], ["entryNotInLog", "ENTRY NOT IN THE LOG"]]) {
    assert.ok(de[k]("1", "2", "3").includes(`(${words})`), k);
  }
  const entries = [Buffer.from("a\n"), Buffer.from("b\n"), Buffer.from("c\n")];
  const { log, vkey } = await signedLog(entries);
  const item = { index: 1, entry: new Uint8Array(entries[1]) };
  const german = await V.audit({ log, pinnedKey: vkey, kept: null, entries: [item], lang: "de" });
  const english = await V.audit({ log, pinnedKey: vkey, kept: null, entries: [item] });
  assert.deepEqual(german.checks.map((c) => c.code), english.checks.map((c) => c.code));
  const byCheck = (r, name) => r.checks.find((c) => c.check === name).message;
  assert.equal(byCheck(german, "checkpoint").split(";")[0], "Checkpoint geprüft: mit dem festgelegten Schlüssel signiert");
  assert.equal(byCheck(english, "checkpoint").split(";")[0], "Checkpoint verified: signed by the pinned key");
  assert.equal(byCheck(german, "inclusion"), "Eintrag 1: Aufnahme in das signierte Protokoll mit 3 Einträgen geprüft.");
  const [one] = await V.checkInclusion({ log, pinnedKey: vkey, items: [{ index: 1, entry: "x\n" }], lang: "de" });
  assert.equal(one.code, "not-included");
  assert.ok(one.message.startsWith("EINTRAG NICHT IM PROTOKOLL (ENTRY NOT IN THE LOG): Eintrag 1"), one.message);
});

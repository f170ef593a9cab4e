// obhut log verifier: checks the transparency log in the browser (or in Node.js), trusting only
// the log's pinned public key. No libraries: WebCrypto SHA-256 and Ed25519 only.
//
// - verifier keys (signed-note vkey `<name>+<8 hex key hash>+<base64(0x01 || Ed25519 key)>`),
// - signed notes and C2SP checkpoints (`<origin>\n<size>\n<base64 root>\n` + signature lines),
// - C2SP tlog-tiles hash tiles (`tile/<L>/<N>[.p/<W>]`, N as `x001/x234/067`), which are
//   untrusted: proofs are built from them and only count once verified against a signed root,
// - RFC 6962 / RFC 9162 inclusion and consistency proofs: building and verifying them,
// - `audit`: key, checkpoint, tiles, consistency with a kept checkpoint, inclusion of entries,
//   each answered as a check with a state ("ok", "flagged" or "note") and a code, its message
//   in English or German (`lang`).
//
// The same file is served to the console (/console/assets/verify.js) and inlined into the
// standalone verifier (docs/verifier/obhut-verify.html, built by scripts/build-verifier).
(function (root, factory) {
  "use strict";
  const api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.ObhutVerify = api;
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  const subtle = globalThis.crypto.subtle;
  const enc = new TextEncoder();

  /** A verification failure: `code` names it for programs, `message` for people. */
  class VerifyError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  // ------------------------------------------------------------------ bytes

  function b64decode(s) {
    if (typeof s !== "string" || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
      throw new VerifyError("malformed", "not base64: " + JSON.stringify(String(s).slice(0, 80)));
    }
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function b64encode(bytes) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  async function sha256(bytes) {
    return new Uint8Array(await subtle.digest("SHA-256", bytes));
  }

  // ------------------------------------------------------------------ RFC 6962 hashing

  /** SHA-256(0x00 || entry): the leaf hash of an entry (bytes, or text as UTF-8). */
  async function leafHash(entry) {
    const bytes = typeof entry === "string" ? enc.encode(entry) : entry;
    return sha256(concat(Uint8Array.of(0), bytes));
  }

  /** SHA-256(0x01 || left || right). */
  async function nodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  // ------------------------------------------------------------------ signed notes

  /** A key name (Go sumdb/note isValidName): non-empty, no whitespace, no '+'. */
  function validName(name) {
    return name.length > 0 && !/[\s+]/u.test(name) && !/[\u0000-\u001f\u007f]/.test(name);
  }

  /** Parses a signed-note verifier key (Ed25519 only) and checks its key hash. */
  async function parseVerifierKey(vkey) {
    const text = String(vkey).trim();
    const bad = (why) => new VerifyError("key-malformed", `the log key ${JSON.stringify(text.slice(0, 120))} ${why}`);
    const first = text.indexOf("+");
    if (first < 0) throw bad("is not <name>+<key hash>+<key>");
    const name = text.slice(0, first);
    const rest = text.slice(first + 1);
    const second = rest.indexOf("+");
    if (second < 0) throw bad("is not <name>+<key hash>+<key>");
    const idHex = rest.slice(0, second);
    const keyB64 = rest.slice(second + 1);
    if (!validName(name)) throw bad("has an invalid name");
    if (!/^[0-9a-f]{8}$/i.test(idHex)) throw bad("has no 8-digit hex key hash");
    let raw;
    try {
      raw = b64decode(keyB64);
    } catch (e) {
      throw bad("is not base64");
    }
    if (raw.length === 0 || raw[0] !== 1) throw bad("is not an Ed25519 key (algorithm byte 0x01)");
    if (raw.length !== 33) throw bad("does not hold a 32-byte Ed25519 key");
    const id = (await sha256(concat(enc.encode(name + "\n"), raw))).slice(0, 4);
    if (hex(id) !== idHex.toLowerCase()) throw bad("has a key hash that does not match its name and key");
    const key = await subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    return { text, name, id, idHex: hex(id), publicKey: raw.slice(1), key };
  }

  /**
   * Opens a signed note with one key (as Go's sumdb/note Open): returns its text if that key
   * signed it; throws "malformed", "bad-signature" (a signature by that key that does not
   * verify: the note was altered) or "not-signed" (no signature by that key at all).
   */
  async function openNote(note, vk) {
    const malformed = (why) => new VerifyError("malformed", "the checkpoint is not a signed note: " + why);
    if (typeof note !== "string" || note.length === 0 || note.length > 1000000) throw malformed("empty or too long");
    if (/[\u0000-\u0009\u000b-\u001f\ufffd]/.test(note)) throw malformed("it holds control characters");
    if (!note.endsWith("\n")) throw malformed("it does not end in a newline");
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw malformed("no blank line before the signatures");
    const text = note.slice(0, split + 1);
    const sigs = note.slice(split + 2).split("\n").slice(0, -1);
    let signed = false;
    let others = 0;
    const seen = new Set();
    if (sigs.length > 100) throw malformed("more than 100 signatures");
    for (const line of sigs) {
      if (!line.startsWith("\u2014 ")) throw malformed("a signature line does not start with an em dash");
      const body = line.slice(2);
      const sp = body.lastIndexOf(" ");
      const name = sp < 0 ? body : body.slice(0, sp);
      const b64 = sp < 0 ? "" : body.slice(sp + 1);
      let sig;
      try {
        sig = b64decode(b64);
      } catch (e) {
        throw malformed("a signature is not base64");
      }
      if (!validName(name) || b64 === "" || sig.length < 5) throw malformed("a signature line is malformed");
      const id = hex(sig.slice(0, 4));
      if (name !== vk.name || id !== vk.idHex) {
        others++;
        continue;
      }
      if (seen.has(id)) continue;
      seen.add(id);
      const ok = sig.length === 68 &&
        (await subtle.verify({ name: "Ed25519" }, vk.key, sig.slice(4), enc.encode(text)));
      if (!ok) {
        throw new VerifyError("bad-signature",
          `the signature by the pinned key ${vk.name}+${vk.idHex} does not verify: ` +
          "the checkpoint was changed after the log signed it");
      }
      signed = true;
    }
    if (!signed) {
      throw new VerifyError("not-signed",
        `no signature by the pinned key ${vk.name}+${vk.idHex}` +
        (others ? ` (only by ${others} other key${others > 1 ? "s" : ""})` : ""));
    }
    return { text, otherSignatures: others };
  }

  /** Parses a C2SP checkpoint body strictly: origin, decimal size, base64 32-byte root. */
  function parseCheckpointBody(text) {
    const malformed = (why) => new VerifyError("malformed", "the checkpoint is malformed: " + why);
    if (!text.endsWith("\n")) throw malformed("it does not end in a newline");
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3) throw malformed("it has fewer than three lines");
    const [origin, sizeText, rootText] = lines;
    if (origin === "") throw malformed("its origin line is empty");
    if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw malformed("its size is not a decimal number");
    const big = BigInt(sizeText);
    if (big >= 1n << 64n) throw malformed("its size is too large");
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new VerifyError("too-large", "the log is larger than this verifier can check (2^53 entries)");
    }
    let root;
    try {
      root = b64decode(rootText);
    } catch (e) {
      throw malformed("its root hash is not base64");
    }
    if (root.length !== 32) throw malformed("its root hash is not 32 bytes");
    if (lines.slice(3).some((l) => l === "")) throw malformed("it has an empty extension line");
    return { origin, size: Number(big), root, rootB64: rootText };
  }

  /**
   * Verifies a checkpoint note with the pinned key: signature, body, origin equal to the key's
   * name. Returns { origin, size, root, rootB64, note }.
   */
  async function verifyCheckpoint(note, vk) {
    const opened = await openNote(note, vk);
    const cp = parseCheckpointBody(opened.text);
    if (cp.origin !== vk.name) {
      throw new VerifyError("origin-mismatch",
        `the checkpoint is for log ${JSON.stringify(cp.origin)}, the pinned key for ${JSON.stringify(vk.name)}`);
    }
    cp.note = note;
    return cp;
  }

  // ------------------------------------------------------------------ RFC 9162 proof verification

  /** RFC 9162 2.1.3.2: verifies an inclusion proof; returns true or false. */
  async function verifyInclusion(leaf, index, size, proof, root) {
    proof = proof || [];
    if (!(index >= 0 && index < size) || ![leaf, root, ...proof].every((h) => h && h.length === 32)) return false;
    let fn = BigInt(index);
    let sn = BigInt(size - 1);
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) return false;
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n && equal(r, root);
  }

  /** RFC 9162 2.1.4.2: verifies a consistency proof; returns true or false. */
  async function verifyConsistency(size1, size2, proof, root1, root2) {
    proof = proof || [];
    // As Go's sumdb/tlog and obhut's Rust verifier: a proof from the empty tree proves nothing.
    if (size1 <= 0 || size1 > size2) return false;
    if (size1 === size2) return proof.length === 0 && equal(root1, root2);
    if (![root1, root2, ...proof].every((h) => h && h.length === 32)) return false;
    if (proof.length === 0) return false;
    let path = proof;
    if ((size1 & (size1 - 1)) === 0) path = [root1].concat(proof);
    let fn = BigInt(size1 - 1);
    let sn = BigInt(size2 - 1);
    while ((fn & 1n) === 1n) {
      fn >>= 1n;
      sn >>= 1n;
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0n) return false;
      if ((fn & 1n) === 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n && equal(fr, root1) && equal(sr, root2);
  }

  // ------------------------------------------------------------------ tiles

  /** C2SP tile index encoding: 1234067 -> "x001/x234/067". */
  function encodeTileIndex(n) {
    const parts = [String(n % 1000).padStart(3, "0")];
    let rest = Math.floor(n / 1000);
    while (rest > 0) {
      parts.push("x" + String(rest % 1000).padStart(3, "0"));
      rest = Math.floor(rest / 1000);
    }
    return parts.reverse().join("/");
  }

  /** The path of hash tile (level, index) of width `width` (256: full). */
  function tilePath(level, index, width) {
    return `tile/${level}/${encodeTileIndex(index)}` + (width === 256 ? "" : `.p/${width}`);
  }

  function largestPowerOfTwoBelow(n) {
    let k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  }

  /**
   * A tree of `size` leaves read from hash tiles fetched with `get(path)` (which answers the
   * bytes, or null for 404). The hashes it yields are untrusted until a proof built from them
   * verifies against a signed root.
   */
  class TileTree {
    constructor(size, get) {
      this.size = size;
      this.get = get;
      this.tiles = new Map();
      this.nodes = new Map();
    }

    /** The 32-byte hashes of hash tile (level, index) for this tree size. */
    tile(level, index) {
      const stored = Math.floor(this.size / 256 ** level);
      const width = Math.min(256, stored - index * 256);
      const path = tilePath(level, index, width);
      if (!this.tiles.has(path)) {
        this.tiles.set(path, (async () => {
          let data = await this.get(path);
          let want = width;
          if (data == null && width < 256) {
            // A log may delete a partial tile once the full one exists.
            data = await this.get(tilePath(level, index, 256));
            want = 256;
          }
          if (data == null) {
            throw new VerifyError("tile-missing", `the log does not serve ${path} (needed for size ${this.size})`);
          }
          if (data.length !== want * 32) {
            throw new VerifyError("tile-malformed",
              `${path} has ${data.length} bytes, want ${want * 32} (${want} hashes)`);
          }
          return data.slice(0, width * 32);
        })());
      }
      return this.tiles.get(path);
    }

    /** The hash of the complete subtree at tree level `k`, index `n` (computed once). */
    node(k, n) {
      const key = k + "/" + n;
      if (!this.nodes.has(key)) this.nodes.set(key, this.computeNode(k, n));
      return this.nodes.get(key);
    }

    async computeNode(k, n) {
      if (k % 8 !== 0) return nodeHash(await this.node(k - 1, 2 * n), await this.node(k - 1, 2 * n + 1));
      // Tree level 8L is stored in the hash tiles of level L.
      const level = k / 8;
      const tileIndex = Math.floor(n / 256);
      const data = await this.tile(level, tileIndex);
      const at = n - tileIndex * 256;
      const hash = data.slice(at * 32, (at + 1) * 32);
      if (hash.length !== 32) throw new VerifyError("tile-malformed", `no hash ${at} in tile ${level}/${tileIndex}`);
      return hash;
    }

    /** MTH of leaves [lo, hi) (lo aligned as in the RFC's recursion). */
    async range(lo, hi) {
      const n = hi - lo;
      if ((n & (n - 1)) === 0 && lo % n === 0) return this.node(Math.log2(n), lo / n);
      const k = largestPowerOfTwoBelow(n);
      return nodeHash(await this.range(lo, lo + k), await this.range(lo + k, hi));
    }

    /** The root hash the tiles give for this size. */
    async root() {
      if (this.size === 0) return sha256(new Uint8Array(0));
      return this.range(0, this.size);
    }

    /** RFC 9162 PATH(m, D[0:size]): the inclusion proof of leaf `m`. */
    async inclusionProof(m) {
      const path = async (lo, hi) => {
        const n = hi - lo;
        if (n === 1) return [];
        const k = largestPowerOfTwoBelow(n);
        if (m < lo + k) return (await path(lo, lo + k)).concat([await this.range(lo + k, hi)]);
        return (await path(lo + k, hi)).concat([await this.range(lo, lo + k)]);
      };
      return path(0, this.size);
    }

    /** RFC 9162 PROOF(m, D[0:size]): the consistency proof from size `m`. */
    async consistencyProof(m) {
      const sub = async (m, lo, hi, whole) => {
        const n = hi - lo;
        if (m === n) return whole ? [] : [await this.range(lo, hi)];
        const k = largestPowerOfTwoBelow(n);
        if (m <= k) return (await sub(m, lo, lo + k, whole)).concat([await this.range(lo + k, hi)]);
        return (await sub(m - k, lo + k, hi, false)).concat([await this.range(lo, lo + k)]);
      };
      if (m <= 0 || m >= this.size) return [];
      return sub(m, 0, this.size, true);
    }
  }

  // ------------------------------------------------------------------ the audit

  /** A fetcher for a log at `base` (e.g. "/log" or "https://trustee.example:9001/log"). */
  function httpLog(base, fetchImpl) {
    const f = fetchImpl || globalThis.fetch.bind(globalThis);
    const url = (path) => base.replace(/\/+$/, "") + "/" + path;
    return {
      base,
      async text(path) {
        const r = await f(url(path), { cache: "no-store", credentials: "omit" });
        if (!r.ok) throw new VerifyError("unavailable", `GET ${path}: HTTP ${r.status}`);
        return r.text();
      },
      async bytes(path) {
        const r = await f(url(path), { cache: "no-store", credentials: "omit" });
        if (r.status === 404) return null;
        if (!r.ok) throw new VerifyError("unavailable", `GET ${path}: HTTP ${r.status}`);
        return new Uint8Array(await r.arrayBuffer());
      },
    };
  }

  // ------------------------------------------------------------------ words

  /**
   * What the checks say, in English and German: one function per message, given the
   * details it names. A flag's English words (KEY CHANGED, ...) stay in brackets in German, as
   * docs and scripts know them. A failure's technical detail (`d`) is English in both.
   */
  const MESSAGES = {
    en: {
      keyPinned: (k) => `No key was pinned: the key the log serves now, ${k}, is pinned from now on. ` +
        "Compare it with the key the trustee publishes.",
      keyUnavailable: (k) => `The log did not serve its key; checking with the pinned key ${k}.`,
      keyChanged: (served, k) => `KEY CHANGED: the log now serves the key ${served}, not the pinned key ${k}. ` +
        "A log key never changes silently: everything below is checked with the pinned key. " +
        "Ask the trustee why before you pin another key.",
      keyMatches: (k) => `The log serves the pinned key ${k}.`,
      keyUnusable: (d) => "The log key cannot be used: " + d,
      checkpointVerified: (size, root) => `Checkpoint verified: signed by the pinned key; ${size} entries, root ${root}.`,
      checkpointAltered: (d) => "CHECKPOINT ALTERED: " + d + ".",
      checkpointNotSigned: (d) => "CHECKPOINT NOT SIGNED BY THE PINNED KEY: " + d +
        ". Someone other than the log signed it, or the log's key was replaced.",
      wrongLog: (d) => "WRONG LOG: " + d + ".",
      checkpointMalformed: (d) => "CHECKPOINT MALFORMED: " + d + ".",
      checkpointUnchecked: (d) => "The checkpoint could not be checked: " + d,
      tilesMatch: (size) => `The log's hash tiles give the signed root for ${size} entries.`,
      tilesAltered: (got, root) => `TILES ALTERED: the hash tiles give the root ${got}, not the signed root ${root}: ` +
        "the log serves tree hashes that its signed checkpoint does not vouch for.",
      tilesUnreadable: (d) => "The hash tiles cannot be read: " + d,
      noVerifiedCheckpoint: () => "Not checked: no verified checkpoint.",
      noKept: (hasCheckpoint) => "No checkpoint was kept from an earlier visit: " +
        (hasCheckpoint ? "this one is kept now, and the next check proves the log only grew since." : "none is kept."),
      currentDidNotVerify: () => "Not checked: the current checkpoint did not verify.",
      rolledBack: (old, now) => `LOG ROLLED BACK: the kept checkpoint has ${old} entries, the log now only ${now}. ` +
        "A log only grows: entries you were shown are gone, or you are being shown another log.",
      forked: (size, a, b) => `LOG FORKED: the kept checkpoint and the current one both have ${size} entries but different roots ` +
        `(${a} and ${b}): the log signed two different histories.`,
      unchanged: (size) => `The log is unchanged since the kept checkpoint (${size} entries).`,
      fromEmpty: (size) => `The kept checkpoint was of the empty log; it now has ${size} entries.`,
      consistent: (from, to) => `Consistency verified: the log of ${from} entries you kept is the start of the current log of ${to} entries; nothing was changed or removed.`,
      notAppendOnly: (from, to) => `NOT APPEND-ONLY: the consistency proof from the kept ${from} entries to the current ${to} does not verify ` +
        "against the two signed roots: the log's history was rewritten, or its tiles are altered.",
      keptUnusable: (d) => "The kept checkpoint cannot be used: " + d,
      entryUnchecked: (i) => `Entry ${i}: not checked, no verified checkpoint.`,
      notAnIndex: (i) => `Entry ${i}: not an index.`,
      entryBeyond: (i, size) => `Entry ${i}: appended after the checkpoint (${size} entries); check again later.`,
      entryIncluded: (i, size) => `Entry ${i}: inclusion verified in the signed log of ${size} entries.`,
      entryNotInLog: (i) => `ENTRY NOT IN THE LOG: entry ${i} as shown is not the entry the signed checkpoint holds at ${i} ` +
        "(its inclusion proof fails): the entry or the log's tiles were altered.",
      entryError: (i, d) => `Entry ${i}: cannot be checked: ${d}`,
      entryCheckpointFails: (i, d) => `Entry ${i}: the current checkpoint does not verify (${d}).`,
      couldNotRun: (d) => "The check could not run: " + d,
      noKeyYet: () => "No key is pinned yet: check the log first.",
      entriesFlagged: (bad, n) => `FLAGGED: ${bad} of ${n} entries are not in the signed log.`,
      entriesVerified: (ok, n) => `${ok} of ${n} entries verified.`,
      summaryFlagged: (n) => `FLAGGED: ${n} check${n > 1 ? "s" : ""} failed. Do not rely on this log until the trustee explains.`,
      summaryVerified: () => "Verified: nothing wrong found.",
      giveUrl: () => "Give the log's URL, e.g. https://trustee.example:9001/log",
    },
    de: {
      keyPinned: (k) => `Es war kein Schlüssel festgelegt: der Schlüssel, den das Protokoll jetzt ausliefert, ${k}, gilt ab jetzt. ` +
        "Vergleichen Sie ihn mit dem Schlüssel, den der Treuhänder veröffentlicht.",
      keyUnavailable: (k) => `Das Protokoll hat seinen Schlüssel nicht ausgeliefert; geprüft wird mit dem festgelegten Schlüssel ${k}.`,
      keyChanged: (served, k) => `SCHLÜSSEL GEÄNDERT (KEY CHANGED): das Protokoll liefert jetzt den Schlüssel ${served} aus, nicht den festgelegten Schlüssel ${k}. ` +
        "Ein Protokollschlüssel ändert sich nie stillschweigend: alles Folgende wird mit dem festgelegten Schlüssel geprüft. " +
        "Fragen Sie den Treuhänder nach dem Grund, bevor Sie einen anderen Schlüssel festlegen.",
      keyMatches: (k) => `Das Protokoll liefert den festgelegten Schlüssel ${k} aus.`,
      keyUnusable: (d) => "Der Protokollschlüssel ist nicht verwendbar: " + d,
      checkpointVerified: (size, root) => `Checkpoint geprüft: mit dem festgelegten Schlüssel signiert; ${size} Einträge, Wurzel ${root}.`,
      checkpointAltered: (d) => "CHECKPOINT VERÄNDERT (CHECKPOINT ALTERED): " + d + ".",
      checkpointNotSigned: (d) => "CHECKPOINT NICHT MIT DEM FESTGELEGTEN SCHLÜSSEL SIGNIERT (NOT SIGNED BY THE PINNED KEY): " + d +
        ". Jemand anderes als das Protokoll hat ihn signiert, oder der Schlüssel des Protokolls wurde ersetzt.",
      wrongLog: (d) => "FALSCHES PROTOKOLL (WRONG LOG): " + d + ".",
      checkpointMalformed: (d) => "CHECKPOINT FEHLERHAFT (CHECKPOINT MALFORMED): " + d + ".",
      checkpointUnchecked: (d) => "Der Checkpoint konnte nicht geprüft werden: " + d,
      tilesMatch: (size) => `Die Hash-Kacheln des Protokolls ergeben die signierte Wurzel für ${size} Einträge.`,
      tilesAltered: (got, root) => `KACHELN VERÄNDERT (TILES ALTERED): die Hash-Kacheln ergeben die Wurzel ${got}, nicht die signierte Wurzel ${root}: ` +
        "das Protokoll liefert Baum-Hashes aus, für die sein signierter Checkpoint nicht bürgt.",
      tilesUnreadable: (d) => "Die Hash-Kacheln können nicht gelesen werden: " + d,
      noVerifiedCheckpoint: () => "Nicht geprüft: kein bestätigter Checkpoint.",
      noKept: (hasCheckpoint) => "Von einem früheren Besuch ist kein Checkpoint aufbewahrt: " +
        (hasCheckpoint ? "dieser wird jetzt aufbewahrt, und die nächste Prüfung beweist, dass das Protokoll seitdem nur gewachsen ist."
          : "keiner wird aufbewahrt."),
      currentDidNotVerify: () => "Nicht geprüft: der aktuelle Checkpoint hat die Prüfung nicht bestanden.",
      rolledBack: (old, now) => `PROTOKOLL ZURÜCKGESETZT (LOG ROLLED BACK): der aufbewahrte Checkpoint hat ${old} Einträge, das Protokoll jetzt nur ${now}. ` +
        "Ein Protokoll wächst nur: Einträge, die Ihnen gezeigt wurden, fehlen, oder Ihnen wird ein anderes Protokoll gezeigt.",
      forked: (size, a, b) => `PROTOKOLL GESPALTEN (LOG FORKED): der aufbewahrte und der aktuelle Checkpoint haben beide ${size} Einträge, aber verschiedene Wurzeln ` +
        `(${a} und ${b}): das Protokoll hat zwei verschiedene Verläufe signiert.`,
      unchanged: (size) => `Das Protokoll ist seit dem aufbewahrten Checkpoint unverändert (${size} Einträge).`,
      fromEmpty: (size) => `Der aufbewahrte Checkpoint war der des leeren Protokolls; jetzt hat es ${size} Einträge.`,
      consistent: (from, to) => `Konsistenz geprüft: das aufbewahrte Protokoll mit ${from} Einträgen ist der Anfang des aktuellen Protokolls mit ${to} Einträgen; nichts wurde geändert oder entfernt.`,
      notAppendOnly: (from, to) => `NICHT NUR ANGEHÄNGT (NOT APPEND-ONLY): der Konsistenzbeweis von den aufbewahrten ${from} Einträgen zu den aktuellen ${to} besteht die Prüfung ` +
        "gegen die beiden signierten Wurzeln nicht: der Verlauf des Protokolls wurde umgeschrieben, oder seine Kacheln sind verändert.",
      keptUnusable: (d) => "Der aufbewahrte Checkpoint ist nicht verwendbar: " + d,
      entryUnchecked: (i) => `Eintrag ${i}: nicht geprüft, kein bestätigter Checkpoint.`,
      notAnIndex: (i) => `Eintrag ${i}: kein Index.`,
      entryBeyond: (i, size) => `Eintrag ${i}: nach dem Checkpoint (${size} Einträge) angehängt; später erneut prüfen.`,
      entryIncluded: (i, size) => `Eintrag ${i}: Aufnahme in das signierte Protokoll mit ${size} Einträgen geprüft.`,
      entryNotInLog: (i) => `EINTRAG NICHT IM PROTOKOLL (ENTRY NOT IN THE LOG): Eintrag ${i} wie gezeigt ist nicht der Eintrag, den der signierte Checkpoint an Stelle ${i} hält ` +
        "(sein Aufnahmebeweis schlägt fehl): der Eintrag oder die Kacheln des Protokolls wurden verändert.",
      entryError: (i, d) => `Eintrag ${i}: kann nicht geprüft werden: ${d}`,
      entryCheckpointFails: (i, d) => `Eintrag ${i}: der aktuelle Checkpoint besteht die Prüfung nicht (${d}).`,
      couldNotRun: (d) => "Die Prüfung konnte nicht laufen: " + d,
      noKeyYet: () => "Noch kein Schlüssel festgelegt: prüfen Sie zuerst das Protokoll.",
      entriesFlagged: (bad, n) => `BEANSTANDET (FLAGGED): ${bad} von ${n} Einträgen sind nicht im signierten Protokoll.`,
      entriesVerified: (ok, n) => `${ok} von ${n} Einträgen geprüft.`,
      summaryFlagged: (n) => `BEANSTANDET (FLAGGED): ${n} ${n > 1 ? "Prüfungen" : "Prüfung"} fehlgeschlagen. Verlassen Sie sich nicht auf dieses Protokoll, bis der Treuhänder es erklärt.`,
      summaryVerified: () => "Geprüft: nichts Falsches gefunden.",
      giveUrl: () => "Geben Sie die URL des Protokolls an, z. B. https://trustee.example:9001/log",
    },
  };

  /** The messages of language `lang` ("de", "de-AT", ...; English for any other). */
  function messages(lang) {
    return String(lang || "").toLowerCase().split("-")[0] === "de" ? MESSAGES.de : MESSAGES.en;
  }

  function check(name, state, code, message, extra) {
    return Object.assign({ check: name, state, code, message }, extra || {});
  }

  function describe(e) {
    return e instanceof VerifyError ? e : new VerifyError("error", String(e && e.message ? e.message : e));
  }

  /**
   * The whole check, trusting only `pinnedKey` (or, if none is pinned yet, the key the log
   * serves now, which is then pinned):
   *   key          the log's served key against the pinned one,
   *   checkpoint   the current checkpoint's signature by the pinned key,
   *   tiles        the root the hash tiles give against the signed root,
   *   consistency  the kept checkpoint (if any) against the current one,
   *   inclusion    each of `entries` ({index, entry}) against the signed root.
   * Returns { checks, ok, pinnedKey, checkpoint (verified, or null), keep (the note to keep:
   * the current one if every check passed, else the kept one) }.
   */
  async function audit({ log, pinnedKey, kept, entries, lang }) {
    const say = messages(lang);
    const checks = [];
    let vk = null;
    let served = null;
    try {
      served = (await log.text("key")).trim();
    } catch (e) {
      served = null;
    }
    const pinnedText = pinnedKey && pinnedKey.trim() ? pinnedKey.trim() : null;
    try {
      vk = await parseVerifierKey(pinnedText || served || "");
      if (!pinnedText) {
        checks.push(check("key", "note", "key-pinned", say.keyPinned(vk.text)));
      } else if (served === null) {
        checks.push(check("key", "note", "key-unavailable", say.keyUnavailable(vk.text)));
      } else if (served !== vk.text) {
        checks.push(check("key", "flagged", "key-changed", say.keyChanged(served, vk.text)));
      } else {
        checks.push(check("key", "ok", "key-matches", say.keyMatches(vk.text)));
      }
    } catch (e) {
      const err = describe(e);
      checks.push(check("key", "flagged", err.code, say.keyUnusable(err.message)));
      return { checks, ok: false, pinnedKey: pinnedText, checkpoint: null, keep: kept || null };
    }

    // The current checkpoint.
    let cp = null;
    try {
      const note = await log.text("checkpoint");
      cp = await verifyCheckpoint(note, vk);
      checks.push(check("checkpoint", "ok", "verified", say.checkpointVerified(cp.size, cp.rootB64),
        { size: cp.size, root: cp.rootB64 }));
    } catch (e) {
      const err = describe(e);
      const words = {
        "bad-signature": say.checkpointAltered,
        "not-signed": say.checkpointNotSigned,
        "origin-mismatch": say.wrongLog,
        "malformed": say.checkpointMalformed,
      };
      checks.push(check("checkpoint", "flagged", err.code, (words[err.code] || say.checkpointUnchecked)(err.message)));
    }

    let tree = null;
    if (cp) {
      tree = new TileTree(cp.size, (p) => log.bytes(p));
      try {
        const r = await tree.root();
        if (equal(r, cp.root)) {
          checks.push(check("tiles", "ok", "tiles-match", say.tilesMatch(cp.size)));
        } else {
          checks.push(check("tiles", "flagged", "tiles-mismatch", say.tilesAltered(b64encode(r), cp.rootB64)));
        }
      } catch (e) {
        const err = describe(e);
        checks.push(check("tiles", "flagged", err.code, say.tilesUnreadable(err.message)));
      }
    } else {
      checks.push(check("tiles", "note", "skipped", say.noVerifiedCheckpoint()));
    }

    // Consistency with the kept checkpoint.
    let consistent = true;
    if (!kept || !kept.trim()) {
      checks.push(check("consistency", "note", "no-kept", say.noKept(Boolean(cp))));
    } else if (!cp) {
      consistent = false;
      checks.push(check("consistency", "note", "skipped", say.currentDidNotVerify()));
    } else {
      consistent = false;
      try {
        const old = await verifyCheckpoint(kept.replace(/\r\n/g, "\n").replace(/\n*$/, "\n"), vk);
        if (old.size > cp.size) {
          checks.push(check("consistency", "flagged", "rollback", say.rolledBack(old.size, cp.size)));
        } else if (old.size === cp.size && !equal(old.root, cp.root)) {
          checks.push(check("consistency", "flagged", "fork", say.forked(cp.size, old.rootB64, cp.rootB64)));
        } else if (old.size === cp.size) {
          consistent = true;
          checks.push(check("consistency", "ok", "same", say.unchanged(cp.size)));
        } else if (old.size === 0) {
          consistent = true;
          checks.push(check("consistency", "ok", "consistent", say.fromEmpty(cp.size)));
        } else {
          const proof = await tree.consistencyProof(old.size);
          if (await verifyConsistency(old.size, cp.size, proof, old.root, cp.root)) {
            consistent = true;
            checks.push(check("consistency", "ok", "consistent", say.consistent(old.size, cp.size),
              { from: old.size, to: cp.size }));
          } else {
            checks.push(check("consistency", "flagged", "not-consistent", say.notAppendOnly(old.size, cp.size)));
          }
        }
      } catch (e) {
        const err = describe(e);
        const code = ["bad-signature", "not-signed", "malformed", "origin-mismatch"].includes(err.code) ? "kept-" + err.code : err.code;
        checks.push(check("consistency", "flagged", code, say.keptUnusable(err.message)));
      }
    }

    // Inclusion of entries.
    for (const item of entries || []) {
      checks.push(await inclusionCheck(tree, cp, item, say));
    }

    const ok = checks.every((c) => c.state !== "flagged");
    const keep = cp && ok && consistent ? cp.note : (kept || null);
    return { checks, ok, pinnedKey: vk.text, checkpoint: cp, keep };
  }

  /** Checks that `item` ({index, entry}) is in the tree of checkpoint `cp` (read from `tree`). */
  async function inclusionCheck(tree, cp, item, say) {
    const index = Number(item.index);
    const extra = { index };
    if (!cp || !tree) return check("inclusion", "note", "skipped", say.entryUnchecked(index), extra);
    if (!Number.isSafeInteger(index) || index < 0) return check("inclusion", "flagged", "bad-index", say.notAnIndex(item.index), extra);
    if (index >= cp.size) return check("inclusion", "note", "beyond-checkpoint", say.entryBeyond(index, cp.size), extra);
    try {
      const leaf = await leafHash(item.entry);
      const proof = await tree.inclusionProof(index);
      if (await verifyInclusion(leaf, index, cp.size, proof, cp.root)) {
        return check("inclusion", "ok", "included", say.entryIncluded(index, cp.size), extra);
      }
      return check("inclusion", "flagged", "not-included", say.entryNotInLog(index), extra);
    } catch (e) {
      const err = describe(e);
      return check("inclusion", "flagged", err.code, say.entryError(index, err.message), extra);
    }
  }

  /**
   * Inclusion of `items` against the current checkpoint (fetched and verified again with the
   * pinned key): for a button that checks entries after the page's audit.
   */
  async function checkInclusion({ log, pinnedKey, items, lang }) {
    const say = messages(lang);
    const vk = await parseVerifierKey(pinnedKey);
    let cp;
    try {
      cp = await verifyCheckpoint(await log.text("checkpoint"), vk);
    } catch (e) {
      const err = describe(e);
      return items.map((it) => check("inclusion", "flagged", "checkpoint-" + err.code,
        say.entryCheckpointFails(it.index, err.message), { index: Number(it.index) }));
    }
    const tree = new TileTree(cp.size, (p) => log.bytes(p));
    const out = [];
    for (const it of items) out.push(await inclusionCheck(tree, cp, it, say));
    return out;
  }

  // ------------------------------------------------------------------ browser storage

  /** What this browser keeps: pinned keys per log URL, the last good checkpoint per origin. */
  const store = {
    pinnedKey(logUrl) {
      return globalThis.localStorage ? localStorage.getItem("obhut-verify.key:" + logUrl) : null;
    },
    pin(logUrl, vkey) {
      if (globalThis.localStorage) localStorage.setItem("obhut-verify.key:" + logUrl, vkey);
    },
    kept(origin) {
      return globalThis.localStorage && origin ? localStorage.getItem("obhut-verify.checkpoint:" + origin) : null;
    },
    keep(origin, note) {
      if (globalThis.localStorage && origin) localStorage.setItem("obhut-verify.checkpoint:" + origin, note);
    },
  };

  /** Renders `checks` into list `ul` (one item per check, its state and code as data attributes). */
  function render(ul, checks) {
    ul.textContent = "";
    for (const c of checks) {
      const li = document.createElement("li");
      li.dataset.check = c.check;
      li.dataset.state = c.state;
      li.dataset.code = c.code;
      if (c.index !== undefined) li.dataset.index = String(c.index);
      li.className = "check " + c.state;
      const badge = document.createElement("strong");
      badge.textContent = c.state === "ok" ? "\u2713 " : c.state === "flagged" ? "\u2717 " : "\u2022 ";
      li.append(badge, c.message);
      ul.append(li);
    }
  }

  return {
    VerifyError, b64decode, b64encode, hex, leafHash, nodeHash, parseVerifierKey, openNote,
    parseCheckpointBody, verifyCheckpoint, verifyInclusion, verifyConsistency, encodeTileIndex,
    tilePath, TileTree, httpLog, audit, checkInclusion, store, render, messages,
  };
});

"""The report of scripts/bench-catalog: the block between the `catalog-bench` markers of
benchmarks.md, from the JSON records of one run (obhut-bench walk and s3 records, and the
gateways' resident memory). Parts that were not run are left out of the block."""

import glob
import json
import os
import statistics
import sys

LIST_TARGET = 50_000
VERSIONING_TARGET = 0.9
CATALOGS_TARGET = 0.7
START = "<!-- catalog-bench:start"
END = "<!-- catalog-bench:end -->"


def load(path):
    with open(path) as f:
        return json.load(f)


def walks(results, listing, server):
    out = []
    for path in sorted(glob.glob(os.path.join(results, f"walk-{listing}-{server}-*.json"))):
        out.extend(load(path)["walks"])
    return out


def fmt(n):
    return f"{n:,.0f}"


def walk_table(results, listing, servers, what):
    lines = [
        f"| catalog | {what}/s, walk by walk | median | page p50 / p99 | target ≥ {LIST_TARGET:,} |",
        "|---|---|---|---|---|",
    ]
    for server in servers:
        w = walks(results, listing, server)
        if not w:
            continue
        rates = [x["entries_per_s"] for x in w]
        med = statistics.median(rates)
        p50 = statistics.median(x["page_latency"]["p50_ms"] for x in w)
        p99 = max(x["page_latency"]["p99_ms"] for x in w)
        name = "embedded (SQLite)" if server == "embedded" else "PostgreSQL"
        verdict = "met" if med >= LIST_TARGET else "**not met**"
        lines.append(
            f"| {name} | {' / '.join(fmt(r) for r in rates)} | **{fmt(med)}** | "
            f"{p50:.1f} ms / {p99:.1f} ms | {verdict} |"
        )
    return lines


def fills(results, bucket):
    out = []
    for path in sorted(glob.glob(os.path.join(results, f"fill-*-{bucket}.json"))):
        r = load(path)
        out.append(f"{r['target']} {fmt(r['results']['ops_per_s'])} PUTs/s")
    return ", ".join(out)


def main():
    results, out, commit, load_start, load_end, keys, versions, rounds, duration, pg, note = sys.argv[1:]
    keys, versions = int(keys), int(versions)
    servers = ["embedded"] + (["postgres"] if pg else [])
    catalogs = "the embedded catalog" + (f" and PostgreSQL {pg}" if pg else "")
    lines = [
        "<!-- catalog-bench:start (written by scripts/bench-catalog; rerun it rather than edit) -->",
        f"A run of `scripts/bench-catalog` (work tree at {commit}): `obhut serve` on "
        + catalogs
        + (" (Debian's package, a fresh cluster on loopback, default settings, `fsync` on)" if pg else "")
        + f", client and servers on this machine's {os.cpu_count()} cores; "
        f"load average {load_start} at the start, {load_end} at the end. Only figures of this run compare."
        + (f" {note}" if note else ""),
    ]
    if walks(results, "objects", "embedded"):
        lines += [
            "",
            f"**LIST of a {keys:,}-key bucket**: the whole bucket walked with ListObjectsV2 pages of 1,000 "
            f"through S3, one page after another, {rounds} walks per catalog alternating "
            f"(bucket filled with 1-byte objects by concurrent S3 PUTs: {fills(results, 'list')}).",
            "",
        ] + walk_table(results, "objects", servers, "keys")
    ab = {
        (op, name): [load(p) for p in sorted(glob.glob(os.path.join(results, f"ab-{op}-{name}-*.json")))]
        for op in ("put", "get")
        for name in ("embedded", "postgres")
    }
    if any(ab.values()):
        lines += [
            "",
            f"**PostgreSQL against the embedded catalog**: 4 KiB objects, 16 connections, {duration} s runs "
            f"over 1,000 keys, {rounds} rounds, the order reversed every other round.",
            "",
            f"| 4 KiB | embedded: ops/s per round | PostgreSQL: ops/s per round | p50 ms (embedded / PostgreSQL) | ratio of means | target ≥ {CATALOGS_TARGET} |",
            "|---|---|---|---|---|---|",
        ]
        for op in ("put", "get"):
            e, g = ab[(op, "embedded")], ab[(op, "postgres")]
            if not e or not g:
                continue
            me = statistics.mean(r["results"]["ops_per_s"] for r in e)
            mg = statistics.mean(r["results"]["ops_per_s"] for r in g)
            pe = statistics.median(r["results"]["latency"]["p50_ms"] for r in e)
            pg50 = statistics.median(r["results"]["latency"]["p50_ms"] for r in g)
            ratio = mg / me
            errors = sum(r["results"]["errors"] for r in e + g)
            verdict = "met" if ratio >= CATALOGS_TARGET else "**not met**"
            lines.append(
                f"| {op.upper()} | {' / '.join(fmt(r['results']['ops_per_s']) for r in e)} | "
                f"{' / '.join(fmt(r['results']['ops_per_s']) for r in g)} | "
                f"{pe:.1f} / {pg50:.1f} | **{ratio:.2f}** | {verdict}"
                + (f" ({errors} errors)" if errors else "")
                + " |"
            )
    ver = sorted(glob.glob(os.path.join(results, "ver-*-*-*.json")))
    if ver:
        lines += [
            "",
            f"**Versioned bucket against unversioned**, embedded catalog: 4 KiB objects, 16 connections, "
            f"{duration} s runs over 1,000 keys (PUTs add a version per request on the versioned bucket), "
            f"{rounds} rounds, the order reversed every other round.",
            "",
            f"| 4 KiB | unversioned: ops/s per round | versioned: ops/s per round | p50 ms (unversioned / versioned) | ratio of means | target ≥ {VERSIONING_TARGET} |",
            "|---|---|---|---|---|---|",
        ]
        for op in ("put", "get"):
            side = {}
            for v in ("off", "on"):
                recs = [load(p) for p in sorted(glob.glob(os.path.join(results, f"ver-{op}-{v}-*.json")))]
                side[v] = recs
            if not side["off"] or not side["on"]:
                continue
            mean = {v: statistics.mean(r["results"]["ops_per_s"] for r in side[v]) for v in side}
            p50 = {v: statistics.median(r["results"]["latency"]["p50_ms"] for r in side[v]) for v in side}
            ratio = mean["on"] / mean["off"]
            errors = sum(r["results"]["errors"] for v in side for r in side[v])
            verdict = "met" if ratio >= VERSIONING_TARGET else "**not met**"
            lines.append(
                f"| {op.upper()} | {' / '.join(fmt(r['results']['ops_per_s']) for r in side['off'])} | "
                f"{' / '.join(fmt(r['results']['ops_per_s']) for r in side['on'])} | "
                f"{p50['off']:.1f} / {p50['on']:.1f} | **{ratio:.2f}** | {verdict}"
                + (f" ({errors} errors)" if errors else "")
                + " |"
            )
    if walks(results, "versions", "embedded"):
        lines += [
            "",
            f"**ListObjectVersions of {versions:,} versions** ({versions // 10:,} keys, ten versions each): "
            f"walked with pages of 1,000, {rounds} walks per catalog alternating "
            f"(filled by concurrent S3 PUTs: {fills(results, 'versions')}).",
            "",
        ] + walk_table(results, "versions", servers, "versions")
    rss_path = os.path.join(results, "rss.jsonl")
    if os.path.exists(rss_path):
        rows = [json.loads(line) for line in open(rss_path)]
        parts = list(dict.fromkeys(r["part"] for r in rows))
        lines += [
            "",
            "Gateway resident memory (VmRSS) after each part: "
            + "; ".join(
                p + ": " + ", ".join(f"{r['server']} {r['rss_kib'] / 1024:.0f} MiB" for r in rows if r["part"] == p)
                for p in parts
            )
            + ".",
        ]
    lines.append(END)
    block = "\n".join(lines)
    print(block)
    if out != "-":
        path = os.path.join(out, "benchmarks.md")
        text = open(path).read()
        start, end = text.find(START), text.find(END)
        if start < 0 or end < 0:
            sys.exit(f"scripts/bench-catalog: {path} has no catalog-bench markers")
        text = text[:start] + block + text[end + len(END):]
        with open(path, "w") as f:
            f.write(text)
        print(f"written into {path}")


main()

"""The report of scripts/bench-catalog: the block between the `catalog-bench` markers of
benchmarks.md, from the JSON records of one run (obhut-bench walk and s3 records, and the
gateways' resident memory). Parts that were not run are left out of the block; a run of the
big part alone leaves that block as it is. The big part (a catalog of N records against one of
10,000) has its own block, between the `catalog-big-bench` markers, rewritten only by a run of
that part."""

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
BIG_START = "<!-- catalog-big-bench:start"
BIG_END = "<!-- catalog-big-bench:end -->"
BIG_BOUND = 2.0


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


def write_block(out, block, start_marker, end_marker):
    print(block)
    if out == "-":
        return
    path = os.path.join(out, "benchmarks.md")
    text = open(path).read()
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < 0:
        sys.exit(f"scripts/bench-catalog: {path} has no {start_marker[5:].split(':')[0]} markers")
    text = text[:start] + block + text[end + len(end_marker):]
    with open(path, "w") as f:
        f.write(text)
    print(f"written into {path}")


def ms_pair(p50, p99):
    return f"{p50:.2f} / {p99:.2f} ms"


def big_block(results, commit, load_start, load_end, rounds, duration, pg, note, small, big, objects, requests, fill_conc):
    """The block of the big part, or None if it was not run."""
    kinds = [k for k in ("postgres", "embedded") if glob.glob(os.path.join(results, f"big-get-{k}-big-*.json"))]
    if not kinds:
        return None
    name = {"postgres": f"PostgreSQL {pg}" if pg else "PostgreSQL", "embedded": "embedded (SQLite)"}
    lines = [
        "<!-- catalog-big-bench:start (written by scripts/bench-catalog --big; rerun it rather than edit) -->",
        f"A run of `scripts/bench-catalog --big {big}` (work tree at {commit}) on "
        + " and ".join(
            name[k] + (" (Debian's package, a fresh cluster on loopback, default settings, `fsync` on)" if k == "postgres" else "")
            for k in kinds
        )
        + f": on each, a gateway on a catalog of {small:,} records and one on a catalog of {big:,}; "
        f"client, servers and database on this machine's {os.cpu_count()} cores; load average {load_start} at the "
        f"start, {load_end} at the end. Only figures of this run compare."
        + (f" {note}" if note else ""),
        "",
        f"Each catalog holds the same {objects:,} real 4 KiB objects, written through S3 into bucket `real`, and "
        f"one in bucket `fill`; the rest of its records were written into `fill` through the catalog's API "
        f"(`fill_catalog`, an example of obhut-catalog, {fill_conc} writes in flight, the gateway stopped): records "
        "of no real blob, there only to make the catalog large, never read through S3. The requests address "
        f"`real`: 4 KiB GET (4 connections, {duration} s runs), and LIST of 1,000 keys — the first page, a page "
        "from the middle (`start-after`) and a prefix — each asked "
        f"{requests} times one after the other; {rounds} round(s), small and big alternating. Bound: the big "
        f"catalog's p50 and p99 within {BIG_BOUND:g}x of the small one's.",
        "",
        f"| catalog | request | {small:,} records: p50 / p99 | {big:,} records: p50 / p99 | ratio p50 / p99 | within {BIG_BOUND:g}x |",
        "|---|---|---|---|---|---|",
    ]

    def get_lat(kind, size):
        recs = [load(p) for p in sorted(glob.glob(os.path.join(results, f"big-get-{kind}-{size}-*.json")))]
        return (
            statistics.median(r["results"]["latency"]["p50_ms"] for r in recs),
            max(r["results"]["latency"]["p99_ms"] for r in recs),
            sum(r["results"]["errors"] for r in recs),
        )

    def list_lat(kind, what, size):
        recs = [load(p) for p in sorted(glob.glob(os.path.join(results, f"big-list-{what}-{kind}-{size}-*.json")))]
        return (
            statistics.median(r["page_latency"]["p50_ms"] for r in recs),
            max(r["page_latency"]["p99_ms"] for r in recs),
            0,
        )

    for kind in kinds:
        for label, lat in [
            ("GET 4 KiB", lambda k, s: get_lat(k, s)),
            ("LIST first page", lambda k, s: list_lat(k, "first", s)),
            ("LIST middle page (start-after)", lambda k, s: list_lat(k, "middle", s)),
            ("LIST prefix", lambda k, s: list_lat(k, "prefix", s)),
        ]:
            s50, s99, se = lat(kind, "small")
            b50, b99, be = lat(kind, "big")
            r50, r99 = b50 / max(s50, 1e-9), b99 / max(s99, 1e-9)
            verdict = "yes" if r50 <= BIG_BOUND and r99 <= BIG_BOUND else "**no**"
            errors = f" ({se + be} errors)" if se + be else ""
            lines.append(
                f"| {name[kind]} | {label} | {ms_pair(s50, s99)} | {ms_pair(b50, b99)} | "
                f"**{r50:.2f}** / {r99:.2f} | {verdict}{errors} |"
            )
    lines += [
        "",
        "The catalog's own calls on bucket `fill` (`fill_catalog --probe`, no gateway, the gateway stopped): "
        f"`get_object` of keys spread over the bucket and `list_objects` pages of 1,000, {requests} times each; "
        "the big bucket holds nearly every record of its catalog.",
        "",
        f"| catalog | call | bucket of {small - objects - 1:,}: p50 / p99 | bucket of {big - objects - 1:,}: p50 / p99 | ratio p50 |",
        "|---|---|---|---|---|",
    ]
    for kind in kinds:
        ps, pb = (os.path.join(results, f"big-probe-{kind}-{s}.json") for s in ("small", "big"))
        if not (os.path.exists(ps) and os.path.exists(pb)):
            continue
        small_p, big_p = load(ps), load(pb)
        for call, label in [
            ("get_object", "`get_object`"),
            ("list_first_page", "`list_objects`, first page"),
            ("list_middle_page", "`list_objects`, from the middle"),
            ("list_prefix", "`list_objects`, a prefix"),
        ]:
            a, b = small_p[call], big_p[call]
            lines.append(
                f"| {name[kind]} | {label} | {ms_pair(a['p50_ms'], a['p99_ms'])} | "
                f"{ms_pair(b['p50_ms'], b['p99_ms'])} | {b['p50_ms'] / max(a['p50_ms'], 1e-9):.2f} |"
            )
    fill_parts = []
    for kind in kinds:
        for size in ("small", "big"):
            path = os.path.join(results, f"big-fill-{kind}-{size}.json")
            if os.path.exists(path):
                f = load(path)
                fill_parts.append(
                    f"{name[kind]}, {size}: {f['records']:,} records in {f['seconds']:,.0f} s ({fmt(f['records_per_s'])}/s)"
                )
    if fill_parts:
        lines += ["", "Fill through the catalog's API: " + "; ".join(fill_parts) + "."]
    rss_path = os.path.join(results, "big-rss.jsonl")
    if os.path.exists(rss_path):
        rows = [json.loads(line) for line in open(rss_path)]

        def rss(server, part):
            v = [r["rss_kib"] for r in rows if r["server"] == server and r["part"] == part]
            return v[-1] / 1024 if v else None

        up_path = os.path.join(results, "big-startup.jsonl")
        up = {}
        if os.path.exists(up_path):
            up = {r["server"]: r["listening_after_s"] for r in (json.loads(line) for line in open(up_path))}
        lines += [
            "",
            "| catalog | gateway listening after (restarted on the filled catalog): small / big | RSS after start: small / big | after the measurements: small / big | big / small after |",
            "|---|---|---|---|---|",
        ]
        for kind in kinds:
            ss, bs = rss(f"{kind}-small", "big-started"), rss(f"{kind}-big", "big-started")
            sm, bm = rss(f"{kind}-small", "big-measured"), rss(f"{kind}-big", "big-measured")
            if None in (ss, bs, sm, bm):
                continue
            started = " / ".join(f"{up[f'{kind}-{z}']} s" if f"{kind}-{z}" in up else "?" for z in ("small", "big"))
            lines.append(
                f"| {name[kind]} | {started} | {ss:.0f} / {bs:.0f} MiB | {sm:.0f} / {bm:.0f} MiB | **{bm / sm:.2f}** |"
            )
    lines.append(BIG_END)
    return "\n".join(lines)


def main():
    (results, out, commit, load_start, load_end, keys, versions, rounds, duration, pg, note,
     small, big, objects, requests, fill_conc) = sys.argv[1:]
    keys, versions = int(keys), int(versions)
    block = big_block(results, commit, load_start, load_end, rounds, duration, pg, note,
                      int(small), int(big), int(objects), int(requests), fill_conc)
    if block:
        write_block(out, block, BIG_START, BIG_END)
    if not (glob.glob(os.path.join(results, "walk-*.json")) or glob.glob(os.path.join(results, "ver-*.json"))):
        return
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
    write_block(out, "\n".join(lines), START, END)


main()

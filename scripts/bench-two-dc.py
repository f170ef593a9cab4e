"""The report of scripts/bench-two-dc: the block between the `two-dc-bench` markers of
benchmarks.md, from the obhut-bench records of one run (one directory `rtt-N` per added round
trip N between the datacenters, each with the deployment's `status.txt`)."""

import glob
import json
import os
import re
import sys

START = "<!-- two-dc-bench:start"
END = "<!-- two-dc-bench:end -->"
GATEWAYS = [("gw-dc1a", "dc1"), ("gw-dc1b", "dc1"), ("gw-dc2", "dc2")]


def load(path):
    with open(path) as f:
        return json.load(f)["results"]


def rtts(results):
    found = []
    for d in glob.glob(os.path.join(results, "rtt-*")):
        try:
            found.append(int(os.path.basename(d)[4:]))
        except ValueError:
            pass
    return sorted(found)


def rec(results, rtt, name):
    path = os.path.join(results, f"rtt-{rtt}", f"{name}.json")
    return load(path) if os.path.exists(path) else None


def probe(results, rtt):
    try:
        with open(os.path.join(results, f"rtt-{rtt}", "status.txt")) as f:
            m = re.search(r"probe dc1 -> dc2: rtt to \S+ min/median/max = ([\d.]+)/([\d.]+)/([\d.]+) ms", f.read())
    except OSError:
        return None
    return float(m.group(2)) if m else None


def p50(r):
    return (r.get("latency") or {}).get("p50_ms", 0.0)


def main():
    results, out, commit, load_start, load_end, duration, note = sys.argv[1:]
    levels = rtts(results)
    if not levels:
        sys.exit("scripts/bench-two-dc: no records")
    shown = " and ".join(f"{n} ms" for n in levels)
    lines = [
        "<!-- two-dc-bench:start (written by scripts/bench-two-dc; rerun it rather than edit) -->",
        f"A run of `scripts/bench-two-dc` (work tree at {commit}): `scripts/two-dc up` once for each "
        f"added round trip between the datacenters ({shown}), every process of both datacenters and "
        f"the clients on this machine's {os.cpu_count()} cores; each run {duration} s; load average "
        f"{load_start} at the start, {load_end} at the end. Only figures of this run compare."
        + (f" {note}" if note else ""),
        "",
        "Measured round trip dc1 → dc2 (ICMP through the delayed link, median): "
        + ", ".join(
            f"{probe(results, n):.1f} ms with {n} ms added" if probe(results, n) is not None else f"not probed at {n} ms"
            for n in levels
        )
        + ".",
        "",
        "**One request at a time, 4 KiB, through each gateway** (p50 latency, ms):",
        "",
        "| gateway | op | " + " | ".join(f"{n} ms added" for n in levels) + " | round trips between the datacenters |",
        "|---|---|" + "---|" * len(levels) + "---|",
    ]
    low, high = levels[0], levels[-1]
    for gw, dc in GATEWAYS:
        for op in ("put", "get"):
            rs = [rec(results, n, f"{op}-4k-c1-{gw}") for n in levels]
            cells = [f"{p50(r):.2f}" if r else "-" for r in rs]
            trips = "-"
            if high > low and rs[0] and rs[-1]:
                trips = f"{(p50(rs[-1]) - p50(rs[0])) / (high - low):.1f}"
            lines.append(f"| {gw} ({dc}) | {op.upper()} | " + " | ".join(cells) + f" | {trips} |")
    lines += [
        "",
        f"Round trips = (p50 at {high} ms − p50 at {low} ms) ÷ {high - low} ms: how many times one "
        "request waits for the other datacenter, measured rather than counted." if high > low else "",
        "",
        "**4 KiB PUT, 16 connections per gateway**:",
        "",
        "| through | " + " | ".join(f"{n} ms added: ops/s (p50)" for n in levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    one = [rec(results, n, "put-4k-c16-one") for n in levels]
    lines.append(
        "| gw-dc1a alone | "
        + " | ".join(f"{r['ops_per_s']:,.0f} ({p50(r):.1f} ms)" if r else "-" for r in one)
        + " |"
    )
    cells = []
    for n in levels:
        rs = [rec(results, n, f"put-4k-c16-three-{gw}") for gw, _ in GATEWAYS]
        rs = [r for r in rs if r]
        if not rs:
            cells.append("-")
            continue
        total = sum(r["ops_per_s"] for r in rs)
        each = " + ".join(f"{r['ops_per_s']:,.0f}" for r in rs)
        cells.append(f"{total:,.0f} = {each} ({', '.join(f'{p50(r):.1f}' for r in rs)} ms)")
    lines.append("| all three at once (dc1a + dc1b + dc2) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**64 MiB, 2 connections, through gw-dc1a** (MiB/s; each PUT writes one replica across the link):",
        "",
        "| op | " + " | ".join(f"{n} ms added" for n in levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for op in ("put", "get"):
        rs = [rec(results, n, f"{op}-64m") for n in levels]
        lines.append(
            f"| {op.upper()} | "
            + " | ".join(f"{r['throughput_mib_per_s']:,.1f} (p50 {p50(r) / 1000:.2f} s)" if r else "-" for r in rs)
            + " |"
        )
    errors = sum(
        load(p)["errors"] if "errors" in load(p) else 0 for p in glob.glob(os.path.join(results, "rtt-*", "*.json"))
    )
    lines += ["", f"Failed requests over the whole run: {errors}.", END]
    block = "\n".join(line for line in lines)

    if out == "-":
        print(block)
        return
    path = os.path.join(out, "benchmarks.md")
    with open(path) as f:
        text = f.read()
    if START not in text or END not in text:
        sys.exit(f"scripts/bench-two-dc: {path} has no two-dc-bench markers")
    before = text[: text.index(START)]
    after = text[text.index(END) + len(END) :]
    with open(path, "w") as f:
        f.write(before + block + after)
    print(f"wrote the two-datacenter block of {path}")


if __name__ == "__main__":
    main()

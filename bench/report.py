#!/usr/bin/env python3
"""Prints bench/run.sh's tables and the issue's targets from OUT/results.

    report.py OUT LIST_BYTES FILTERED_BYTES NOISY
"""
import csv
import json
import os
import statistics
import sys

out, list_bytes, filtered_bytes, noisy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
res = os.path.join(out, "results")

runs = {}
with open(os.path.join(res, "runs.tsv")) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        runs.setdefault((r["phase"], r["target"], int(r["conc"])), []).append(r)


def cell(phase, target, conc):
    rows = runs.get((phase, target, conc))
    if not rows:
        return None
    med = lambda k: statistics.median(float(r[k]) for r in rows)  # noqa: E731
    return {k: med(k) for k in ("rps", "p50_us", "p99_us", "errors", "non2xx", "cpu_proxy", "cpu_load", "cpu_others")}


targets = []  # (name, met, detail)
print(open(os.path.join(out, "machine.txt")).read().rstrip())
if noisy:
    print("WARNING: the machine was busy during some runs: numbers are noisy")

concs = sorted({c for (p, _, c) in runs if p == "call"})
if concs:
    print("\ntools/call POST (ours: bearer token + scope check), wrk -t1, medians of rounds")
    hdr = (f"{'conc':>4} | {'target':<6} | {'req/s':>9} | {'p50 µs':>7} | {'p99 µs':>7} | {'+p50 µs':>7} | "
           f"{'CPU0%':>5} | {'CPU1%':>5} | {'oth%':>4} | errors")
    print(hdr)
    print("-" * len(hdr))
    for c in concs:
        d = cell("call", "direct", c)
        for t in ("direct", "nginx", "ours"):
            x = cell("call", t, c)
            if not x:
                continue
            added = x["p50_us"] - d["p50_us"] if d and t != "direct" else 0
            print(f"{c:>4} | {t:<6} | {x['rps']:>9.0f} | {x['p50_us']:>7.0f} | {x['p99_us']:>7.0f} | "
                  f"{added:>7.0f} | {x['cpu_proxy']:>5.0f} | {x['cpu_load']:>5.0f} | {x['cpu_others']:>4.0f} | "
                  f"{x['errors']:.0f}/{x['non2xx']:.0f}")
        n, o = cell("call", "nginx", c), cell("call", "ours", c)
        if n and o and d:
            ratio = o["rps"] / n["rps"]
            add_n, add_o = n["p50_us"] - d["p50_us"], o["p50_us"] - d["p50_us"]
            print(f"{c:>4} | ours/nginx: req/s x{ratio:.2f}, p50 x{o['p50_us'] / n['p50_us']:.2f}, "
                  f"p99 x{o['p99_us'] / n['p99_us']:.2f}; added p50: ours {add_o:.0f} µs, nginx {add_n:.0f} µs")
            targets.append((f"tools/call c={c}: throughput >= 1.0 x nginx", ratio >= 1.0, f"x{ratio:.2f}"))
            targets.append((f"tools/call c={c}: added p50 <= nginx's", add_o <= add_n,
                            f"ours +{add_o:.0f} µs vs nginx +{add_n:.0f} µs"))
    print("(+p50: p50 minus direct's p50. CPU0%: busy time of the proxies' CPU; CPU1%: of the upstream's and wrk's;\n"
          " oth%: CPU time of other processes during the run, in % of one CPU)")

if runs.get(("list", "ours", 1)):
    print(f"\ntools/list of 2,000 tools ({list_bytes} bytes; ours filters it to {filtered_bytes} bytes), concurrency 1")
    for t in ("direct", "nginx", "ours"):
        x = cell("list", t, 1)
        if x:
            mbs = x["rps"] * list_bytes / 1e6
            print(f"  {t:<6} {x['rps']:>7.1f} lists/s = {mbs:>7.1f} MB/s of list   p50 {x['p50_us'] / 1000:.2f} ms   "
                  f"p99 {x['p99_us'] / 1000:.2f} ms   CPU0 {x['cpu_proxy']:.0f}%")
    x = cell("list", "ours", 1)
    mbs = x["rps"] * list_bytes / 1e6
    targets.append(("tools/list filtered >= 300 MB/s at c=1", mbs >= 300, f"{mbs:.0f} MB/s"))


def read_kv(path):
    d = {"calls": {}}
    for line in open(path):
        k, _, v = line.strip().partition("=")
        if k == "total_Ir":
            d["ir"] = int(v)
        elif k == "calls":
            n, _, name = v.partition(" ")
            d["calls"][name] = int(n)
    return d


same, fresh = os.path.join(res, "cache-same.txt"), os.path.join(res, "cache-fresh.txt")
if os.path.exists(same) and os.path.exists(fresh):
    s, f = read_kv(same), read_kv(fresh)
    n = 200

    def verifies(d):  # calls of the proxy's signature check, and of ring's Ed25519 core
        own = sum(v for k, v in d["calls"].items() if k.endswith("verify_signature"))
        ring = sum(v for k, v in d["calls"].items() if k.startswith("ring_core") and "double_scalarmult" in k)
        return own, ring

    print(f"\nverified-token cache (proxy under callgrind, {n} tools/call requests each)")
    for label, d in (("same token", s), ("fresh tokens", f)):
        own, ring = verifies(d)
        print(f"  {label:<13} {d['ir'] / n:>8.0f} instructions/request   signature checks: {own} "
              f"(Ed25519 verifications in ring: {ring})")
    (so, sr), (fo, fr) = verifies(s), verifies(f)
    targets.append(("repeated token: no signature verification", so == 0 and sr == 0 and fo >= n,
                    f"{so} for {n} requests with one token, {fo} for {n} fresh tokens; "
                    f"{s['ir'] / n:.0f} vs {f['ir'] / n:.0f} instructions/request"))

sse_direct = os.path.join(res, "sse-direct.json")
for proto in ("h1", "h2"):
    p = os.path.join(res, f"sse-{proto}.json")
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        continue
    r = json.loads(open(p).read().strip().splitlines()[-1])
    conn = "one HTTP/1.1 connection each" if proto == "h1" else "HTTP/2, 250 per connection"
    print(f"\n{r['streams']} idle SSE streams through the proxy ({conn}), {r['opened']} open after {r['open_s']:.1f} s")
    print(f"  proxy RSS {r['rss_before_kb'] / 1024:.1f} MiB -> {r['rss_after_kb'] / 1024:.1f} MiB: "
          f"{r['rss_per_stream_kb']:.1f} KB per stream")
    pr = r["probe"]
    print(f"  event upstream -> client, one stream at a time ({pr['received']}/{pr['sent']}): "
          f"p50 {pr['p50_us']:.0f} µs, p90 {pr['p90_us']:.0f} µs, p99 {pr['p99_us']:.0f} µs, max {pr['max_us']:.0f} µs")
    b = r["broadcast"]
    if b["received"]:
        print(f"  one event to all {b['written']} streams at once: {b['received']} arrived, the last after "
              f"{b['last_us'] / 1000:.1f} ms (p50 {b['p50_us'] / 1000:.1f} ms; the upstream's own writes took "
              f"{b['upstream_write_all_us'] / 1000:.1f} ms)")
    targets.append((f"SSE {proto} ({r['streams']} streams): RSS <= 40 KB/stream", r["rss_per_stream_kb"] <= 40,
                    f"{r['rss_per_stream_kb']:.1f} KB"))
    targets.append((f"SSE {proto} ({r['streams']} streams): event p99 < 1 ms", pr["p99_us"] < 1000,
                    f"{pr['p99_us']:.0f} µs"))
if os.path.exists(sse_direct) and os.path.getsize(sse_direct) > 0:
    r = json.loads(open(sse_direct).read().strip().splitlines()[-1])
    pr = r["probe"]
    print(f"\n(baseline without proxy, {r['streams']} streams, upstream end -> client end directly: "
          f"p50 {pr['p50_us']:.0f} µs, p99 {pr['p99_us']:.0f} µs)")

print("\ntargets")
for name, met, detail in targets:
    print(f"  [{'met' if met else 'NOT MET'}] {name}: {detail}")

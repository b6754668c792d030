#!/usr/bin/env python3
"""Collects the measurements of scripts/bench.sh into results.json and results.md."""
import json
import os
import platform
import sys

out, command = sys.argv[1], sys.argv[2]


def load(name):
    path = os.path.join(out, name + ".json")
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    return json.loads(lines[-1])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


emb, raw, pg, fresh, replay = (load(n) for n in ("write_embedded", "raw_append", "write_postgres", "freshness", "replay"))
kafka = load("write_kafka")
with open(os.path.join(out, "raw_produce.txt")) as f:
    raw_produce = float(f.read().strip().rsplit("=", 1)[1])


def search(size):
    http, inproc, pgs = load(f"search_{size}_http"), load(f"search_{size}_inprocess"), load(f"search_{size}_pg")
    return {
        "products": inproc["products"],
        "clients": http["clients"],
        "qps": http["searches_per_s"],
        "p50_ms": http["search_p50_ms"],
        "p99_ms": http["search_p99_ms"],
        "inprocess_qps": inproc["inprocess_qps"],
        "inprocess_p50_ms": inproc["inprocess_p50_ms"],
        "inprocess_p99_ms": inproc["inprocess_p99_ms"],
        "postgres_qps": pgs["searches_per_s"],
        "postgres_p50_ms": pgs["search_p50_ms"],
        "postgres_p99_ms": pgs["search_p99_ms"],
    }


results = {
    "command": command,
    "machine": {"cores": os.cpu_count(), "cpu_model": cpu_model()},
    "write_embedded": {
        "clients": emb["clients"],
        "commands_per_s": emb["commands_per_s"],
        "p50_ms": emb["p50_ms"],
        "p99_ms": emb["p99_ms"],
        "p999_ms": emb["p999_ms"],
        "cpu_s_per_1000_commands": emb["cpu_s_per_1000_commands"],
        "raw_append_per_s": raw["records_per_s"],
    },
    "write_kafka": {
        "clients": kafka["clients"],
        "commands_per_s": kafka["commands_per_s"],
        "p50_ms": kafka["p50_ms"],
        "p99_ms": kafka["p99_ms"],
        "raw_produce_per_s": raw_produce,
    },
    "write_postgres": {
        "clients": pg["clients"],
        "commands_per_s": pg["commands_per_s"],
        "p50_ms": pg["p50_ms"],
        "p99_ms": pg["p99_ms"],
        "p999_ms": pg["p999_ms"],
        "cpu_s_per_1000_commands": pg["cpu_s_per_1000_commands"],
    },
    "freshness": {
        "offered_rate": fresh["offered_rate"],
        "achieved_commands_per_s": fresh["commands_per_s"],
        "samples": fresh["freshness"]["samples"],
        "p50_ms": fresh["freshness"]["p50_ms"],
        "p99_ms": fresh["freshness"]["p99_ms"],
        "write_p99_ms": fresh["p99_ms"],
    },
    "replay": {
        "events": replay["events"],
        "events_per_s": replay["rebuild_per_s"],
        "raw_read_per_s": replay["raw_read_per_s"],
        "decode_per_s": replay["decode_per_s"],
        "initial_build_per_s": replay["initial_build_per_s"],
    },
    "search_100k": search("small"),
    "search_1m": search("large"),
    "searches_in_the_mix": {
        "stockroom": {"p50_ms": emb["search_p50_ms"], "p99_ms": emb["search_p99_ms"], "count": emb["searches"]},
        "postgres": {"p50_ms": pg["search_p50_ms"], "p99_ms": pg["search_p99_ms"], "count": pg["searches"]},
    },
}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
    f.write("\n")


def n(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


w, p, r, fr = results["write_embedded"], results["write_postgres"], results["replay"], results["freshness"]
rows = [
    ("Write, embedded: Stockroom commands/s", n(w["commands_per_s"]), f"p50 {n(w['p50_ms'], 1)} ms, p99 {n(w['p99_ms'], 1)} ms, p99.9 {n(w['p999_ms'], 1)} ms; {n(w['cpu_s_per_1000_commands'], 2)} CPU-s/1000"),
    ("Write, embedded: raw log appends/s (same concurrency, 1 record each)", n(w["raw_append_per_s"]), f"Stockroom = {w['commands_per_s'] / w['raw_append_per_s']:.0%} of it"),
    ("Write, PostgreSQL design: commands/s", n(p["commands_per_s"]), f"p50 {n(p['p50_ms'], 1)} ms, p99 {n(p['p99_ms'], 1)} ms, p99.9 {n(p['p999_ms'], 1)} ms; {n(p['cpu_s_per_1000_commands'], 2)} CPU-s/1000"),
    ("Stockroom ÷ PostgreSQL throughput", f"{w['commands_per_s'] / p['commands_per_s']:.2f}×", f"p99 {n(w['p99_ms'], 1)} vs {n(p['p99_ms'], 1)} ms"),
    ("Freshness: write → searchable", f"p50 {n(fr['p50_ms'], 1)} ms", f"p99 {n(fr['p99_ms'], 1)} ms at {n(fr['offered_rate'])} operations/s offered ({fr['samples']} samples)"),
    (f"Replay: rebuild of {n(r['events'])} events, events/s", n(r["events_per_s"]), f"raw read {n(r['raw_read_per_s'])}/s, read + decode {n(r['decode_per_s'])}/s"),
]
k = results["write_kafka"]
rows += [
    ("Write, Kafka (local Tansu): Stockroom commands/s", n(k["commands_per_s"], 1), f"p50 {n(k['p50_ms'], 0)} ms, p99 {n(k['p99_ms'], 0)} ms"),
    ("Write, Kafka: raw rdkafka produce, records/s (same concurrency, 1 record each)", n(k["raw_produce_per_s"]), f"Stockroom = {k['commands_per_s'] / k['raw_produce_per_s']:.1%} of it"),
]
for key in ("search_100k", "search_1m"):
    q = results[key]
    rows += [
        (f"Search, {n(q['products'])} products, HTTP ({q['clients']} clients): queries/s", n(q["qps"]), f"p50 {n(q['p50_ms'], 2)} ms, p99 {n(q['p99_ms'], 2)} ms"),
        (f"Search, {n(q['products'])} products, in process (tantivy, 1 at a time)", f"p99 {n(q['inprocess_p99_ms'], 2)} ms", f"p50 {n(q['inprocess_p50_ms'], 2)} ms, {n(q['inprocess_qps'])} queries/s"),
        (f"Search, {n(q['products'])} products, PostgreSQL FTS ({q['clients']} clients): queries/s", n(q["postgres_qps"]), f"p50 {n(q['postgres_p50_ms'], 2)} ms, p99 {n(q['postgres_p99_ms'], 2)} ms; Stockroom = {q['qps'] / max(q['postgres_qps'], 1e-9):.1f}× its rate"),
    ]
rows.append(("Charts", "latency.png, throughput.png", "beside this file"))
m = results["machine"]
md = [f"# Benchmark results\n", f"`{command}` on {m['cores']} cores ({m['cpu_model']}), {w['clients']} clients.\n",
      "| measure | value | detail |", "|---|---|---|"]
md += [f"| {a} | {b} | {c} |" for a, b, c in rows]
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))

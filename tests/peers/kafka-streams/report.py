#!/usr/bin/env python3
"""Adds the Kafka Streams peer's runs to scripts/bench.sh's results.json and results.md.

Run by scripts/bench.sh after scripts/bench_report.py: reads DIR/write_kafka_streams_*.json
(the load generator's lines), DIR/*_race.json and DIR/*_check.json (the peer's checks),
and writes keys write_kafka_streams_eos, write_kafka_streams_eos_c10 and
write_kafka_streams_alo next to write_kafka, each {commands_per_s, p50_ms, p99_ms,
cpu_s_per_1000_commands, ...} (CPU of the peer's JVM and the broker), and a row per run
in results.md beside Stockroom's Kafka row.
"""
import json
import os
import sys

out = sys.argv[1]

RUNS = [
    ("write_kafka_streams_eos", "exactly_once_v2", 100),
    ("write_kafka_streams_eos_c10", "exactly_once_v2", 10),
    ("write_kafka_streams_alo", "at_least_once", 30000),
]


def load(name):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def each(run, i):
    e = run.get("cpu_s_per_1000_commands_each") or []
    return e[i] if i < len(e) else None


with open(os.path.join(out, "results.json")) as f:
    results = json.load(f)
stockroom = results["write_kafka"]
rows = []
for key, guarantee, commit in RUNS:
    run, race, check = load(key), load(key + "_race"), load(key + "_check")
    if run is None:
        continue
    r = {
        "clients": run["clients"],
        "commands_per_s": run["commands_per_s"],
        "p50_ms": run["p50_ms"],
        "p99_ms": run["p99_ms"],
        # The peer's JVM and the broker together, as write_kafka's node and broker.
        "cpu_s_per_1000_commands": run["cpu_s_per_1000_commands"],
        "p999_ms": run["p999_ms"],
        "errors": run["errors"],
        "rejected": run["rejected"],
        "peer_cpu_s_per_1000_commands": each(run, 0),
        "broker_cpu_s_per_1000_commands": each(run, 1),
        "processing_guarantee": guarantee,
        "commit_interval_ms": commit,
        "linger_ms": 0,
        "stream_threads": os.cpu_count(),
        "stockroom_over_peer": stockroom["commands_per_s"] / max(run["commands_per_s"], 1e-9),
        "race_check": race,
        "state_check": check,
    }
    results[key] = r
    cpu = "–" if r["cpu_s_per_1000_commands"] is None else f"{r['cpu_s_per_1000_commands']:.2f}"
    if r["broker_cpu_s_per_1000_commands"] is not None:
        cpu += f" (peer {r['peer_cpu_s_per_1000_commands']:.2f}, broker {r['broker_cpu_s_per_1000_commands']:.2f})"
    ok = all(c and c.get("ok") for c in (race, check))
    rows.append((
        f"Write, Kafka Streams peer ({guarantee}, commit.interval.ms {commit}): commands/s",
        f"{r['commands_per_s']:,.0f}",
        f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, p99.9 {r['p999_ms']:.1f} ms; {cpu} CPU-s/1000; "
        f"Stockroom on Kafka = {r['stockroom_over_peer']:.2f}× its rate (p99 {stockroom['p99_ms']:.1f} ms); "
        f"checks {'passed' if ok else 'FAILED'}"))

with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
    f.write("\n")
with open(os.path.join(out, "results.md"), "a") as f:
    f.write("\n## Kafka Streams peer (tests/peers/kafka-streams), same broker, same load generator\n\n")
    f.write("| measure | value | detail |\n|---|---|---|\n")
    s = stockroom
    f.write(f"| Write, Kafka: Stockroom commands/s | {s['commands_per_s']:,.0f} | p50 {s['p50_ms']:.1f} ms, "
            f"p99 {s['p99_ms']:.1f} ms; {s['cpu_s_per_1000_commands'] or 0:.2f} CPU-s/1000 (node + broker) |\n")
    for a, b, c in rows:
        f.write(f"| {a} | {b} | {c} |\n")
for a, b, c in rows:
    print(f"| {a} | {b} | {c} |")

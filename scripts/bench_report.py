#!/usr/bin/env python3
"""Collects the measurements of scripts/bench.sh into results.json and results.md."""
import json
import os
import platform
import re
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


def kafka_version():
    """The local broker's version: scripts/kafka.sh's VERSION (or scripts/kafka/pom.xml's)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        with open(os.path.join(here, "kafka.sh")) as f:
            m = re.search(r"^VERSION=([\w.\-]+)", f.read(), re.M)
            if m:
                return m.group(1)
        with open(os.path.join(here, "kafka", "pom.xml")) as f:
            m = re.search(r"<artifactId>kafka_[\d.]+</artifactId>\s*<version>([^<]+)</version>", f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    return None


def per_1000(run, i):
    """CPU-s per 1,000 commands of the i-th of --cpu-pids, if measured."""
    each = run.get("cpu_s_per_1000_commands_each") or []
    return each[i] if i < len(each) else None


emb, raw, pg, fresh, replay, ingest = (
    load(n) for n in ("write_embedded", "raw_append", "write_postgres", "freshness", "replay", "ingest"))
kafka, kafka_one, fresh_kafka, raw_produce, broker = (
    load(n) for n in ("write_kafka", "write_kafka_one", "freshness_kafka", "raw_produce", "kafka_broker"))
transactions = []
if os.path.exists(os.path.join(out, "kafka_transactions.jsonl")):
    with open(os.path.join(out, "kafka_transactions.jsonl")) as f:
        transactions = [json.loads(line) for line in f if line.strip()]


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


def freshness(run):
    """Write -> searchable, counted from sending the write's request (after_ack_*:
    from its acknowledgement), under the run's write load."""
    f = run["freshness"]
    return {
        "offered_rate": run["offered_rate"],
        "achieved_commands_per_s": run["commands_per_s"],
        "samples": f["samples"],
        "p50_ms": f["p50_ms"],
        "p99_ms": f["p99_ms"],
        "after_ack_p50_ms": f.get("after_ack_p50_ms"),
        "after_ack_p99_ms": f.get("after_ack_p99_ms"),
        "write_p99_ms": run["p99_ms"],
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
        "raw_produce_per_s": raw_produce["records_per_s"],
        "broker": "apache-kafka" if broker["local"] else "external",
        "broker_version": kafka_version() if broker["local"] else None,
        "one_client_p50_ms": kafka_one["p50_ms"],
        # The node and the broker together (the node alone with an external broker).
        "cpu_s_per_1000_commands": kafka["cpu_s_per_1000_commands"],
        "p999_ms": kafka["p999_ms"],
        "errors": kafka["errors"],
        "share_of_raw_produce": kafka["commands_per_s"] / max(raw_produce["records_per_s"], 1e-9),
        "node_cpu_s_per_1000_commands": per_1000(kafka, 0),
        "broker_cpu_s_per_1000_commands": per_1000(kafka, 1),
        "one_client_p99_ms": kafka_one["p99_ms"],
        "one_client_commands_per_s": kafka_one["commands_per_s"],
        "raw_produce_p50_ms": raw_produce["batch_latency"].get("p50_ms"),
        "raw_produce_p99_ms": raw_produce["batch_latency"].get("p99_ms"),
    },
    "freshness_kafka": freshness(fresh_kafka),
    "ingest_embedded": {
        "rows": ingest["rows"],
        "new_rows_per_s": ingest["new_rows_per_s"],
        "unchanged_rows_per_s": ingest["unchanged_rows_per_s"],
    },
    "write_postgres": {
        "clients": pg["clients"],
        "commands_per_s": pg["commands_per_s"],
        "p50_ms": pg["p50_ms"],
        "p99_ms": pg["p99_ms"],
        "p999_ms": pg["p999_ms"],
        "cpu_s_per_1000_commands": pg["cpu_s_per_1000_commands"],
    },
    "freshness": freshness(fresh),
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
if transactions:
    # Each run: mode (idempotent = one shared producer as a node has, per_task = one
    # idempotent producer per task, transactional = one per task, a transaction per
    # batch), concurrency, batch, records/s, batch latency, and sent -> consumed
    # latency of a read_committed and a read_uncommitted consumer.
    results["kafka_transactions"] = transactions
# The PostgreSQL outbox connector and the SQL read model (tests/examples/outbox_bench.rs):
# a backlog drained, a steady rate's delay commit -> slot confirmed, and the SQL
# model's freshness (write acknowledged -> row in stockroom.stock).
if os.path.exists(os.path.join(out, "outbox.json")):
    ob = load("outbox")
    results["outbox"] = {
        "backlog_rows": ob["backlog_rows"],
        "backlog_commands_per_s": ob["backlog_commands_per_s"],
        "backlog_commit_s": ob["backlog_commit_s"],
        "steady_rows": ob["steady_rows"],
        "steady_rows_per_s": ob["steady_rows_per_s"],
        "lag_p50_ms": ob["lag_p50_ms"],
        "lag_p99_ms": ob["lag_p99_ms"],
        "lag_samples": ob["lag_samples"],
        "sql_writes": ob.get("sql_writes"),
        "sql_freshness_p50_ms": ob.get("sql_freshness_p50_ms"),
        "sql_freshness_p99_ms": ob.get("sql_freshness_p99_ms"),
    }
    # The same backlog and rate read by polling (--outbox-mode poll).
    if os.path.exists(os.path.join(out, "outbox_poll.json")):
        op = load("outbox_poll")
        results["outbox"]["poll"] = {k: op[k] for k in (
            "backlog_rows", "backlog_commands_per_s", "backlog_commit_s", "steady_rows", "steady_rows_per_s",
            "lag_p50_ms", "lag_p99_ms", "lag_samples")}
# The Kafka Streams peer (tests/peers/kafka-streams), one run per guarantee: its JVM's
# and the broker's CPU, next to write_kafka's node and broker; its race and state checks.
PEER_RUNS = [
    ("write_kafka_streams_eos", "exactly_once_v2", 100),
    ("write_kafka_streams_eos_c10", "exactly_once_v2", 10),
    ("write_kafka_streams_alo", "at_least_once", 30000),
]


def peer_runs(results):
    stockroom, rows = results["write_kafka"], []
    for key, guarantee, commit in PEER_RUNS:
        if not os.path.exists(os.path.join(out, key + ".json")):
            continue
        run, race, check = load(key), load(key + "_race"), load(key + "_check")
        r = {k: run[k] for k in ("clients", "commands_per_s", "p50_ms", "p99_ms", "cpu_s_per_1000_commands",
                                 "p999_ms", "errors", "rejected")}
        r.update({
            "peer_cpu_s_per_1000_commands": per_1000(run, 0),
            "broker_cpu_s_per_1000_commands": per_1000(run, 1),
            "processing_guarantee": guarantee,
            "commit_interval_ms": commit,
            "linger_ms": 0,
            "stream_threads": os.cpu_count(),
            "stockroom_over_peer": stockroom["commands_per_s"] / max(run["commands_per_s"], 1e-9),
            "race_check": race,
            "state_check": check,
        })
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
    return rows


def write_scaling():
    """The same mix at each client count of the scaling runs (scaling_{embedded,postgres}_N.json)."""
    counts = sorted({int(m.group(1)) for name in os.listdir(out)
                     for m in [re.fullmatch(r"scaling_embedded_(\d+)\.json", name)] if m})
    keys = ("clients", "commands_per_s", "p50_ms", "p99_ms", "cpu_s_per_1000_commands")
    return {
        system: [{k: load(f"scaling_{system}_{c}")[k] for k in keys}
                 for c in counts if os.path.exists(os.path.join(out, f"scaling_{system}_{c}.json"))]
        for system in ("embedded", "postgres")
    }


results["write_curve"] = write_scaling()
# Search by catalog size (search_{tiny,small,large}: 10k, 100k and 1M products in the
# full run), and replay by log length (replay_curve_N.json: 1M and 5M events).
results["search_curve"] = [search(size) for size in ("tiny", "small", "large")
                           if os.path.exists(os.path.join(out, f"search_{size}_http.json"))]
replays = sorted((load(name[:-len(".json")]) for name in os.listdir(out)
                  if re.fullmatch(r"replay_curve_\d+\.json", name)), key=lambda r: r["events"])
results["replay_curve"] = [{
    "events": r["events"],
    "events_per_s": r["rebuild_per_s"],
    "initial_build_per_s": r["initial_build_per_s"],
    "raw_read_per_s": r["raw_read_per_s"],
} for r in replays]
peer_rows = peer_runs(results)
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
    ("Freshness: write → searchable (from the request)", f"p50 {n(fr['p50_ms'], 1)} ms", f"p99 {n(fr['p99_ms'], 1)} ms at {n(fr['offered_rate'])} operations/s offered ({fr['samples']} samples); after the acknowledgement p50 {n(fr['after_ack_p50_ms'], 1)}, p99 {n(fr['after_ack_p99_ms'], 1)} ms"),
    (f"Replay: rebuild of {n(r['events'])} events, events/s", n(r["events_per_s"]), f"raw read {n(r['raw_read_per_s'])}/s, read + decode {n(r['decode_per_s'])}/s"),
    (f"Ingestion, embedded: a feed of {n(results['ingest_embedded']['rows'])} new products, rows/s", n(results["ingest_embedded"]["new_rows_per_s"]), f"the same feed again (all unchanged): {n(results['ingest_embedded']['unchanged_rows_per_s'])} rows/s"),
]
k, fk = results["write_kafka"], results["freshness_kafka"]
where = f"Apache Kafka {k['broker_version']}, local" if k["broker"] == "apache-kafka" else "external Kafka"
cpu = f"{n(k['cpu_s_per_1000_commands'], 2)} CPU-s/1000 (node + broker)"
if k["broker_cpu_s_per_1000_commands"] is not None:
    cpu += f": node {n(k['node_cpu_s_per_1000_commands'], 2)}, broker {n(k['broker_cpu_s_per_1000_commands'], 2)}"
rows += [
    (f"Write, Kafka ({where}): Stockroom commands/s", n(k["commands_per_s"]), f"p50 {n(k['p50_ms'], 1)} ms, p99 {n(k['p99_ms'], 1)} ms, p99.9 {n(k['p999_ms'], 1)} ms; {cpu}"),
    ("Write, Kafka: one client, one command at a time", f"p50 {n(k['one_client_p50_ms'], 1)} ms", f"p99 {n(k['one_client_p99_ms'], 1)} ms, {n(k['one_client_commands_per_s'])} commands/s"),
    ("Write, Kafka: raw rdkafka produce, records/s (same concurrency, 1 record each, acks=all)", n(k["raw_produce_per_s"]), f"p50 {n(k['raw_produce_p50_ms'], 1)} ms, p99 {n(k['raw_produce_p99_ms'], 1)} ms; Stockroom = {k['share_of_raw_produce']:.1%} of it"),
    ("Freshness on Kafka: write → searchable (from the request)", f"p50 {n(fk['p50_ms'], 1)} ms", f"p99 {n(fk['p99_ms'], 1)} ms at {n(fk['offered_rate'])} operations/s offered ({fk['samples']} samples); after the acknowledgement p50 {n(fk['after_ack_p50_ms'], 1)}, p99 {n(fk['after_ack_p99_ms'], 1)} ms"),
]
names = {"idempotent": "idempotent, one shared producer", "per_task": "idempotent, a producer per task",
         "transactional": "transactional, a producer per task, a transaction per batch"}
for t in transactions:
    b, rc, ru = t["batch_latency"], t.get("e2e_read_committed", {}), t.get("e2e_read_uncommitted", {})
    rows.append((
        f"Kafka {names.get(t['mode'], t['mode'])}: {t['concurrency']} tasks × {t['batch']} records, records/s",
        n(t["records_per_s"]),
        f"batch p50 {n(b.get('p50_ms'), 1)} ms, p99 {n(b.get('p99_ms'), 1)} ms; sent → consumed p50/p99: "
        f"read_committed {n(rc.get('p50_ms'), 1)}/{n(rc.get('p99_ms'), 1)} ms, "
        f"read_uncommitted {n(ru.get('p50_ms'), 1)}/{n(ru.get('p99_ms'), 1)} ms"))
for key in ("search_100k", "search_1m"):
    q = results[key]
    rows += [
        (f"Search, {n(q['products'])} products, HTTP ({q['clients']} clients): queries/s", n(q["qps"]), f"p50 {n(q['p50_ms'], 2)} ms, p99 {n(q['p99_ms'], 2)} ms"),
        (f"Search, {n(q['products'])} products, in process (tantivy, 1 at a time)", f"p99 {n(q['inprocess_p99_ms'], 2)} ms", f"p50 {n(q['inprocess_p50_ms'], 2)} ms, {n(q['inprocess_qps'])} queries/s"),
        (f"Search, {n(q['products'])} products, PostgreSQL FTS ({q['clients']} clients): queries/s", n(q["postgres_qps"]), f"p50 {n(q['postgres_p50_ms'], 2)} ms, p99 {n(q['postgres_p99_ms'], 2)} ms; Stockroom = {q['qps'] / max(q['postgres_qps'], 1e-9):.1f}× its rate"),
    ]
rows.append(("Charts", "latency.png, throughput.png, scaling.png, search_scaling.png, replay.png", "beside this file"))
m = results["machine"]
md = [f"# Benchmark results\n", f"`{command}` on {m['cores']} cores ({m['cpu_model']}), {w['clients']} clients.\n",
      "| measure | value | detail |", "|---|---|---|"]
md += [f"| {a} | {b} | {c} |" for a, b, c in rows]
if peer_rows:
    sk = results["write_kafka"]
    md += ["", "## Kafka Streams peer (tests/peers/kafka-streams), same broker, same load generator", "",
           "| measure | value | detail |", "|---|---|---|",
           f"| Write, Kafka: Stockroom commands/s | {sk['commands_per_s']:,.0f} | p50 {sk['p50_ms']:.1f} ms, "
           f"p99 {sk['p99_ms']:.1f} ms; {sk['cpu_s_per_1000_commands'] or 0:.2f} CPU-s/1000 (node + broker) |"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in peer_rows]
scaling = results["write_curve"]
if scaling["embedded"]:
    md += ["", "## How write cost grows (a fresh node or database per point)", "",
           "| clients | Stockroom embedded commands/s | p99 ms | PostgreSQL commands/s | p99 ms | ratio |",
           "|---|---|---|---|---|---|"]
    by_clients = {r["clients"]: r for r in scaling["postgres"]}
    for e in scaling["embedded"]:
        q = by_clients.get(e["clients"], {})
        ratio = f"{e['commands_per_s'] / q['commands_per_s']:.2f}×" if q.get("commands_per_s") else "–"
        md.append(f"| {e['clients']} | {n(e['commands_per_s'])} | {n(e['p99_ms'], 1)} | "
                  f"{n(q.get('commands_per_s'))} | {n(q.get('p99_ms'), 1)} | {ratio} |")
if results["search_curve"]:
    md += ["", "## How search cost grows (HTTP, {} clients; PostgreSQL full-text search)".format(
        results["search_curve"][0]["clients"]), "",
           "| products | Stockroom queries/s | p50 ms | p99 ms | PostgreSQL queries/s | p50 ms | p99 ms | ratio |",
           "|---|---|---|---|---|---|---|---|"]
    for q in results["search_curve"]:
        md.append(f"| {n(q['products'])} | {n(q['qps'])} | {n(q['p50_ms'], 2)} | {n(q['p99_ms'], 2)} | "
                  f"{n(q['postgres_qps'])} | {n(q['postgres_p50_ms'], 2)} | {n(q['postgres_p99_ms'], 2)} | "
                  f"{q['qps'] / max(q['postgres_qps'], 1e-9):.1f}× |")
if results["replay_curve"]:
    first = results["replay_curve"][0]["events_per_s"]
    md += ["", "## How replay holds as the log grows (goal: the rate falls by at most 20%)", "",
           "| events | rebuild events/s | change | first build events/s | raw read events/s |", "|---|---|---|---|---|"]
    for r in results["replay_curve"]:
        md.append(f"| {n(r['events'])} | {n(r['events_per_s'])} | {r['events_per_s'] / max(first, 1e-9) - 1:+.0%} | "
                  f"{n(r['initial_build_per_s'])} | {n(r['raw_read_per_s'])} |")
def drain(run):
    """How a drain's time splits: committing the rows (one connection, one row per
    transaction) and acknowledging the last of them after the last commit."""
    total = run["backlog_rows"] / max(run["backlog_commands_per_s"], 1e-9)
    return (f"committed in {run['backlog_commit_s']:.1f} s by one connection (a row per transaction), the last "
            f"acknowledged {max(total - run['backlog_commit_s'], 0):.2f} s after the last commit")


if "outbox" in results:
    ob = results["outbox"]
    md += ["", "## Next to a database: the outbox connector in, the SQL read model out", "",
           "| measure | value | detail |", "|---|---|---|",
           f"| Outbox: a backlog of {n(ob['backlog_rows'])} rows drained, acknowledged commands/s | "
           f"{n(ob['backlog_commands_per_s'])} | {drain(ob)} |",
           f"| Outbox: steady {n(ob['steady_rows_per_s'])} rows/s, commit → slot confirmed | p50 {n(ob['lag_p50_ms'])} ms | "
           f"p99 {n(ob['lag_p99_ms'])} ms ({ob['lag_samples']} samples of {n(ob['steady_rows'])} rows) |"]
    if "poll" in ob:
        op = ob["poll"]
        md += [f"| Outbox, --outbox-mode poll: the backlog drained, acknowledged commands/s | "
               f"{n(op['backlog_commands_per_s'])} | {drain(op)} |",
               f"| Outbox, --outbox-mode poll: steady {n(op['steady_rows_per_s'])} rows/s, insert → position stored | "
               f"p50 {n(op['lag_p50_ms'])} ms | p99 {n(op['lag_p99_ms'])} ms ({op['lag_samples']} samples) |"]
    if ob["sql_freshness_p50_ms"] is not None:
        md.append(f"| SQL read model: write acknowledged → row in stockroom.stock | p50 {n(ob['sql_freshness_p50_ms'], 1)} ms | "
                  f"p99 {n(ob['sql_freshness_p99_ms'], 1)} ms ({ob['sql_writes']} writes, one at a time) |")
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))

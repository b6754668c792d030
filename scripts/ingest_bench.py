#!/usr/bin/env python3
"""Catalog ingestion throughput: a feed of N new products (JSON lines), then the same
feed again (every row unchanged), sent to a running node; prints one JSON line.

    scripts/ingest_bench.py URL [ROWS]
"""
import json
import sys
import time
import urllib.request

url, rows = sys.argv[1].rstrip("/"), int(sys.argv[2]) if len(sys.argv) > 2 else 100_000


def call(method, path, body=None, content_type="application/json"):
    req = urllib.request.Request(url + path, data=body, method=method, headers={"content-type": content_type})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")


source = {"priority": 10, "price_unit": "major", "currency": "USD",
          "fields": {"source_id": "id", "name": "title", "brand": "brand", "category": "category",
                     "price": "price", "stock": "stock", "description": "description"}}
call("PUT", "/ingest/sources/bench", json.dumps(source).encode())
brands = ["Acme", "Bolt", "Homely", "Lumo", "Kettlery", "Northwind"]
feed = "\n".join(json.dumps({
    "id": f"b-{i}", "title": f"Bench product {i}", "brand": brands[i % len(brands)],
    "category": ["Tools", "Home Decoration", "Kitchen"][i % 3], "price": f"{(i % 9000) / 100 + 1:.2f}",
    "stock": i % 50, "description": f"A synthetic product number {i} for the ingestion benchmark",
}) for i in range(rows)).encode()


def run():
    start = time.monotonic()
    run_id = call("POST", "/ingest/bench", feed, "application/x-ndjson")["run_id"]
    while True:
        report = call("GET", f"/ingest/runs/{run_id}")
        if report["state"] != "running":
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    assert report["state"] == "done", report
    return report, elapsed


new, t_new = run()
again, t_again = run()
assert new["created"] == rows, new
assert again["unchanged"] == rows, again
print(json.dumps({"rows": rows, "new_s": round(t_new, 2), "new_rows_per_s": round(rows / t_new),
                  "unchanged_s": round(t_again, 2), "unchanged_rows_per_s": round(rows / t_again)}))

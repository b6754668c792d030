// The console's Prometheus text parser (query/console/metrics.js), under `node --test`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const M = require("../../query/console/metrics.js");

// What prometheus-client writes for a node (shortened), with the cases that matter:
// labels, escapes in label values, histograms' +Inf, a timestamp, # EOF.
const TEXT = `# HELP stockroom_commands commands decided, by outcome.
# TYPE stockroom_commands counter
stockroom_commands_total{outcome="accepted"} 12
stockroom_commands_total{outcome="rejected"} 3
stockroom_commands_total{outcome="unavailable"} 0
# TYPE stockroom_catalog_lag gauge
stockroom_catalog_lag{partition="0"} 4
stockroom_catalog_lag{partition="1"} 1
stockroom_stock_lag{partition="0"} 0
stockroom_catalog_staleness_seconds 0.25
stockroom_http_request_duration_seconds_bucket{le="+Inf",route="/search"} 7
stockroom_http_requests_total{route="/products/{sku}",method="GET",status="200"} 5 1700000000
odd{label="a \\"quoted\\" \\\\ back, and}",other="x"} 1.5e3
stockroom_dlq_records 2
# EOF
`;

test("samples are read with their names, labels and values", () => {
  const s = M.parse(TEXT);
  assert.equal(s.length, 11);
  assert.deepEqual(s[0], { name: "stockroom_commands_total", labels: { outcome: "accepted" }, value: 12 });
  assert.equal(s.find((x) => x.name.endsWith("_bucket")).value, 7);
  assert.equal(s.find((x) => x.name.endsWith("_bucket")).labels.le, "+Inf");
  const odd = s.find((x) => x.name === "odd");
  assert.deepEqual(odd.labels, { label: 'a "quoted" \\ back, and}', other: "x" });
  assert.equal(odd.value, 1500);
  // The timestamp is not the value.
  assert.equal(s.find((x) => x.name === "stockroom_http_requests_total").value, 5);
});

test("sums select by name and labels, and say when a series is absent", () => {
  const s = M.parse(TEXT);
  assert.equal(M.sum(s, "stockroom_catalog_lag"), 5);
  assert.equal(M.sum(s, "stockroom_commands_total", { outcome: "rejected" }), 3);
  assert.equal(M.sum(s, "stockroom_commands_total"), 15);
  assert.equal(M.sum(s, "stockroom_dlq_records"), 2);
  // A query node has no command series: null, not 0.
  assert.equal(M.sum(s, "stockroom_partitions_owned"), null);
  assert.deepEqual(M.names(s).filter((n) => n.endsWith("_lag")), ["stockroom_catalog_lag", "stockroom_stock_lag"]);
});

test("special values and windows line endings", () => {
  const s = M.parse('a +Inf\r\nb -Inf\r\nc NaN\r\n\r\n');
  assert.equal(s[0].value, Infinity);
  assert.equal(s[1].value, -Infinity);
  assert.ok(Number.isNaN(s[2].value));
});

test("a line that cannot be read names its line number", () => {
  assert.throws(() => M.parse("ok 1\nbad{x=1} 2\n"), /line 2: a label value that is not quoted/);
  assert.throws(() => M.parse("ok 1\nok two\n"), /line 2: not a number/);
  assert.throws(() => M.parse('x{a="open} 1\n'), /line 1: an unclosed label value/);
  assert.throws(() => M.parse("{a=\"b\"} 1\n"), /line 1: no metric name/);
});

test("rates never go negative (a restarted node counts from 0 again)", () => {
  assert.equal(M.rate(10, 30, 2), 10);
  assert.equal(M.rate(30, 5, 2), 0);
  assert.equal(M.rate(null, 5, 2), null);
  assert.equal(M.rate(1, 5, 0), null);
});

// Reads the Prometheus / OpenMetrics text of GET /metrics into samples.
// Used by the console (as the global StockroomMetrics) and by its unit test under
// Node (tests/console/metrics.test.cjs, through module.exports).
(function (root) {
  "use strict";

  // One sample line: name, optional {labels}, value, optional timestamp.
  // Label values are quoted strings with \\, \" and \n escapes.
  function parseLabels(text, start) {
    var labels = {};
    var i = start; // just after '{'
    for (;;) {
      while (text[i] === " " || text[i] === ",") i++;
      if (text[i] === "}") return { labels: labels, end: i + 1 };
      var eq = text.indexOf("=", i);
      if (eq < 0) throw new Error("a label without a value");
      var name = text.slice(i, eq).trim();
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error("a bad label name: " + name);
      i = eq + 1;
      if (text[i] !== '"') throw new Error("a label value that is not quoted");
      i++;
      var value = "";
      for (;;) {
        var c = text[i];
        if (c === undefined) throw new Error("an unclosed label value");
        if (c === "\\") {
          var n = text[i + 1];
          value += n === "n" ? "\n" : n;
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      labels[name] = value;
    }
  }

  function parseValue(s) {
    if (s === "+Inf" || s === "Inf") return Infinity;
    if (s === "-Inf") return -Infinity;
    if (s === "NaN") return NaN;
    var v = Number(s);
    if (s === "" || Number.isNaN(v)) throw new Error("not a number: " + s);
    return v;
  }

  // parse(text) -> [{name, labels, value}], in the order of the text. Comments
  // (# HELP, # TYPE, # UNIT, # EOF) and blank lines are skipped. A line that
  // cannot be read throws an Error naming its line number.
  function parse(text) {
    var samples = [];
    var lines = String(text).split("\n");
    for (var n = 0; n < lines.length; n++) {
      var line = lines[n].replace(/\r$/, "");
      if (line.trim() === "" || line[0] === "#") continue;
      try {
        var m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
        if (!m) throw new Error("no metric name");
        var name = m[0];
        var rest = line.slice(name.length);
        var labels = {};
        if (rest[0] === "{") {
          var read = parseLabels(rest, 1);
          labels = read.labels;
          rest = rest.slice(read.end);
        }
        var parts = rest.trim().split(/\s+/);
        samples.push({ name: name, labels: labels, value: parseValue(parts[0] || "") });
      } catch (e) {
        throw new Error("metrics line " + (n + 1) + ": " + e.message);
      }
    }
    return samples;
  }

  function matches(sample, name, labels) {
    if (sample.name !== name) return false;
    for (var k in labels || {}) {
      if (sample.labels[k] !== labels[k]) return false;
    }
    return true;
  }

  // The sum of every sample of `name` whose labels include `labels`; null if
  // there is none (the series is not on this node).
  function sum(samples, name, labels) {
    var total = null;
    for (var i = 0; i < samples.length; i++) {
      if (matches(samples[i], name, labels)) total = (total || 0) + samples[i].value;
    }
    return total;
  }

  // Names of the series present, without repeats.
  function names(samples) {
    var seen = {};
    var out = [];
    samples.forEach(function (s) {
      if (!seen[s.name]) {
        seen[s.name] = true;
        out.push(s.name);
      }
    });
    return out;
  }

  // The rate per second between two readings of a counter, never negative (a
  // restarted node starts its counters again at 0).
  function rate(before, after, seconds) {
    if (before === null || after === null || !(seconds > 0)) return null;
    return Math.max(0, after - before) / seconds;
  }

  var api = { parse: parse, sum: sum, names: names, rate: rate };
  root.StockroomMetrics = api;
  if (typeof module === "object" && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : this);

// Small line charts as inline SVG (no library, no canvas: the text stays
// readable by screen readers through the figure's caption and the legend).
(function (root) {
  "use strict";

  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
    if (Math.abs(v) >= 10 || v === Math.round(v)) return String(Math.round(v));
    return v.toFixed(1);
  }

  // line(container, series, options): draws series = [{label, cls, values: [number|null]}]
  // over the same time steps (oldest first). options.empty: text shown when no
  // series has any value.
  function line(container, series, options) {
    options = options || {};
    var w = 320, h = 120, left = 36, right = 6, top = 8, bottom = 16;
    var max = 0, count = 0;
    series.forEach(function (s) {
      count = Math.max(count, s.values.length);
      s.values.forEach(function (v) {
        if (v !== null && v > max) max = v;
      });
    });
    var any = series.some(function (s) {
      return s.values.some(function (v) { return v !== null; });
    });
    container.textContent = "";
    if (!any) {
      var p = document.createElement("p");
      p.className = "hint";
      p.textContent = options.empty || "No data yet.";
      container.appendChild(p);
      return;
    }
    var top_ = max > 0 ? max * 1.1 : 1;
    var latest = series.map(function (s) {
      var last = null;
      s.values.forEach(function (v) { if (v !== null) last = v; });
      return s.label + " " + fmt(last);
    });
    var svg = el("svg", {
      viewBox: "0 0 " + w + " " + h, role: "img", class: "chart-svg",
      "aria-label": (options.title || "chart") + ", latest: " + latest.join(", "),
    });
    // Axis: zero and the top value.
    svg.appendChild(el("line", { x1: left, y1: h - bottom, x2: w - right, y2: h - bottom, class: "axis" }));
    svg.appendChild(el("line", { x1: left, y1: top, x2: w - right, y2: top, class: "grid" }));
    svg.appendChild(el("text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end" }, fmt(top_)));
    svg.appendChild(el("text", { x: left - 4, y: h - bottom + 4, class: "tick", "text-anchor": "end" }, "0"));
    svg.appendChild(el("text", { x: w - right, y: h - 2, class: "tick", "text-anchor": "end" }, "now"));
    var step = count > 1 ? (w - left - right) / (count - 1) : 0;
    series.forEach(function (s) {
      var d = "", pen = false;
      s.values.forEach(function (v, i) {
        if (v === null) { pen = false; return; }
        var x = left + i * step;
        var y = h - bottom - (v / top_) * (h - top - bottom);
        d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1) + " ";
        pen = true;
      });
      if (d) svg.appendChild(el("path", { d: d, class: "series " + s.cls }));
    });
    container.appendChild(svg);
    var legend = document.createElement("ul");
    legend.className = "legend";
    series.forEach(function (s, i) {
      var li = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch " + s.cls;
      swatch.setAttribute("aria-hidden", "true");
      li.appendChild(swatch);
      li.appendChild(document.createTextNode(latest[i]));
      legend.appendChild(li);
    });
    container.appendChild(legend);
  }

  root.StockroomCharts = { line: line, fmt: fmt };
})(typeof globalThis !== "undefined" ? globalThis : this);

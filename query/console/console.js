// The Stockroom console: a client of this node's own HTTP API (same origin).
//
//   #/              the catalog: GET /search (debounced as you type), filters,
//                   facets, sort, cursor paging
//   #/product/SKU   a product: GET /products/SKU and GET /products/SKU/history
//   #/ops           operations: GET /admin/views, POST /admin/replay, GET /metrics
//
// When the node checks tokens, a 401 opens the token dialog; the token is kept in
// sessionStorage (this tab only) and sent as a bearer token to this node only.
(function () {
  "use strict";

  var M = window.StockroomMetrics;
  var Charts = window.StockroomCharts;
  var TOKEN_KEY = "stockroom.token";
  var $ = function (id) { return document.getElementById(id); };

  // ---- HTTP -------------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function ApiError(status, problem) {
    this.status = status;
    this.problem = problem || {};
    this.message = (problem && (problem.detail || problem.title)) || "HTTP " + status;
  }

  // fetch with the token; JSON (or text) on success, ApiError otherwise. A 401
  // asks for a token and retries once it is given.
  function api(path, options) {
    options = options || {};
    var headers = { accept: options.text ? "text/plain, */*" : "application/json" };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    var t = token();
    if (t) headers.authorization = "Bearer " + t;
    return fetch(path, {
      method: options.method || "GET",
      headers: headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
    }).then(function (r) {
      if (r.ok) return options.text ? r.text() : r.json();
      return r.json().catch(function () { return null; }).then(function (problem) {
        if (r.status === 401 && !options.retried) {
          return askToken(problem && problem.detail).then(function () {
            return api(path, Object.assign({}, options, { retried: true }));
          });
        }
        throw new ApiError(r.status, problem);
      });
    });
  }

  // ---- the token dialog -------------------------------------------------

  var pendingToken = [];

  function askToken(reason) {
    var dialog = $("token-dialog");
    $("token-reason").textContent = reason
      ? "This node needs a token: " + reason + "."
      : "Bearer token for this node, if it checks tokens.";
    $("token-input").value = token();
    if (!dialog.open) dialog.showModal();
    $("token-input").focus();
    return new Promise(function (resolve, reject) { pendingToken.push({ resolve: resolve, reject: reject }); });
  }

  function settleToken(given) {
    var waiting = pendingToken;
    pendingToken = [];
    waiting.forEach(function (w) {
      if (given) w.resolve(); else w.reject(new ApiError(401, { detail: "no token given" }));
    });
  }

  function setupToken() {
    var dialog = $("token-dialog");
    $("token-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var value = $("token-input").value.trim();
      try { if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY); } catch (_) {}
      dialog.close();
      settleToken(true);
      $("token-button").focus();
      refreshView();
    });
    $("token-forget").addEventListener("click", function () {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) {}
      $("token-input").value = "";
      dialog.close();
      settleToken(false);
    });
    $("token-cancel").addEventListener("click", function () { dialog.close(); settleToken(false); });
    dialog.addEventListener("cancel", function () { settleToken(false); });
    $("token-button").addEventListener("click", function () { askToken(null).catch(function () {}); });
  }

  // ---- small helpers ------------------------------------------------------

  function h(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "class") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function money(cents, currency) {
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency: currency || "EUR" }).format(cents / 100);
    } catch (e) {
      return (cents / 100).toFixed(2) + " " + (currency || "");
    }
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  // Marks the words of the query in `text` (the API does not highlight yet).
  function highlighted(text, q) {
    var words = (q || "").replace(/"/g, " ").split(/\s+/).filter(function (w) {
      return w && w[0] !== "-" && w.length > 1;
    }).map(function (w) { return w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); });
    var span = h("span");
    if (!words.length) { span.textContent = text; return span; }
    var re = new RegExp("(" + words.join("|") + ")", "ig");
    var last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) span.appendChild(document.createTextNode(text.slice(last, m.index)));
      span.appendChild(h("mark", { text: m[0] }));
      last = m.index + m[0].length;
      if (m[0].length === 0) re.lastIndex++;
    }
    if (last < text.length) span.appendChild(document.createTextNode(text.slice(last)));
    return span;
  }

  // ---- the catalog --------------------------------------------------------

  var search = { cursors: [null], page: 0, seq: 0 };
  var known = { category: {}, brand: {} };

  function searchParams() {
    var p = new URLSearchParams();
    var q = $("q").value.trim();
    if (q) p.set("q", q);
    if ($("f-category").value) p.set("category", $("f-category").value);
    if ($("f-brand").value) p.set("brand", $("f-brand").value);
    var min = $("f-min").value, max = $("f-max").value;
    if (min !== "" && !Number.isNaN(Number(min))) p.set("min_price", String(Math.round(Number(min) * 100)));
    if (max !== "" && !Number.isNaN(Number(max))) p.set("max_price", String(Math.round(Number(max) * 100)));
    if ($("f-instock").checked) p.set("in_stock", "true");
    if ($("f-sort").value !== "relevance") p.set("sort", $("f-sort").value);
    p.set("limit", $("f-limit").value);
    return p;
  }

  // A new search (anything but the page changed): back to the first page.
  function newSearch() {
    search.cursors = [null];
    search.page = 0;
    runSearch();
  }

  function runSearch() {
    var p = searchParams();
    var cursor = search.cursors[search.page];
    if (cursor) p.set("cursor", cursor);
    var seq = ++search.seq;
    $("hits").setAttribute("aria-busy", "true");
    return api("/search?" + p.toString()).then(function (found) {
      if (seq !== search.seq) return; // a newer search is on its way
      $("q-error").textContent = "";
      renderResults(found, p.get("q"));
    }, function (e) {
      if (seq !== search.seq) return;
      $("hits").removeAttribute("aria-busy");
      if (e.status === 400) {
        $("q-error").textContent = e.message;
        $("status").textContent = "The search cannot be read.";
      } else {
        $("status").textContent = "Search failed: " + e.message;
      }
    });
  }

  function fillSelect(select, field, facets) {
    (facets || []).forEach(function (f) { known[field][f.value] = true; });
    var current = select.value;
    var values = Object.keys(known[field]).sort();
    var counts = {};
    (facets || []).forEach(function (f) { counts[f.value] = f.count; });
    while (select.options.length > 1) select.remove(1);
    values.forEach(function (v) {
      var label = counts[v] !== undefined ? v + " (" + counts[v] + ")" : v;
      select.appendChild(h("option", { value: v, text: label }));
    });
    select.value = current;
  }

  function renderFacets(facets) {
    var box = $("facets");
    box.textContent = "";
    [["category", "Categories", "f-category"], ["brand", "Brands", "f-brand"]].forEach(function (def) {
      var list = facets[def[0]] || [];
      var group = h("div", { class: "facet" }, [h("h3", { text: def[1] })]);
      if (!list.length) group.appendChild(h("p", { class: "hint", text: "None" }));
      var ul = h("ul");
      list.forEach(function (f) {
        var selected = $(def[2]).value === f.value;
        var b = h("button", {
          type: "button", class: "facet-value" + (selected ? " selected" : ""),
          "aria-pressed": selected ? "true" : "false",
          "data-facet": def[0], "data-value": f.value,
        }, [h("span", { text: f.value }), h("span", { class: "count", text: String(f.count) })]);
        b.setAttribute("aria-label", def[0] + " " + f.value + ", " + f.count + (f.count === 1 ? " product" : " products"));
        b.addEventListener("click", function () {
          $(def[2]).value = selected ? "" : f.value;
          newSearch();
        });
        ul.appendChild(h("li", {}, [b]));
      });
      group.appendChild(ul);
      box.appendChild(group);
    });
  }

  function renderResults(found, q) {
    fillSelect($("f-category"), "category", found.facets.category);
    fillSelect($("f-brand"), "brand", found.facets.brand);
    renderFacets(found.facets);
    var list = $("hits");
    list.textContent = "";
    list.removeAttribute("aria-busy");
    found.hits.forEach(function (p) {
      var a = h("a", { href: "#/product/" + encodeURIComponent(p.sku), class: "hit-name" }, [highlighted(p.name, q)]);
      var meta = [p.brand, p.category].filter(Boolean).join(" · ");
      var stock = p.stock.available > 0
        ? h("span", { class: "badge ok", text: p.stock.available + " available" })
        : h("span", { class: "badge none", text: "out of stock" });
      list.appendChild(h("li", { class: "hit" }, [
        h("div", { class: "hit-main" }, [a, h("span", { class: "sku", text: p.sku }),
          meta ? h("span", { class: "meta", text: meta }) : null,
          p.description ? h("span", { class: "desc" }, [highlighted(p.description, q)]) : null]),
        h("div", { class: "hit-side" }, [h("span", { class: "price", text: money(p.price_cents, p.currency) }), stock]),
      ]));
    });
    var limit = Number($("f-limit").value);
    var first = search.page * limit + 1;
    var last = search.page * limit + found.hits.length;
    $("status").textContent = found.total === 0
      ? "No products match."
      : found.total + (found.total === 1 ? " product" : " products") + (found.hits.length ? ", showing " + first + "–" + last : "");
    if (found.next_cursor) search.cursors[search.page + 1] = found.next_cursor;
    else search.cursors.length = search.page + 1;
    $("prev").disabled = search.page === 0;
    $("next").disabled = !found.next_cursor;
    $("page-label").textContent = "Page " + (search.page + 1) + " of " + Math.max(1, Math.ceil(found.total / limit));
  }

  function setupCatalog() {
    var typed = debounce(newSearch, 250);
    $("q").addEventListener("input", typed);
    $("search-form").addEventListener("submit", function (e) { e.preventDefault(); newSearch(); });
    ["f-category", "f-brand", "f-instock", "f-sort", "f-limit"].forEach(function (id) {
      $(id).addEventListener("change", newSearch);
    });
    var price = debounce(newSearch, 400);
    ["f-min", "f-max"].forEach(function (id) { $(id).addEventListener("input", price); });
    $("f-reset").addEventListener("click", function () {
      $("q").value = ""; $("f-category").value = ""; $("f-brand").value = "";
      $("f-min").value = ""; $("f-max").value = ""; $("f-instock").checked = false;
      $("f-sort").value = "relevance";
      newSearch();
      $("q").focus();
    });
    $("prev").addEventListener("click", function () {
      if (search.page > 0) { search.page--; runSearch(); }
    });
    $("next").addEventListener("click", function () {
      if (search.cursors[search.page + 1]) { search.page++; runSearch(); }
    });
  }

  // ---- a product ------------------------------------------------------------

  function field(dl, name, value) {
    if (value === null || value === undefined || value === "") return;
    dl.appendChild(h("dt", { text: name }));
    dl.appendChild(h("dd", { text: String(value) }));
  }

  // "key: value" for every leaf of an event's body, nested objects flattened (a
  // price {cents, currency} reads as money).
  function describe(event) {
    var skip = { sku: 1, version: 1, type: 1, at: 1, command_id: 1 };
    var parts = [];
    function leaves(v, name) {
      if (v === null || v === undefined) return;
      if (typeof v === "object" && !Array.isArray(v)) {
        if (typeof v.cents === "number" && typeof v.currency === "string") {
          parts.push(name + ": " + money(v.cents, v.currency));
          return;
        }
        Object.keys(v).forEach(function (k) { if (!(name === null && skip[k])) leaves(v[k], k); });
        return;
      }
      parts.push(name + ": " + (typeof v === "object" ? JSON.stringify(v) : v));
    }
    leaves(event, null);
    return parts.join(", ");
  }

  function when(at) {
    if (at === null || at === undefined) return "";
    var d = new Date(typeof at === "number" ? at : String(at));
    return Number.isNaN(d.getTime()) ? String(at) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function showProduct(sku) {
    var body = $("product-body");
    body.textContent = "";
    $("product-title").textContent = sku;
    $("product-status").textContent = "Loading…";
    var path = "/products/" + encodeURIComponent(sku);
    var product = api(path);
    var history = api(path + "/history").catch(function (e) { return { error: e }; });
    return Promise.all([product, history]).then(function (both) {
      var p = both[0], hist = both[1];
      $("product-title").textContent = p.name;
      $("product-status").textContent = "";
      var stock = h("div", { class: "stock", role: "group", "aria-label": "Stock" }, [
        ["On hand", p.stock.on_hand, "on-hand"], ["Reserved", p.stock.reserved, "reserved"],
        ["Available", p.stock.available, "available"],
      ].map(function (s) {
        return h("div", { class: "stat", id: "stock-" + s[2] }, [h("span", { class: "stat-label", text: s[0] }),
          h("span", { class: "stat-value", text: String(s[1]) })]);
      }));
      var dl = h("dl", { class: "details" });
      field(dl, "SKU", p.sku);
      field(dl, "Price", money(p.price_cents, p.currency));
      field(dl, "Brand", p.brand);
      field(dl, "Category", p.category);
      field(dl, "GTIN", p.gtin);
      field(dl, "Status", p.status);
      field(dl, "Version", p.version);
      Object.keys(p.attributes || {}).forEach(function (k) { field(dl, k, p.attributes[k]); });
      body.appendChild(h("h2", { text: "Stock" }));
      body.appendChild(stock);
      if (p.description) body.appendChild(h("p", { class: "description", text: p.description }));
      body.appendChild(h("h2", { text: "Details" }));
      body.appendChild(dl);
      if (p.sources && p.sources.length) {
        body.appendChild(h("h2", { text: "Sources" }));
        body.appendChild(h("ul", { class: "sources" }, p.sources.map(function (s) {
          return h("li", { text: s.source + ": " + s.source_id });
        })));
      }
      body.appendChild(h("h2", { id: "history-title", text: "History" }));
      if (hist.error) {
        body.appendChild(h("p", { class: "hint", text: "No history: " + hist.error.message }));
      } else {
        var rows = hist.events.map(function (ev) {
          return h("tr", {}, [h("td", { text: String(ev.version) }), h("td", { text: ev.type || "" }),
            h("td", { class: "event-detail", text: describe(ev) }), h("td", { class: "when", text: when(ev.at) })]);
        });
        body.appendChild(h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "history-title" }, [h("table", { id: "history", "aria-labelledby": "history-title" }, [
          h("thead", {}, [h("tr", {}, [h("th", { scope: "col", text: "Version" }), h("th", { scope: "col", text: "Event" }),
            h("th", { scope: "col", text: "What" }), h("th", { scope: "col", text: "When" })])]),
          h("tbody", {}, rows),
        ])]));
      }
    }, function (e) {
      $("product-status").textContent = e.status === 404 ? "No product " + sku + "." : "Cannot load the product: " + e.message;
    });
  }

  // ---- operations -------------------------------------------------------------

  var ops = { timer: null, history: [], rebuild: null, busy: false };
  var HISTORY = 60;

  function viewRow(v) {
    var rebuild = "–";
    if (v.rebuild) {
      rebuild = v.rebuild.state + " (" + Math.round(v.rebuild.percent) + "%, " + v.rebuild.read + " of " + v.rebuild.total + " events)";
    }
    return h("tr", { "data-view": v.name }, [
      h("th", { scope: "row", text: v.name }),
      h("td", {}, [h("span", { class: "state state-" + v.state, text: v.state })]),
      h("td", { class: "mono", text: v.position || "(empty)" }),
      h("td", { text: String(v.lag) }),
      h("td", { text: String(v.events_applied) }),
      h("td", { text: rebuild }),
    ]);
  }

  function renderViews(report) {
    var tbody = $("views").tBodies[0];
    tbody.textContent = "";
    report.views.forEach(function (v) { tbody.appendChild(viewRow(v)); });
    var select = $("rebuild-view");
    var rebuildable = report.views.filter(function (v) { return v.replay_answered !== undefined; });
    if (rebuildable.length) {
      var current = select.value;
      select.textContent = "";
      rebuildable.forEach(function (v) { select.appendChild(h("option", { value: v.name, text: v.name })); });
      if (current) select.value = current;
    }
    trackRebuild(report);
  }

  // The rebuild this page asked for is done once the view has answered its request.
  function trackRebuild(report) {
    var r = ops.rebuild;
    if (!r || r.done) return;
    var v = report.views.filter(function (x) { return x.name === r.view; })[0];
    if (!v) return;
    var bar = $("rebuild-progress");
    var answered = v.replay_answered !== undefined && v.replay_answered > r.request;
    var rb = v.rebuild && v.rebuild.answers >= r.request ? v.rebuild : null;
    if (answered && (!v.rebuild || v.rebuild.state !== "rebuilding")) {
      r.done = true;
      bar.value = 100;
      var events = rb ? " (" + rb.read + " events)" : "";
      $("rebuild-text").textContent = "Rebuild of " + r.view + " done" + events + "; the new view is serving.";
      $("rebuild-start").disabled = false;
    } else if (rb && rb.state === "failed") {
      r.done = true;
      $("rebuild-text").textContent = "Rebuild of " + r.view + " failed; see the node's log.";
      $("rebuild-start").disabled = false;
    } else if (rb) {
      bar.value = rb.percent;
      $("rebuild-text").textContent = "Rebuilding " + r.view + ": " + Math.round(rb.percent) + "% (" + rb.read + " of " +
        rb.total + " events, " + rb.rate + " events/s)";
    } else {
      $("rebuild-text").textContent = "Rebuild of " + r.view + " requested (request " + r.request + "), waiting for the node…";
    }
  }

  function startRebuild() {
    var view = $("rebuild-view").value;
    $("rebuild-start").disabled = true;
    $("rebuild-progress").hidden = false;
    $("rebuild-progress").value = 0;
    $("rebuild-text").textContent = "Asking for a rebuild of " + view + "…";
    api("/admin/replay", { method: "POST", body: { view: view } }).then(function (accepted) {
      ops.rebuild = { view: view, request: accepted.request, done: false };
      pollOps();
    }, function (e) {
      $("rebuild-start").disabled = false;
      $("rebuild-progress").hidden = true;
      $("rebuild-text").textContent = "Cannot start a rebuild: " + e.message;
    });
  }

  function metricsSample(text) {
    var s = M.parse(text);
    var lags = {};
    M.names(s).forEach(function (n) {
      var m = /^stockroom_(.+)_lag$/.exec(n);
      if (m && m[1] !== "commands") lags[m[1]] = M.sum(s, n);
    });
    return {
      at: Date.now(),
      accepted: M.sum(s, "stockroom_commands_total", { outcome: "accepted" }),
      rejected: M.sum(s, "stockroom_commands_total", { outcome: "rejected" }),
      unavailable: M.sum(s, "stockroom_commands_total", { outcome: "unavailable" }),
      commandsLag: M.sum(s, "stockroom_commands_lag"),
      lags: lags,
      dlq: M.sum(s, "stockroom_dlq_records"),
    };
  }

  function renderMetrics() {
    var hs = ops.history;
    var rates = function (key) {
      return hs.map(function (x, i) {
        return i === 0 ? null : M.rate(hs[i - 1][key], x[key], (x.at - hs[i - 1].at) / 1000);
      });
    };
    var commands = hs.length && hs[hs.length - 1].accepted !== null;
    Charts.line($("chart-commands"), commands ? [
      { label: "accepted", cls: "s1", values: rates("accepted") },
      { label: "rejected", cls: "s2", values: rates("rejected") },
      { label: "unavailable", cls: "s3", values: rates("unavailable") },
    ] : [], {
      title: "Commands per second",
      empty: hs.length ? "This node decides no commands (a query node): command outcomes are on the command nodes' /metrics."
        : "Waiting for the first reading…",
    });
    var names = {};
    hs.forEach(function (x) { Object.keys(x.lags).forEach(function (n) { names[n] = true; }); });
    var classes = ["s1", "s4", "s2", "s3"];
    var series = Object.keys(names).sort().map(function (n, i) {
      return { label: n, cls: classes[i % classes.length], values: hs.map(function (x) { return x.lags[n] === undefined ? null : x.lags[n]; }) };
    });
    if (commands) {
      series.push({ label: "commands", cls: "s3", values: hs.map(function (x) { return x.commandsLag; }) });
    }
    Charts.line($("chart-lag"), series, { title: "View lag", empty: "Waiting for the first reading…" });
    var last = hs[hs.length - 1];
    $("dlq-count").textContent = last && last.dlq !== null ? String(last.dlq) : "–";
  }

  function pollOps() {
    if (ops.busy) return;
    ops.busy = true;
    var views = api("/admin/views").then(renderViews);
    var metrics = api("/metrics", { text: true }).then(function (text) {
      ops.history.push(metricsSample(text));
      if (ops.history.length > HISTORY) ops.history.shift();
      renderMetrics();
    });
    Promise.allSettled([views, metrics]).then(function (results) {
      ops.busy = false;
      var failed = results.filter(function (r) { return r.status === "rejected"; }).map(function (r) { return r.reason.message; });
      $("ops-status").textContent = failed.length ? "Cannot read everything: " + failed.join("; ") : "";
      $("ops-status").className = failed.length ? "error" : "";
    });
  }

  function startOps() {
    stopOps();
    pollOps();
    ops.timer = setInterval(function () {
      // Faster while a rebuild this page asked for runs.
      pollOps();
    }, 2000);
    ops.fast = setInterval(function () {
      if (ops.rebuild && !ops.rebuild.done) pollOps();
    }, 500);
  }

  function stopOps() {
    clearInterval(ops.timer);
    clearInterval(ops.fast);
    ops.timer = ops.fast = null;
  }

  // ---- routing ------------------------------------------------------------------

  function route() {
    var hash = location.hash || "#/";
    var m = /^#\/product\/(.+)$/.exec(hash);
    if (m) return { view: "product", sku: decodeURIComponent(m[1]) };
    if (hash === "#/ops") return { view: "ops" };
    return { view: "catalog" };
  }

  var shown = null;

  function refreshView() {
    var r = route();
    if (r.view === "catalog") runSearch();
    else if (r.view === "product") showProduct(r.sku);
    else pollOps();
  }

  function onRoute() {
    var r = route();
    ["catalog", "product", "ops"].forEach(function (v) { $("view-" + v).hidden = v !== r.view; });
    $("nav-catalog").setAttribute("aria-current", r.view === "ops" ? "false" : "page");
    $("nav-ops").setAttribute("aria-current", r.view === "ops" ? "page" : "false");
    document.title = (r.view === "ops" ? "Operations" : r.view === "product" ? r.sku : "Catalog") + " · Stockroom console";
    if (r.view === "ops") startOps(); else stopOps();
    if (r.view === "product") showProduct(r.sku);
    if (r.view === "catalog" && shown === null) newSearch();
    // Move focus to the new view's heading for keyboard and screen reader users,
    // but not on the first load.
    if (shown !== null && shown !== r.view) {
      var heading = $("view-" + r.view).querySelector("h1");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
    if (r.view === "catalog" && shown !== null && shown !== "catalog") runSearch();
    shown = r.view;
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupToken();
    setupCatalog();
    // At phone width the filters start folded, so the results come first.
    if (window.matchMedia("(max-width: 44rem)").matches) $("filters").open = false;
    $("rebuild-start").addEventListener("click", startRebuild);
    // The skip link moves focus without touching the hash (the hash is the route).
    $("skip").addEventListener("click", function (e) { e.preventDefault(); $("main").focus(); });
    window.addEventListener("hashchange", onRoute);
    onRoute();
    if (route().view !== "catalog") newSearch();
  });
})();

// The web console in a real browser: Debian's chromium driven by playwright-core.
// scripts/console.sh starts the node(s) and runs this once per shape.
//
//   CONSOLE_URL   the node that serves the console (the query side)
//   WRITE_URL     where writes go (the command side; default CONSOLE_URL)
//   CONSOLE_TOKEN an admin token when the node checks tokens (entered in the page)
//   READER_TOKEN  a reader token of that node: reads the catalog, refused operations
//   SHAPE         a name for the screenshots (embedded, kafka)
//   SCREENSHOTS   where they go (target/console)
//   PRODUCTS      how many products to seed (at least 24)
//
// What it shows: the page loads with no console error (a CSP violation or a script
// error is one), asks for the token when the node checks them, searches as you
// type, filters, shows facet counts, sorts, pages with the cursor, opens a product
// with its stock and history, shows each view and the metrics, and a rebuild
// started from the page runs to its end; labels, keyboard, contrast and phone width.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const BASE = process.env.CONSOLE_URL;
const WRITE = process.env.WRITE_URL || BASE;
const TOKEN = process.env.CONSOLE_TOKEN || "";
const SHAPE = process.env.SHAPE || "embedded";
const SHOTS = process.env.SCREENSHOTS || "target/console";
const PRODUCTS = Math.max(24, Number(process.env.PRODUCTS || 24));
assert.ok(BASE, "CONSOLE_URL is set");
fs.mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
const log = (...a) => console.log(`[${SHAPE} ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

// ---- seeding through the real HTTP API ----------------------------------------

const auth = TOKEN ? { authorization: `Bearer ${TOKEN}` } : {};

async function http(method, base, p, body, headers = {}) {
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(base + p, {
      method,
      headers: { ...auth, ...(body ? { "content-type": "application/json" } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    // 503: not ready or a read waiting for a position; the node says when to retry.
    if (r.status === 503 && attempt < 60) {
      await new Promise((res) => setTimeout(res, 500));
      continue;
    }
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return { status: r.status, position: r.headers.get("stockroom-position"), body: text ? JSON.parse(text) : null };
  }
}

const KETTLES = [
  { sku: "KET-1", name: "Steel kettle", brand: "Acme", category: "kitchen", price_cents: 2999, initial_stock: 5,
    description: "Boils a litre in three minutes", gtin: "4006381333931" },
  { sku: "KET-2", name: "Copper kettle", brand: "Globex", category: "kitchen", price_cents: 4599,
    description: "A kettle for the stove" },
  { sku: "KET-3", name: "Travel kettle", brand: "Initech", category: "kitchen", price_cents: 1999, initial_stock: 2,
    description: "Folds flat" },
];
const WORDS = ["hammer", "rake", "lamp", "shovel", "teapot", "wrench", "planter", "ladle", "saw", "hose", "mug", "drill"];
const BRANDS = ["Acme", "Globex", "Initech"];
const CATEGORIES = ["garden", "tools", "kitchen"];

function products() {
  const list = [...KETTLES];
  for (let i = 0; list.length < PRODUCTS; i++) {
    const word = WORDS[i % WORDS.length];
    list.push({
      sku: `GEN-${String(i).padStart(4, "0")}`, name: `${word[0].toUpperCase()}${word.slice(1)} model ${i}`,
      brand: BRANDS[i % 3], category: CATEGORIES[(i + Math.floor(i / 3)) % 3], price_cents: 500 + ((i * 737) % 9000),
      ...(i % 4 === 0 ? {} : { initial_stock: 1 + (i % 7) }), description: `A sturdy ${word}`,
    });
  }
  return list;
}

async function seed() {
  const list = products();
  for (let i = 0; i < list.length; i += 16) {
    await Promise.all(list.slice(i, i + 16).map((p) =>
      http("POST", WRITE, "/products", { currency: "EUR", ...p }, { "idempotency-key": `console-${p.sku}` })));
  }
  const key = (k) => ({ "idempotency-key": `console-${k}` });
  await http("POST", WRITE, "/products/KET-1/stock/receipts", { quantity: 10, reference: "PO-77" }, key("receipt"));
  const last = await http("POST", WRITE, "/products/KET-1/reservations", { reservation_id: "r-1", quantity: 3 },
    key("reservation"));
  // Read our own writes on the console's node: the catalog and the stock view.
  await http("GET", BASE, "/products/KET-1", null, { "stockroom-min-position": last.position });
  await http("GET", BASE, "/products/KET-1/history", null, { "stockroom-min-position": last.position });
  for (let i = 0; ; i++) {
    const found = await http("GET", BASE, "/search?limit=1");
    if (found.body.total === list.length) break;
    assert.ok(i < 100, `the catalog shows ${found.body.total} of ${list.length} products`);
    await new Promise((res) => setTimeout(res, 200));
  }
  return list;
}

// ---- the browser ------------------------------------------------------------------

// A fresh profile each run (playwright passes it as --user-data-dir).
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "stockroom-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  deviceScaleFactor: 1,
  // No network but the node: no update checks, no sync, no QUIC (refused here).
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

const problems = [];

async function newPage(viewport) {
  // A tab of its own: its own sessionStorage, so the page asks for the token again.
  const page = await browser.newPage();
  await page.setViewportSize(viewport);
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // Chrome logs every 4xx fetch. Expected: a 401 before the token is given (how the
    // page learns it needs one) and the 400 of the unreadable query below.
    const expected = /status of 400/.test(m.text()) || (TOKEN && /status of 401/.test(m.text()));
    if (m.type() === "error" && !expected) problems.push(`console: ${m.text()}`);
  });
  return page;
}

// Opens the console; gives the token if the page asks (by keyboard: type, Enter).
async function open(page, hash = "#/", token = TOKEN) {
  await page.goto(`${BASE}/${hash}`);
  if (token) {
    await page.locator("#token-dialog[open]").waitFor();
    await page.locator("#token-input").fill(token);
    await page.keyboard.press("Enter");
    await page.locator("#token-dialog[open]").waitFor({ state: "detached" });
  }
}

async function textMatches(page, selector, re, timeout = 15000) {
  await page.waitForFunction(([s, src, flags]) => {
    const e = document.querySelector(s);
    return e && new RegExp(src, flags).test(e.textContent);
  }, [selector, re.source, re.flags], { timeout }).catch(async () => {
    const got = await page.locator(selector).textContent().catch(() => "(missing)");
    throw new Error(`${selector}: expected ${re}, got ${JSON.stringify(got)}`);
  });
}

async function hitNames(page) {
  return page.locator("#hits .hit-name").allTextContents();
}

async function hitPrices(page) {
  return (await page.locator("#hits .price").allTextContents()).map((t) => Number(t.replace(/[^0-9.]/g, "")));
}

// Every form control has a name; every visible text has a contrast of 4.5:1 (3:1 when large).
async function accessible(page, where) {
  const report = await page.evaluate(() => {
    const unlabelled = [...document.querySelectorAll("input, select, textarea, progress")]
      .filter((e) => e.offsetParent !== null)
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby"))
      .map((e) => e.id || e.outerHTML.slice(0, 60));
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (e) => {
      for (; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const low = [];
    for (const e of document.querySelectorAll("body *")) {
      const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || e.offsetParent === null || e.closest("[hidden], svg") || e.matches(":disabled")) continue;
      const style = getComputedStyle(e);
      const rect = e.getBoundingClientRect();
      if (rect.right < 0 || rect.width === 0) continue; // the skip link, off screen until focused
      const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(e))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) low.push(`${e.tagName}.${e.className} "${e.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
    }
    return { unlabelled, low };
  });
  assert.deepEqual(report.unlabelled, [], `${where}: form controls without a label`);
  assert.deepEqual(report.low, [], `${where}: text below the contrast minimum`);
}

async function fitsWidth(page, where) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= width, `${where}: the page is ${scroll}px wide in a ${width}px window`);
}

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `${SHAPE}-${name}.png`), fullPage: true });

try {
  const list = await seed();
  log(`seeded ${list.length} products through ${WRITE}`);
  const page = await newPage({ width: 1280, height: 900 });

  // ---- the catalog: everything, then paging with the cursor -----------------
  await open(page);
  await textMatches(page, "#status", new RegExp(`^${list.length} products, showing 1–20$`));
  assert.equal((await hitNames(page)).length, 20);
  assert.equal(await page.locator("#prev").isDisabled(), true);
  const firstPage = await hitNames(page);
  await page.locator("#next").click();
  await textMatches(page, "#status", new RegExp(`showing 21–${Math.min(40, list.length)}$`));
  await textMatches(page, "#page-label", /^Page 2 of \d+$/);
  const secondPage = await hitNames(page);
  assert.ok(!secondPage.some((n) => firstPage.includes(n)), "page 2 shows other products than page 1");
  await page.locator("#prev").click();
  await textMatches(page, "#status", /showing 1–20$/);
  assert.deepEqual(await hitNames(page), firstPage);
  // Facet counts of the whole catalog.
  const kitchen = list.filter((p) => p.category === "kitchen").length;
  await textMatches(page, '#facets button[data-value="kitchen"] .count', new RegExp(`^${kitchen}$`));
  log("catalog and paging");

  // ---- search as you type (debounced), with the words marked --------------------
  await page.locator("#q").pressSequentially("kettle", { delay: 40 });
  await textMatches(page, "#status", /^3 products, showing 1–3$/);
  const kettles = await hitNames(page);
  assert.ok(kettles.every((n) => /kettle/i.test(n)), `only kettles: ${kettles}`);
  assert.ok(await page.locator("#hits mark").count() >= 3, "the matched word is marked");
  for (const brand of ["Acme", "Globex", "Initech"]) {
    assert.equal(await page.locator(`#facets button[data-value="${brand}"] .count`).textContent(), "1");
  }

  // ---- filters: in stock, then a brand by its facet, then a price range, and sort
  await page.locator("#f-instock").check();
  await textMatches(page, "#status", /^2 products/);
  assert.deepEqual((await hitNames(page)).sort(), ["Steel kettle", "Travel kettle"]);
  await page.locator("#f-sort").selectOption("price_asc");
  await textMatches(page, "#hits", /^Travel kettle.*Steel kettle/);
  const prices = await hitPrices(page);
  assert.deepEqual(prices, [...prices].sort((a, b) => a - b), "sorted by price");
  await page.locator("#f-instock").uncheck();
  await page.locator('#facets button[data-facet="brand"][data-value="Globex"]').click();
  await textMatches(page, "#status", /^1 product,/);
  assert.equal(await page.locator("#f-brand").inputValue(), "Globex");
  assert.equal(await page.locator('#facets button[data-value="Globex"]').getAttribute("aria-pressed"), "true");
  await page.locator("#f-brand").selectOption("");
  await page.locator("#f-min").fill("25");
  await page.locator("#f-max").fill("50");
  await textMatches(page, "#status", /^2 products/);
  assert.deepEqual(await hitNames(page), ["Steel kettle", "Copper kettle"]);
  await accessible(page, "catalog");
  await shot(page, "catalog");
  // A query the grammar refuses is said, not a blank page.
  await page.locator("#q").fill('"unclosed');
  await textMatches(page, "#q-error", /unclosed/);
  await page.locator("#q").fill("kettle");
  await textMatches(page, "#q-error", /^$/);
  log("search, filters, facets, sort");

  // ---- a product, opened by keyboard ------------------------------------------
  await page.locator("#f-min").fill("");
  await page.locator("#f-max").fill("");
  await page.locator("#f-sort").selectOption("relevance");
  await textMatches(page, "#status", /^3 products/);
  await page.locator("#hits .hit-name", { hasText: "Steel kettle" }).focus();
  await page.keyboard.press("Enter");
  await textMatches(page, "#product-title", /^Steel kettle$/);
  await textMatches(page, "#stock-on-hand", /On hand\s*15/);
  await textMatches(page, "#stock-reserved", /Reserved\s*3/);
  await textMatches(page, "#stock-available", /Available\s*12/);
  await textMatches(page, "#product-body", /GTIN/);
  const events = await page.locator("#history tbody tr").allTextContents();
  assert.equal(events.length, 3, `three events: ${events}`);
  assert.match(events[0], /^1ProductRegistered/);
  assert.match(events[1], /^2StockReceived.*PO-77/);
  assert.match(events[2], /^3StockReserved/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "product-title", "focus moves to the new view");
  await accessible(page, "product");
  await shot(page, "product");
  log("product page");

  // ---- operations: views, metrics, a rebuild to its end ------------------------
  await page.locator("#nav-ops").click();
  await page.locator('#views tr[data-view="catalog"]').waitFor();
  await page.locator('#views tr[data-view="stock"]').waitFor();
  await textMatches(page, '#views tr[data-view="catalog"]', /serving/);
  await textMatches(page, "#dlq-count", /^0$/);
  // Writes go on while the catalog is rebuilt; they make the command chart move.
  const writing = (async () => {
    for (let i = 0; i < 15; i++) {
      await http("POST", WRITE, "/products/KET-3/stock/receipts", { quantity: 1 }, { "idempotency-key": `console-r${i}` });
      await new Promise((res) => setTimeout(res, 150));
    }
  })();
  await page.locator("#rebuild-view").selectOption("catalog");
  await page.locator("#rebuild-start").click();
  await textMatches(page, "#rebuild-text", /^Rebuild of catalog done/, 120000);
  assert.equal(await page.locator("#rebuild-progress").evaluate((e) => e.value), 100);
  await writing;
  await textMatches(page, '#views tr[data-view="catalog"]', /done \(/);
  // Charts need two readings of /metrics.
  await page.locator("#chart-lag svg").waitFor();
  if (WRITE === BASE) {
    await page.locator("#chart-commands svg").waitFor();
    await textMatches(page, "#chart-commands .legend", /accepted/);
  } else {
    await textMatches(page, "#chart-commands", /a query node/);
  }
  await textMatches(page, "#chart-lag .legend", /catalog.*stock/);
  await accessible(page, "operations");
  await shot(page, "ops");
  log("operations and a rebuild");

  // ---- keyboard: the first Tab reaches the skip link, which leads to the content ----
  await page.locator("#nav-catalog").click();
  await page.reload(); // the token stays in this tab's sessionStorage
  await textMatches(page, "#status", /products, showing/);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "skip");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main");

  // ---- phone width -------------------------------------------------------------------
  const phone = await newPage({ width: 390, height: 844 });
  await open(phone);
  await textMatches(phone, "#status", /products, showing 1–20$/);
  await fitsWidth(phone, "catalog at phone width");
  await shot(phone, "phone-catalog");
  await phone.locator("#hits .hit-name").first().click();
  await textMatches(phone, "#product-body", /Available/);
  await fitsWidth(phone, "a product at phone width");
  await phone.locator("#nav-ops").click();
  await phone.locator('#views tr[data-view="catalog"]').waitFor();
  await fitsWidth(phone, "operations at phone width");
  await shot(phone, "phone-ops");
  log("phone width");

  // ---- a reader token: the catalog, but not operations ------------------------------
  if (process.env.READER_TOKEN) {
    const reader = await newPage({ width: 1280, height: 900 });
    await open(reader, "#/", process.env.READER_TOKEN);
    await textMatches(reader, "#status", /products, showing 1–20$/);
    await reader.locator("#nav-ops").click();
    await textMatches(reader, "#ops-status", /needs the admin role/);
    await reader.locator("#rebuild-start").click();
    await textMatches(reader, "#rebuild-text", /^Cannot start a rebuild: .*admin role/);
    problems.splice(0, problems.length, ...problems.filter((p) => !/status of 403/.test(p)));
    log("a reader token");
  }

  assert.deepEqual(problems, [], "no script error, CSP violation or failed request in the page");
  log(`passed; screenshots in ${SHOTS}/${SHAPE}-*.png`);
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

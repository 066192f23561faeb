// Northwind Markets: a small trading UI instrumented with Personafin Capture. What it shows:
// - `init()` once, with the signed-in user's id as `clientRef`;
// - explicit `track()` calls for what only the app knows (an order placed, a search);
// - declarative `data-pf-event` attributes for simple clicks (watchlist, alerts);
// - page views recorded by the tracker itself on every SPA route change;
// - a recommendations panel fed by ingest's `/v1/recommendations` (through this demo's
//   server, which holds the secret key), whose items carry impression ids that the tracker
//   reports as viewed and clicked — and that a conversion (watchlist, order) carries along.
import { init, track, sessionId, queuedEvents } from "/js-wrapper/dist/index.js";
import { INSTRUMENTS, NEWS, instrument, series } from "/examples/demo/data.js";

const $ = (id) => document.getElementById(id);
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const money = (n) => n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const pct = (n) => `${n >= 0 ? "+" : ""}${n.toFixed(2)}%`;

let stored = 0;
/** The impression that led to the instrument on screen, carried into conversions. */
let arrivedFrom = null;

// ---- watchlist (the app's own state; tracking is declarative on the buttons) ----

/**
 * The watchlist is kept in `localStorage` where the browser allows it; where storage is blocked
 * (a privacy setting, a sandboxed frame), it lives as long as the page, with one warning.
 */
const saved = {
  warned: false,
  read() {
    try {
      return JSON.parse(localStorage.getItem("northwind-watchlist") ?? '["AAPL","NVDA"]');
    } catch (e) {
      this.warn(e);
      return ["AAPL", "NVDA"];
    }
  },
  write(list) {
    try {
      localStorage.setItem("northwind-watchlist", JSON.stringify(list));
    } catch (e) {
      this.warn(e);
    }
  },
  warn(e) {
    if (!this.warned) console.warn("[northwind] the watchlist is not saved on this device:", e.message);
    this.warned = true;
  },
};
const watchlist = new Set(saved.read());

function saveWatchlist() {
  saved.write([...watchlist]);
  renderWatchlist();
}

function renderWatchlist() {
  const rows = [...watchlist].map(instrument).filter(Boolean);
  $("watchlist").innerHTML = rows
    .map(
      (i) => `<li class="row"><a href="/instrument/${i.ticker}" data-route><b>${i.ticker}</b><br><span class="name">${escape(i.name)}</span></a>
        <span class="${i.change >= 0 ? "up" : "down"}">${money(i.price)}<br>${pct(i.change)}</span></li>`,
    )
    .join("");
  $("watchlist-empty").hidden = rows.length > 0;
}

function watchButton(ticker) {
  const on = watchlist.has(ticker);
  const event = on ? "watchlist.removed" : "watchlist.added";
  return `<button class="watch" data-watch="${ticker}" data-pf-event="${event}" data-pf-entities="ticker:${ticker}" data-pf-meta-surface="instrument_page">${on ? "★ Watching" : "☆ Watch"}</button>`;
}

document.addEventListener("click", (e) => {
  const button = e.target.closest("[data-watch]");
  if (!button) return;
  const ticker = button.dataset.watch;
  watchlist.has(ticker) ? watchlist.delete(ticker) : watchlist.add(ticker);
  saveWatchlist();
  // Re-render after the tracker's click listener has read the attributes.
  setTimeout(() => (button.outerHTML = watchButton(ticker)));
});

// ---- routes ----

function navigate(path) {
  history.pushState({}, "", path);
  render();
}

document.addEventListener("click", (e) => {
  const link = e.target.closest("a[data-route]");
  if (!link || e.metaKey || e.ctrlKey) return;
  e.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", () => render());

function render() {
  const match = /^\/instrument\/([A-Z.]+)$/.exec(location.pathname);
  const current = match && instrument(match[1]);
  if (current) renderInstrument(current);
  else renderMarkets();
  window.scrollTo(0, 0);
  loadRecommendations(current ? "instrument_page" : "home");
  loadTrending();
}

function renderMarkets() {
  document.title = "Markets · Northwind";
  const movers = [...INSTRUMENTS].sort((a, b) => Math.abs(b.change) - Math.abs(a.change));
  $("view").innerHTML = `
    <section class="card"><h2 style="margin-top:0">Markets</h2>
      <table class="movers"><thead><tr><th>Instrument</th><th>Sector</th><th>Last</th><th>Change</th></tr></thead><tbody>
      ${movers
        .map(
          (i) => `<tr data-ticker="${i.ticker}"><td><b>${i.ticker}</b> <span class="name">${escape(i.name)}</span></td>
          <td>${i.sector}</td><td>${money(i.price)}</td><td class="${i.change >= 0 ? "up" : "down"}">${pct(i.change)}</td></tr>`,
        )
        .join("")}
      </tbody></table></section>
    <section class="card news"><h2 style="margin-top:0">Latest news</h2>${newsList(NEWS)}</section>`;
  for (const row of $("view").querySelectorAll("tr[data-ticker]")) {
    row.addEventListener("click", () => {
      track("instrument", "clicked", { relatedEntities: [`ticker:${row.dataset.ticker}`], eventMeta: { surface: "markets_table" } });
      navigate(`/instrument/${row.dataset.ticker}`);
    });
  }
  wireNews();
}

function renderInstrument(i) {
  document.title = `${i.ticker} · Northwind`;
  const related = NEWS.filter((n) => n.tickers.includes(i.ticker));
  $("view").innerHTML = `
    <section class="card">
      <div class="quote"><h1>${i.ticker}</h1><span class="name">${escape(i.name)} · ${i.sector}</span>
        <span class="price">${money(i.price)}</span><span class="${i.change >= 0 ? "up" : "down"}">${pct(i.change)} today</span></div>
      <div class="ranges" role="group" aria-label="Chart range">
        ${["1M", "3M", "1Y"].map((r, k) => `<button data-range="${r}" aria-pressed="${k === 1}">${r}</button>`).join("")}
      </div>
      <svg class="chart" id="chart" viewBox="0 0 600 220" preserveAspectRatio="none" aria-label="${i.ticker} price chart"></svg>
      <div class="actions">
        <button class="primary" id="buy">Buy</button>
        <button class="sell" id="sell">Sell</button>
        ${watchButton(i.ticker)}
        <button data-pf-event="alert.created" data-pf-entities="ticker:${i.ticker}" data-pf-meta-threshold="5%">Set alert ±5%</button>
      </div>
    </section>
    <section class="card news"><h2 style="margin-top:0">News on ${i.ticker}</h2>${related.length ? newsList(related) : '<p class="hint">No news today.</p>'}</section>`;
  drawChart(i.ticker, "3M");
  for (const b of $("view").querySelectorAll("[data-range]")) {
    b.addEventListener("click", () => {
      for (const o of $("view").querySelectorAll("[data-range]")) o.setAttribute("aria-pressed", String(o === b));
      drawChart(i.ticker, b.dataset.range);
      track("chart", "interacted", { relatedEntities: [`ticker:${i.ticker}`], eventMeta: { range: b.dataset.range } });
    });
  }
  $("buy").addEventListener("click", () => openTicket(i, "buy"));
  $("sell").addEventListener("click", () => openTicket(i, "sell"));
  track("instrument", "viewed", { relatedEntities: [`ticker:${i.ticker}`], eventMeta: { surface: "instrument_page" } });
  wireNews();
}

function drawChart(ticker, range) {
  const points = series(ticker, { "1M": 22, "3M": 66, "1Y": 250 }[range]);
  const lo = Math.min(...points);
  const hi = Math.max(...points);
  const xy = points.map((p, k) => `${((k / (points.length - 1)) * 600).toFixed(1)},${(210 - ((p - lo) / (hi - lo || 1)) * 200).toFixed(1)}`);
  const up = points.at(-1) >= points[0];
  $("chart").innerHTML = `<polyline fill="none" stroke="${up ? "#22c55e" : "#f43f5e"}" stroke-width="2" points="${xy.join(" ")}"/>`;
}

// ---- news: content events ----

function newsList(items) {
  return items
    .map(
      (n) => `<article data-news="${n.id}"><h3>${escape(n.title)}</h3>
        <div class="meta">${n.source} · ${n.minutes < 60 ? `${n.minutes} min` : `${Math.round(n.minutes / 60)} h`} ago · ${n.tickers.join(", ")}</div>
        <p class="body" hidden>${escape(n.summary)}</p></article>`,
    )
    .join("");
}

function wireNews() {
  for (const article of $("view").querySelectorAll("article[data-news]")) {
    article.addEventListener("click", () => {
      const n = NEWS.find((x) => x.id === article.dataset.news);
      const body = article.querySelector(".body");
      if (!body.hidden) return;
      body.hidden = false;
      const options = { relatedEntities: n.tickers.map((t) => `ticker:${t}`), eventMeta: { content_id: n.id } };
      track("content", "clicked", options);
      // Still open five seconds later: it was read.
      setTimeout(() => article.isConnected && track("content", "read", options), 5000);
    });
  }
}

// ---- trading ----

let ticketFor = null;

function openTicket(i, side) {
  ticketFor = { ...i, side };
  $("ticket-title").textContent = `${side === "buy" ? "Buy" : "Sell"} ${i.ticker} at ${money(i.price)}`;
  $("ticket-estimate").textContent = `≈ $${money(i.price * 10)}`;
  $("ticket-form").quantity.value = 10;
  $("ticket").showModal();
  track("trade", "ticket_opened", { relatedEntities: [`ticker:${i.ticker}`], eventMeta: { side } });
}

$("ticket-form").quantity.addEventListener("input", (e) => {
  $("ticket-estimate").textContent = `≈ $${money(ticketFor.price * Number(e.target.value || 0))}`;
});

$("ticket").addEventListener("close", () => {
  if ($("ticket").returnValue !== "place" || !ticketFor) return;
  const quantity = Number($("ticket-form").quantity.value);
  const conversion = arrivedFrom?.ticker === ticketFor.ticker ? { impressionId: arrivedFrom.impressionId } : {};
  track("trade", "order_placed", {
    relatedEntities: [`ticker:${ticketFor.ticker}`],
    eventMeta: { side: ticketFor.side, quantity },
    ...conversion,
  });
  toast(`${ticketFor.side === "buy" ? "Bought" : "Sold"} ${quantity} ${ticketFor.ticker}`);
});

function toast(text) {
  $("toast").textContent = text;
  $("toast").hidden = false;
  setTimeout(() => ($("toast").hidden = true), 2500);
}

// ---- search ----

const form = $("search");
form.q.addEventListener("input", () => {
  const q = form.q.value.trim().toLowerCase();
  const hits = q ? INSTRUMENTS.filter((i) => i.ticker.toLowerCase().startsWith(q) || i.name.toLowerCase().includes(q)).slice(0, 6) : [];
  $("suggestions").hidden = hits.length === 0;
  $("suggestions").innerHTML = hits
    .map((i, k) => `<li data-ticker="${i.ticker}" data-position="${k + 1}"><b>${i.ticker}</b><span class="name">${escape(i.name)}</span></li>`)
    .join("");
});
form.addEventListener("submit", (e) => {
  e.preventDefault();
  const query = form.q.value.trim();
  if (query) track("search", "submitted", { eventMeta: { query } });
  $("suggestions").querySelector("li")?.click();
});
$("suggestions").addEventListener("click", (e) => {
  const li = e.target.closest("li[data-ticker]");
  if (!li) return;
  track("search", "result_clicked", {
    relatedEntities: [`ticker:${li.dataset.ticker}`],
    eventMeta: { query: form.q.value.trim(), position: Number(li.dataset.position) },
  });
  $("suggestions").hidden = true;
  form.q.value = "";
  navigate(`/instrument/${li.dataset.ticker}`);
});

// ---- recommendations and trending, from ingest's datasets ----

async function loadRecommendations(surface) {
  const list = $("recommendations");
  let answer;
  try {
    const r = await fetch(`/api/recommendations?kind=entities&surface=${surface}&limit=5`);
    answer = r.ok ? await r.json() : null;
  } catch {
    answer = null;
  }
  const items = answer?.items ?? [];
  // Each item's event_meta (impression_id, position, recommender, request_id, surface) goes
  // onto the element; the tracker turns it into `recommendation.viewed` / `.clicked`.
  list.innerHTML = items
    .map((item) => {
      const m = item.event_meta;
      const i = instrument(item.entity.id);
      return `<li class="row" data-ticker="${escape(item.entity.id)}" data-pf-impression-id="${escape(m.impression_id)}"
          data-pf-position="${m.position}" data-pf-recommender="${escape(m.recommender)}" data-pf-request-id="${escape(m.request_id)}"
          data-pf-surface="${escape(m.surface)}" data-pf-entities="ticker:${escape(item.entity.id)}">
        <span><b>${escape(item.entity.id)}</b> <span class="name">${escape(i?.name ?? "")}</span>
          <span class="why">${escape((item.reasons ?? []).join(", "))}</span></span>
        ${i ? `<span class="${i.change >= 0 ? "up" : "down"}">${pct(i.change)}</span>` : ""}</li>`;
    })
    .join("");
  $("recommendations-hint").textContent = answer
    ? items.length
      ? ""
      : "Browse a few instruments: recommendations learn from what you view, watch and trade."
    : "Recommendations are unavailable right now.";
  for (const li of list.querySelectorAll("li[data-ticker]")) {
    li.addEventListener("click", () => {
      arrivedFrom = { ticker: li.dataset.ticker, impressionId: li.dataset.pfImpressionId };
      navigate(`/instrument/${li.dataset.ticker}`);
    });
  }
}

async function loadTrending() {
  let answer;
  try {
    const r = await fetch("/api/trending?limit=5");
    answer = r.ok ? await r.json() : null;
  } catch {
    answer = null;
  }
  const items = answer?.items ?? [];
  $("trending").innerHTML = items
    .map((item) => {
      const id = item.entity.id;
      const users = item.unique_users_24h;
      return `<li class="row"><a href="/instrument/${escape(id)}" data-route><b>${escape(id)}</b></a><span class="name">${users} trader${users === 1 ? "" : "s"} today</span></li>`;
    })
    .join("");
  $("trending-hint").textContent = items.length ? "" : "Trending lists are rebuilt every minute from everyone's activity.";
}

// ---- start ----

const config = await (await fetch("/api/config")).json();
$("dashboard").href = config.dashboard;
await init({
  clientKey: config.clientKey,
  endpoint: config.endpoint,
  clientRef: config.clientRef,
  onBatch: (b) => ($("stored").textContent = String((stored += b.accepted))),
  onError: (e) => console.warn("[northwind]", e.message),
});
// No session where the tracker cannot run (no WebAssembly): the app works all the same.
$("session").textContent = (sessionId() ?? "off").slice(0, 8);
setInterval(() => ($("waiting").textContent = String(queuedEvents())), 300);
renderWatchlist();
render();

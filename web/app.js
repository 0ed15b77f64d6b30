// The chart: a dataset/symbol/timeframe picker, the history from /api/bars, and live
// updates pushed by the daemon over /ws (MarketStore's streaming protocol: msgpack
// `{"streams": ["SYM/1Min/dataset"]}` in, `{key, data: {Epoch, Open, ...}}` out, one
// message per appended or updated bar). The choice lives in the page's URL
// (?dataset=&symbol=&timeframe=&limit=), so a view can be bookmarked or shared.
//
// Live and history meet without a gap: the websocket subscribes first, and the history
// is asked for only once the daemon has echoed the subscription (it has joined the
// topic by then); bars that arrive meanwhile are held and applied after it. A bar
// published in between is in both, and applying it again changes nothing (same time,
// same values).

import { apiUrl, getJson, shared } from "./net.js";

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const chartEl = $("chart");
const noteEl = $("chart-note");

let lib = null; // the chart library's module
let chart = null;
let candles = null; // the candlestick series
let volume = null; // the volume histogram
let bars = new Map(); // time (s) -> bar
let lastTime = -Infinity;
let datasets = []; // from /api/datasets
let live = null; // the WebSocket
let generation = 0; // bumped per view: late answers of an old view are dropped

function setStatus(text, kind = "") {
  statusEl.textContent = text;
  statusEl.className = `status ${kind}`;
}

function note(text) {
  noteEl.hidden = !text;
  noteEl.textContent = text ?? "";
}

function choice() {
  return {
    dataset: $("dataset").value,
    symbol: $("symbol").value,
    timeframe: $("timeframe").value.trim(),
    limit: Number($("limit").value) || 1000,
  };
}

/** The bar at `time` (seconds), for the tests. */
shared.barAt = (time) => bars.get(time) ?? null;

function publishCount() {
  shared.candles = bars.size;
  chartEl.dataset.candles = String(bars.size);
}

/** Rows of a columns object ({ts: [...ms], open: [...], ...}) as chart bars. */
function rowsOf(columns) {
  const ts = columns.ts ?? [];
  const out = [];
  for (let i = 0; i < ts.length; i++) {
    if (ts[i] === null) continue;
    out.push({
      time: Math.floor(ts[i] / 1000),
      open: columns.open?.[i],
      high: columns.high?.[i],
      low: columns.low?.[i],
      close: columns.close?.[i],
      volume: columns.volume?.[i] ?? 0,
      complete: columns.complete?.[i],
    });
  }
  return out.filter((b) => [b.open, b.high, b.low, b.close].every((x) => typeof x === "number"));
}

function ohlc(b) {
  return { time: b.time, open: b.open, high: b.high, low: b.low, close: b.close };
}

function volumeOf(b) {
  return { time: b.time, value: b.volume, color: b.close >= b.open ? "#26a69a66" : "#ef535066" };
}

function redraw() {
  const sorted = [...bars.values()].sort((a, b) => a.time - b.time);
  candles.setData(sorted.map(ohlc));
  volume.setData(sorted.map(volumeOf));
  lastTime = sorted.length ? sorted[sorted.length - 1].time : -Infinity;
  publishCount();
}

/** Applies live bars: a new or the newest bar is an update; an older one (a correction) redraws. */
function applyLive(rows) {
  let older = false;
  for (const b of rows) {
    bars.set(b.time, b);
    if (b.time >= lastTime && !older) {
      candles.update(ohlc(b));
      volume.update(volumeOf(b));
      lastTime = b.time;
    } else {
      older = true;
    }
  }
  if (older) redraw();
  publishCount();
  if (rows.length) shared.lastBar = rows[rows.length - 1];
}

async function loadHistory(view) {
  const c = choice();
  const answer = await getJson("/api/bars", {
    dataset: c.dataset,
    symbol: c.symbol,
    timeframe: c.timeframe,
    limit: c.limit,
    fields: "open,high,low,close,volume",
  });
  if (view !== generation) return false;
  bars = new Map(rowsOf(answer.columns).map((b) => [b.time, b]));
  redraw();
  chart.timeScale().fitContent();
  return true;
}

function stopLive() {
  if (live) {
    live.onclose = null;
    live.close();
  }
  live = null;
  shared.liveReady = false;
}

function isStored(dataset, timeframe) {
  const d = datasets.find((x) => x.name === dataset);
  return !!d && d.timeframes.includes(timeframe);
}

/** MarketStore's name of a timeframe ("1m" -> "1Min"), as /ws keys use it. */
function marketstoreTimeframe(tf) {
  if (tf === "tick") return "Tick";
  const m = /^(\d+)(.*)$/.exec(tf);
  if (!m) return tf;
  const unit = { s: "Sec", m: "Min", h: "H", d: "D", w: "W" }[m[2]] ?? m[2];
  return `${m[1]}${unit}`;
}

/** The page's websocket URL (ws: or wss: as the page was served). */
function wsUrl() {
  const u = new URL(apiUrl("/ws"));
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.toString();
}

const RECONNECT_MS = 2000;

/** Subscribes the chart's topic on /ws; on the echo, loads the history; reconnects when cut. */
function startLive(view, c, label) {
  const MessagePack = window.MessagePack;
  let held = []; // live bars that arrive before the history
  let loaded = false;
  const stream = `${c.symbol}/${marketstoreTimeframe(c.timeframe)}/${c.dataset}`;
  const ws = new WebSocket(wsUrl());
  ws.binaryType = "arraybuffer";
  live = ws;
  ws.onopen = () => ws.send(MessagePack.encode({ streams: [stream] }));
  ws.onmessage = async (ev) => {
    if (view !== generation) return;
    const m = MessagePack.decode(new Uint8Array(ev.data));
    if (m.error) {
      setStatus(`${label}: ${m.error}`, "error");
      return;
    }
    if (m.streams) {
      // The echo: the daemon reads the topic for this socket from now on.
      shared.liveReady = true;
      try {
        if (!(await loadHistory(view))) return;
        loaded = true;
        applyLive(held);
        held = [];
        setStatus(`${label}: ${bars.size} bars, live`, "ok");
      } catch (e) {
        setStatus(`${label}: ${e.message}`, "error");
      }
      return;
    }
    if (!m.key || !m.data || m.key.split("/")[0] !== c.symbol) return;
    const d = m.data;
    const bar = { time: Number(d.Epoch), open: d.Open, high: d.High, low: d.Low, close: d.Close, volume: d.Volume ?? 0 };
    shared.liveEvents += 1;
    // When the newest live bar arrived (wall clock, ms): scripts/bench_web.py reads it.
    shared.lastArrival = { time: bar.time, ms: performance.timeOrigin + performance.now() };
    if (loaded) {
      applyLive([bar]);
      setStatus(`${label}: ${bars.size} bars, live`, "ok");
    } else {
      held.push(bar);
    }
  };
  ws.onclose = (ev) => {
    if (view !== generation) return;
    shared.liveReady = false;
    const why = ev.reason || (ev.code === 1006 ? "the connection dropped" : `closed (${ev.code})`);
    setStatus(`${label}: live stream ended: ${why}; reconnecting…`, "warn");
    setTimeout(() => { if (view === generation) startLive(view, c, label); }, RECONNECT_MS);
  };
}

/** Shows the picker's choice: live stream first (when the timeframe has a topic), then history. */
async function show() {
  const view = ++generation;
  stopLive();
  const c = choice();
  history.replaceState(null, "", apiUrl(location.pathname, { dataset: c.dataset, symbol: c.symbol, timeframe: c.timeframe, limit: c.limit }));
  if (!c.dataset || !c.symbol || !c.timeframe) {
    setStatus("no data yet: append bars to a dataset");
    return;
  }
  const label = `${c.dataset} ${c.symbol} ${c.timeframe}`;
  if (!isStored(c.dataset, c.timeframe)) {
    // Resampled on read: history only (live topics exist for stored timeframes).
    setStatus(`${label}: loading…`);
    try {
      await loadHistory(view);
      if (view === generation) setStatus(`${label}: ${bars.size} bars (resampled on read: no live updates)`, "ok");
    } catch (e) {
      if (view === generation) setStatus(`${label}: ${e.message}`, "error");
    }
    return;
  }
  setStatus(`${label}: joining the live topic…`);
  startLive(view, c, label);
}

function fillSymbols() {
  const d = datasets.find((x) => x.name === $("dataset").value);
  const sel = $("symbol");
  const want = sel.value || new URLSearchParams(location.search).get("symbol");
  sel.replaceChildren(...(d?.symbols ?? []).map((s) => new Option(s, s)));
  if (want && d?.symbols.includes(want)) sel.value = want;
  const list = $("timeframes");
  list.replaceChildren(...(d?.timeframes ?? []).map((t) => new Option(`${t} (live)`, t)));
}

async function loadDatasets() {
  const answer = await getJson("/api/datasets");
  datasets = answer.datasets;
  const sel = $("dataset");
  const params = new URLSearchParams(location.search);
  const want = sel.value || params.get("dataset");
  sel.replaceChildren(...datasets.map((d) => new Option(d.name, d.name)));
  if (want && datasets.some((d) => d.name === want)) sel.value = want;
  if (!$("timeframe").dataset.touched) {
    const d = datasets.find((x) => x.name === sel.value);
    $("timeframe").value = params.get("timeframe") ?? d?.base ?? "1m";
  }
  if (params.get("limit")) $("limit").value = params.get("limit");
  fillSymbols();
}

async function main() {
  try {
    lib = await import("./vendor/lightweight-charts.mjs");
    if (!window.MessagePack) throw new Error("no msgpack");
  } catch {
    note("The chart libraries are missing from this build of ringfeedd: run scripts/build_web.sh (npm ci in web/), then rebuild the daemon. The operations view below works without it.");
    setStatus("no chart library", "error");
    return;
  }
  chart = lib.createChart(chartEl, {
    autoSize: true,
    layout: { background: { color: "#11161c" }, textColor: "#c9d1d9" },
    grid: { vertLines: { color: "#1f2630" }, horzLines: { color: "#1f2630" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  candles = chart.addSeries(lib.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
    wickUpColor: "#26a69a", wickDownColor: "#ef5350",
  });
  volume = chart.addSeries(lib.HistogramSeries, {
    priceFormat: { type: "volume" }, priceScaleId: "", lastValueVisible: false, priceLineVisible: false,
  });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.85, bottom: 0 } });
  $("dataset").addEventListener("change", () => { fillSymbols(); show(); });
  $("symbol").addEventListener("change", show);
  $("timeframe").addEventListener("input", () => { $("timeframe").dataset.touched = "1"; });
  $("picker").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
  try {
    await loadDatasets();
  } catch (e) {
    setStatus(e.message, "error");
    return;
  }
  await show();
}

main();

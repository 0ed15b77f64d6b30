// The operations view: /api/ops every second. The daemon gives totals (counters since
// it started); rates are the change between two snapshots over their `now_ms`.

import { getJson, shared } from "./net.js";

const EVERY_MS = 1000;
const $ = (id) => document.getElementById(id);
let previous = null;

const fmtInt = (n) => (n ?? 0).toLocaleString("en-US");
function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
function fmtAge(ns) {
  if (ns === null || ns === undefined) return "–";
  const ms = ns / 1e6;
  return ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
const fmtRate = (x) => (x === null ? "–" : x < 10 ? x.toFixed(2) : x.toFixed(0));

/** The change from `before` (in the previous snapshot) to `after` (in `now`), per second; null without a previous one. */
function perSec(now, before, after) {
  if (!previous || before === undefined || after === undefined) return null;
  const dt = (now.now_ms - previous.now_ms) / 1000;
  return dt > 0 ? Math.max(0, (after - before) / dt) : null;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function row(cells, attrs = {}) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs)) tr.setAttribute(k, v);
  tr.append(...cells);
  return tr;
}

/** `rows`, or one row across `cols` columns saying `empty` when there are none. */
function orEmpty(rows, cols, empty) {
  if (rows.length) return rows;
  const td = cell(empty, "empty");
  td.colSpan = cols;
  return [row([td])];
}

function fillList(dl, pairs) {
  const items = [];
  for (const [k, v] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    items.push(dt, dd);
  }
  dl.replaceChildren(...items);
}

function render(s) {
  const topicKey = (t) => `${t.dataset}/${t.timeframe}`;
  const prevTopics = new Map((previous?.topics ?? []).map((t) => [topicKey(t), t]));

  fillList($("ops-ingest"), [
    ["rows/s", fmtRate(perSec(s, previous?.ingest.rows, s.ingest.rows))],
    ["rows total", fmtInt(s.ingest.rows)],
    ["batches published", fmtInt(s.ingest.published_batches)],
    ["publish failures", fmtInt(s.ingest.publish_failures)],
  ]);
  const lookups = s.queries.total;
  fillList($("ops-cache"), [
    ["entries", `${fmtInt(s.cache.entries)} of ${fmtInt(s.cache.max_entries)}`],
    ["bytes", `${fmtBytes(s.cache.bytes)} of ${fmtBytes(s.cache.budget_bytes)}`],
    ["hits", `${fmtInt(s.cache.hits)} of ${fmtInt(lookups)} queries${lookups ? ` (${Math.round((100 * s.cache.hits) / lookups)}%)` : ""}`],
    ["evictions", fmtInt(s.cache.evictions)],
    ["refused busy", fmtInt(s.cache.refusals)],
  ]);
  const wd = s.write_down;
  const hot = wd.hot.map((h) => `${h.dataset}: ${h.days} hot day${h.days === 1 ? "" : "s"}${h.due ? `, ${h.due} due` : ""}`).join("; ");
  fillList($("ops-write-down"), [
    ["status", wd.delay_seconds === null ? "off (every day stays hot)" : wd.errors && !wd.passes ? "failing (retried)" : "on"],
    ["next pass", wd.next_due_ms === null ? "–" : new Date(wd.next_due_ms).toISOString().replace(".000Z", "Z")],
    ["passes", `${fmtInt(wd.passes)} ok, ${fmtInt(wd.errors)} failed`],
    ["partitions written", fmtInt(wd.partitions)],
    ["hot tier", hot || "empty"],
  ]);
  fillList($("ops-daemon"), [
    ["pid", String(s.pid)],
    ["connections", fmtInt(s.connections)],
    ["queries", `${fmtInt(s.queries.total)} (${fmtInt(s.queries.errors)} failed, slowest ${(s.queries.max_seconds * 1000).toFixed(1)} ms)`],
    ["store", s.store.read_only ? `read-only: ${s.store.read_only}` : "writable"],
  ]);

  $("ops-topics").tBodies[0].replaceChildren(
    ...orEmpty(s.topics.map((t) => {
      const was = prevTopics.get(topicKey(t));
      const r = perSec(s, was?.write_seq, t.write_seq);
      const live = t.readers.filter((x) => !x.problem);
      return row(
        [
          cell(topicKey(t)),
          cell(fmtInt(t.write_seq), "num"),
          cell(fmtRate(r), "num"),
          cell(String(live.length), "num"),
          cell(fmtInt(Math.max(0, ...live.map((x) => x.lag))), "num"),
          cell(String(live.reduce((a, x) => a + x.leases, 0)), "num"),
          cell(t.writer_alive ? "alive" : "gone", t.writer_alive ? "ok" : "error"),
          cell(fmtInt(t.backlog_rows), t.backlog_rows ? "num warn" : "num"),
        ],
        { "data-topic": topicKey(t), "data-readers": String(live.length) },
      );
    }), 8, "no live topics yet: a topic ring is made by its first subscriber or append"),
  );
  $("ops-readers").tBodies[0].replaceChildren(
    ...orEmpty(s.topics.flatMap((t) =>
      t.readers.map((x) =>
        row(
          [
            cell(topicKey(t)),
            cell(String(x.pid), "num"),
            cell(fmtInt(x.cursor), "num"),
            cell(fmtInt(x.lag), "num"),
            cell(String(x.leases), "num"),
            cell(fmtAge(x.lease_age_ns), x.lease_age_ns > 1e9 ? "num warn" : "num"),
            cell(fmtInt(x.missed), "num"),
            cell(x.problem ?? (x.pid === s.pid ? "inside the daemon (the websocket hub or a Flight subscription)" : ""), x.problem ? "error" : ""),
          ],
          { "data-topic": topicKey(t), "data-pid": String(x.pid) },
        ),
      ),
    ), 8, "no readers"),
  );
  const rings = s.host_rings;
  $("host-rings-block").hidden = !rings;
  if (rings) {
    const prevRings = new Map((previous?.host_rings ?? []).map((r) => [r.name, r]));
    $("ops-host-rings").tBodies[0].replaceChildren(
      ...orEmpty(rings.map((r) => {
        const was = prevRings.get(r.name);
        const rt = perSec(s, was?.write_seq, r.write_seq);
        return row(
          [
            cell(r.name),
            cell(r.state),
            cell(fmtInt(r.write_seq), "num"),
            cell(fmtRate(rt), "num"),
            cell(r.writer_alive ? `alive (pid ${r.writer_pid})` : `gone (pid ${r.writer_pid})`, r.writer_alive ? "ok" : "error"),
            cell(String(r.readers), "num"),
            cell(fmtInt(r.lag), "num"),
            cell(String(r.leases), "num"),
          ],
          { "data-ring": r.name },
        );
      }), 8, "none"),
    );
  }
  $("ops-age").textContent = `as of ${new Date(s.now_ms).toISOString().slice(11, 19)} UTC`;
}

async function refresh() {
  try {
    const s = await getJson("/api/ops");
    render(s);
    previous = s;
    shared.ops = s;
    shared.opsRefreshes += 1;
    $("ops").classList.remove("stale");
  } catch (e) {
    $("ops").classList.add("stale");
    $("ops-age").textContent = `(not refreshed: ${e.message})`;
  }
  setTimeout(refresh, EVERY_MS);
}

refresh();

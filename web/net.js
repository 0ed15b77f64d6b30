// The daemon's JSON API as the page calls it: every request carries the page's
// `access_token` (browsers cannot set headers on a WebSocket, so the token travels
// as a query parameter, RFC 6750 §2.3; the daemon accepts either).

const token = new URLSearchParams(location.search).get("access_token");

/** The URL of an API path with `params` (and the page's token). */
export function apiUrl(path, params = {}) {
  const u = new URL(path, location.href);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, String(v));
  }
  if (token) u.searchParams.set("access_token", token);
  return u.toString();
}

/** GET an API path as JSON; a refusal throws an Error with the daemon's message. */
export async function getJson(path, params = {}) {
  const r = await fetch(apiUrl(path, params), { cache: "no-store" });
  const text = await r.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!r.ok) {
    const msg = body?.error?.message ?? text.trim();
    const e = new Error(`${r.status}: ${msg}`);
    e.status = r.status;
    throw e;
  }
  return body;
}

/** Shared state the tests read (window.__ringfeed). */
export const shared = (window.__ringfeed ??= {
  candles: 0,
  liveEvents: 0,
  liveReady: false,
  lastBar: null,
  ops: null,
  opsRefreshes: 0,
});

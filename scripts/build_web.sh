#!/usr/bin/env bash
# Fetches the web page's chart library (lightweight-charts, pinned exactly in
# web/package.json and web/package-lock.json) from the npm registry into web/node_modules
# with `npm ci`. The daemon's build.rs embeds it; build the daemon after this (a daemon
# built before serves the page, whose chart asks for this script). Does nothing when
# node_modules already matches the lock file. Called by scripts/test.sh and demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
lib=web/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.mjs
if [ -f "$lib" ] && [ web/node_modules/.package-lock.json -nt web/package-lock.json ]; then
  say "web: chart library up to date (web/node_modules)"
  exit 0
fi
need_node
say "web: npm ci (web/package-lock.json)"
(cd web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
[ -f "$lib" ] || { echo "npm ci did not produce $lib" >&2; exit 1; }
say "web: chart library fetched; (re)build ringfeedd to embed it"

# Shared helpers for scripts/*.sh. Source it; do not run it.
# shellcheck shell=bash

say() { printf '\033[1m== %s\033[0m  [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

# apt_install PKG...: installs Debian packages that are missing (needs root or sudo).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing packages ${missing[*]} and no apt-get: install them by hand" >&2
    return 1
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing ${missing[*]} (apt-get)"
  $sudo apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# need_rust: cargo 1.88+ must be present (Debian's own cargo is too old for arrow 60).
need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust 1.88 or newer (rustup) and re-run" >&2
    exit 1
  fi
}

# need_base: the C toolchain and friends every build needs.
need_base() {
  command -v cc >/dev/null 2>&1 || apt_install build-essential
  command -v python3 >/dev/null 2>&1 || apt_install python3
  # TLS tests make their certificates with it.
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  # `ringfeed top` is tested in a detached tmux session (crates/cli/tests/top.rs).
  command -v tmux >/dev/null 2>&1 || apt_install tmux
}

# need_node: node and npm, to fetch the web page's chart library (scripts/build_web.sh).
need_node() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
}

# need_chromium: Debian's headless-capable Chromium, which python/tests/test_web.py drives
# through playwright (never a browser playwright downloads).
need_chromium() {
  command -v chromium >/dev/null 2>&1 || apt_install chromium
}

# need_java: Java 17 for Spark in the lake suite (scripts/test_lake.sh).
need_java() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
}

//! Embeds the web page's chart library (`lightweight-charts`, fetched from npm by
//! `scripts/build_web.sh` into `web/node_modules`, never committed) into the daemon.
//! Without it (a fresh clone, no npm) the daemon still builds: the library is empty,
//! and the page says to run `scripts/build_web.sh` (docs/web.md).

use std::path::PathBuf;

/// The library's standalone ES module build, as `npm ci` lays it out.
const LIB: &str = "web/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.mjs";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../..");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("chart-lib.mjs");
    // `web/` (a directory, always there: cargo rescans it; a path that does not exist
    // would rerun this on every build), so that a later `npm ci` rebuilds the daemon.
    println!("cargo:rerun-if-changed={}", root.join("web").display());
    let lib = std::fs::read(root.join(LIB)).unwrap_or_default();
    if lib.is_empty() {
        println!("cargo:warning=web/node_modules has no lightweight-charts: the daemon's web page will ask for scripts/build_web.sh (the daemon works otherwise)");
    }
    std::fs::write(&out, lib).expect("OUT_DIR is writable");
}

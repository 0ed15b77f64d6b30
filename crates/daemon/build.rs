//! Embeds the web page's libraries from npm (`lightweight-charts`, `@msgpack/msgpack`;
//! fetched by `scripts/build_web.sh` into `web/node_modules`, never committed) into the
//! daemon. Without them (a fresh clone, no npm) the daemon still builds: each library is
//! empty, and the page says to run `scripts/build_web.sh` (docs/web.md).

use std::path::PathBuf;

/// (file in OUT_DIR, the build `npm ci` lays out).
const LIBS: [(&str, &str); 2] = [
    (
        "chart-lib.mjs",
        "web/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.mjs",
    ),
    (
        "msgpack.min.js",
        "web/node_modules/@msgpack/msgpack/dist.umd/msgpack.min.js",
    ),
];

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../..");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // `web/` (a directory, always there: cargo rescans it; a path that does not exist
    // would rerun this on every build), so that a later `npm ci` rebuilds the daemon.
    println!("cargo:rerun-if-changed={}", root.join("web").display());
    let mut missing = Vec::new();
    for (name, src) in LIBS {
        let text = std::fs::read_to_string(root.join(src)).unwrap_or_default();
        if text.is_empty() {
            missing.push(src);
        }
        // The source map is not served: no reference to it.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("//# sourceMappingURL="))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(out.join(name), text).expect("OUT_DIR is writable");
    }
    if !missing.is_empty() {
        println!("cargo:warning=web/node_modules lacks {missing:?}: the daemon's web page will ask for scripts/build_web.sh (the daemon works otherwise)");
    }
}

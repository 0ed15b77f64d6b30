//! `ringfeed health` against a real `ringfeed serve`: its report and its exit
//! statuses (0 healthy, 2 no daemon).

mod common;
use common::*;

#[test]
fn health_is_0_for_a_working_daemon_and_2_without_one() {
    let (served, _c) = serve("h", "rfhealth");
    let sock = served.sock.to_string_lossy().into_owned();
    let (code, out, err) = run_code(&["health", "--socket", &sock]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("healthy: queries and appends work"), "{out}");
    for name in [
        "store",
        "ingest",
        "data_dir",
        "writable",
        "integrity",
        "cache",
        "topics",
    ] {
        assert!(out.contains(name), "{name} in:\n{out}");
    }
    let (code, out, _) = run_code(&["health", "--socket", &sock, "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["healthy"], true);
    let gone = served.dir.path().join("nobody.sock");
    let (code, _, err) = run_code(&["health", "--socket", gone.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

//! Issue 12 item 3: a dashboard whose query end time moves asks thousands of
//! distinct queries. Under RLIMIT_NOFILE 1024 (lowered for this test binary
//! alone) every one is answered, the descriptors the cache holds stay
//! bounded by its entry cap, and the service still answers afterwards.

mod common;

use common::*;
use ringfeed_client::protocol::{QuerySpec, TimeSpec};
use ringfeed_client::InvalidRows;
use std::sync::atomic::Ordering;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn thousands_of_distinct_queries_under_rlimit_nofile_1024_keep_descriptors_bounded() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(1024),
            maximum: hard,
        },
    )
    .unwrap();
    let (s, _dir) = service();
    s.append("test", &[bars(&["D"], 0, 2000)], InvalidRows::Refuse)
        .unwrap();
    let before = open_fds();
    let mut session = s.session();
    let mut peak = 0;
    for end in 1..=2500i64 {
        let spec = QuerySpec {
            symbols: vec!["D".into()],
            end: Some(TimeSpec::Nanos(T0 + (end % 2000 + 1) * MIN + end)),
            ..q("1m")
        };
        let a = s
            .query(&spec, &mut session)
            .unwrap_or_else(|e| panic!("query {end}: {e}"));
        session.release(&a.arena).unwrap();
        peak = peak.max(open_fds());
    }
    let entries = s.metrics().cache_entries.load(Ordering::Relaxed) as usize;
    assert!(
        entries <= ringfeed_daemon::Config::default().max_cached_results,
        "{entries} cached results"
    );
    assert!(
        peak <= before + ringfeed_daemon::Config::default().max_cached_results + 8,
        "descriptors grew from {before} to {peak}"
    );
    // Room for everything else a daemon opens: a new "connection" and more.
    let spare: Vec<_> = (0..200)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    drop(spare);
    still_works(&s, "D", &(0..2000).collect::<Vec<_>>(), 2000);
}

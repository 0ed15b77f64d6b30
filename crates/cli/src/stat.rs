//! `ringfeed stat`: the daemon's metrics as a short summary for people, or the raw
//! Prometheus text (`--prometheus`) for scrapers and scripts.

use anyhow::Result;
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// `ringfeed stat`.
#[derive(Args, Debug)]
pub struct StatArgs {
    /// Daemon socket (default: $RINGFEED_SOCKET, else the daemon's default path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print the raw Prometheus text exposition instead of the summary.
    #[arg(long)]
    prometheus: bool,
}

/// Run `ringfeed stat`.
pub fn run(a: StatArgs) -> Result<()> {
    let mut c = ringfeed_client::Client::connect(a.socket.as_deref())?;
    let text = c.stat()?;
    if a.prometheus {
        print!("{text}");
    } else {
        print!("{}", summary(&Metrics::parse(&text)));
    }
    Ok(())
}

/// The samples of a Prometheus text exposition: unlabelled ones by name, and the
/// per-topic ones by (name, topic).
#[derive(Default, Debug)]
struct Metrics {
    plain: BTreeMap<String, f64>,
    topics: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let mut m = Metrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            let key = key.trim();
            let name = key.split('{').next().unwrap_or(key);
            let name = name.strip_prefix("ringfeed_").unwrap_or(name).to_string();
            match key.split_once("topic=\"") {
                Some((_, rest)) => {
                    let topic = rest.split('"').next().unwrap_or_default().to_string();
                    m.topics.entry(topic).or_default().insert(name, v);
                }
                None => {
                    m.plain.insert(name, v);
                }
            }
        }
        m
    }

    /// A counter or gauge; 0 when the daemon does not export it.
    fn get(&self, name: &str) -> f64 {
        self.plain.get(name).copied().unwrap_or(0.0)
    }
}

fn ms(secs: f64) -> String {
    format!(
        "{} ms",
        crate::decimal::decimal((secs * 1e4).round() / 10.0)
    )
}

fn summary(m: &Metrics) -> String {
    let mut s = String::new();
    let n = |name: &str| m.get(name) as u64;
    if n("store_read_only") > 0 {
        let _ = writeln!(
            s,
            "STORE READ-ONLY: appends are refused (full disk or a failed recovery); `ringfeed health` says why"
        );
    }
    if n("wal_corruptions") > 0 {
        let _ = writeln!(
            s,
            "WAL CORRUPTION: {} damaged region(s) set aside in _quarantine at open, every valid frame kept; `ringfeed fsck` lists them",
            n("wal_corruptions")
        );
    }
    let queries = n("queries_total");
    let hits = n("cache_hits_total");
    let _ = write!(
        s,
        "queries      {queries} answered, {} failed, {hits} from the cache",
        n("query_errors_total")
    );
    if queries > 0 {
        let _ = write!(
            s,
            " ({:.0}%); mean {}, slowest {}",
            hits as f64 * 100.0 / queries as f64,
            ms(m.get("query_seconds_sum") / queries as f64),
            ms(m.get("query_seconds_max"))
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "cache        {} results, {} held in shared memory; {} evicted",
        n("cache_entries"),
        crate::human(n("cache_bytes")),
        n("cache_evictions_total")
    );
    let _ = writeln!(
        s,
        "ingest       {} rows appended in {}; {} batches published",
        n("ingest_rows_total"),
        ms(m.get("ingest_seconds_total")),
        n("published_batches_total")
    );
    let _ = writeln!(
        s,
        "write-down   {} passes ({} failed), {} partitions to Parquet",
        n("write_downs_total"),
        n("write_down_errors_total"),
        n("written_down_partitions_total")
    );
    let _ = writeln!(
        s,
        "connections  {} open; {} bad requests",
        n("connections"),
        n("bad_requests_total")
    );
    if m.topics.is_empty() {
        let _ = writeln!(
            s,
            "topics       none (a topic opens on the first subscribe)"
        );
    } else {
        let width = m.topics.keys().map(String::len).max().unwrap_or(0).max(5);
        let _ = writeln!(
            s,
            "topics       {:<width$}  {:>10}  {:>7}  {:>5}  {:>6}",
            "TOPIC", "WRITE_SEQ", "READERS", "LAG", "LEASES"
        );
        for (topic, v) in &m.topics {
            let g = |k: &str| {
                v.get(k)
                    .map_or("-".to_string(), |x| (*x as u64).to_string())
            };
            let _ = writeln!(
                s,
                "             {topic:<width$}  {:>10}  {:>7}  {:>5}  {:>6}",
                g("topic_write_seq"),
                g("topic_readers"),
                g("topic_lag"),
                g("topic_leases")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_reads_as_a_summary() {
        let text = "# HELP ringfeed_queries_total Queries answered.\n\
            # TYPE ringfeed_queries_total counter\n\
            ringfeed_queries_total 4\n\
            ringfeed_query_errors_total 1\n\
            ringfeed_cache_hits_total 1\n\
            ringfeed_query_seconds_sum 0.010000000\n\
            ringfeed_query_seconds_max 0.006000000\n\
            ringfeed_cache_entries 2\n\
            ringfeed_cache_bytes 3072\n\
            ringfeed_ingest_rows_total 10\n\
            ringfeed_connections 3\n\
            ringfeed_topic_write_seq{topic=\"fx/1m\"} 7\n\
            ringfeed_topic_readers{topic=\"fx/1m\"} 2\n\
            ringfeed_topic_lag{topic=\"fx/1m\"} 1\n\
            ringfeed_topic_leases{topic=\"fx/1m\"} 0\n";
        let s = summary(&Metrics::parse(text));
        for want in [
            "4 answered, 1 failed, 1 from the cache (25%); mean 2.5 ms, slowest 6 ms",
            "2 results, 3.0 KiB held",
            "10 rows appended",
            "connections  3 open",
        ] {
            assert!(s.contains(want), "missing {want:?} in:\n{s}");
        }
        let topic = s.lines().find(|l| l.contains("fx/1m")).unwrap();
        let cells: Vec<&str> = topic.split_whitespace().collect();
        assert_eq!(cells, ["fx/1m", "7", "2", "1", "0"]);
    }
}

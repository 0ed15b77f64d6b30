//! Where `ringfeed top`'s figures come from: every arena in the shm directory
//! (`ringfeed_shm::inspect`, read-only: top never joins a ring as a reader),
//! and the daemon's topics from its metrics text (`ringfeed_topic_info`
//! names each topic's arena).

use super::model::{Liveness, Sample, Snapshot};
use ringfeed_client::Client;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one `stat` call may take: a hung daemon must not freeze the view
/// (sampling runs on its own thread, but `--once` waits for it).
const DAEMON_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether and where to ask a daemon for its topics.
#[derive(Clone, Debug)]
pub enum DaemonMode {
    /// Arenas only.
    Off,
    /// Ask the daemon at the default socket if that socket exists; carry on
    /// without topics if it does not answer.
    Auto,
    /// Ask this daemon (`None`: the default socket); it must answer at start.
    Explicit(Option<PathBuf>),
}

/// One figure set of a daemon topic, from the metrics text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicFigures {
    /// "dataset/timeframe".
    pub topic: String,
    /// Its arena, if the daemon names it (`ringfeed_topic_info`).
    pub arena: Option<String>,
    /// Per metric name (without the `ringfeed_topic_` prefix), its value.
    pub values: HashMap<String, f64>,
}

impl TopicFigures {
    fn get(&self, k: &str) -> Option<u64> {
        self.values.get(k).map(|v| *v as u64)
    }
}

/// The labels of one sample, as (name, value) pairs.
type Labels = Vec<(String, String)>;

/// Splits `name{a="x",b="y"} value` into (name, labels, value). Label values
/// may hold `\"` and `\\` escapes. `None` for comments and lines that do not parse.
fn parse_line(line: &str) -> Option<(&str, Labels, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head.trim(), Vec::new(), value));
    };
    let mut labels = Vec::new();
    let mut chars = rest.chars();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() || key.starts_with('}') {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        loop {
            match chars.next()? {
                '\\' => val.push(chars.next()?),
                '"' => break,
                c => val.push(c),
            }
        }
        labels.push((key.trim().to_string(), val));
    }
    Some((name.trim(), labels, value))
}

/// The daemon's topics, from its Prometheus text: every `ringfeed_topic_*`
/// sample grouped by its `topic` label, in first-seen order.
pub fn parse_topics(text: &str) -> Vec<TopicFigures> {
    let mut out: Vec<TopicFigures> = Vec::new();
    for line in text.lines() {
        let Some((name, labels, value)) = parse_line(line) else {
            continue;
        };
        let Some(metric) = name.strip_prefix("ringfeed_topic_") else {
            continue;
        };
        let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let Some(topic) = label("topic") else {
            continue;
        };
        let i = match out.iter().position(|t| t.topic == topic) {
            Some(i) => i,
            None => {
                out.push(TopicFigures {
                    topic,
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        if metric == "info" {
            out[i].arena = label("arena");
        } else {
            out[i].values.insert(metric.to_string(), value);
        }
    }
    out
}

/// Which local arena carries `t`: the one the daemon names, else (a daemon
/// that predates `ringfeed_topic_info`) the one named `<prefix>.t.<dataset>.<tf>`.
fn topic_arena<'a>(t: &TopicFigures, names: &'a [String]) -> Option<&'a String> {
    match &t.arena {
        Some(a) => names.iter().find(|n| *n == a),
        None => {
            let (d, tf) = t.topic.split_once('/')?;
            let suffix = format!(".t.{d}.{tf}");
            names.iter().find(|n| n.ends_with(&suffix))
        }
    }
}

/// A ring as `inspect` reads it.
fn arena_sample(name: &str) -> Option<Sample> {
    match ringfeed_shm::inspect(name) {
        Ok(i) => Some(Sample {
            name: name.to_string(),
            topic: None,
            instance: i.header.instance_id,
            write_seq: Some(i.write_seq),
            bytes: i.bytes_published,
            readers: Some(i.readers.iter().filter(|r| r.problem.is_none()).count() as u32),
            max_lag: Some(i.max_lag()),
            leases: Some(i.leases()),
            oldest_lease_ns: i.oldest_lease_age_ns(),
            writer: if i.writer_alive {
                Liveness::Alive
            } else {
                Liveness::Gone
            },
            note: i.table_problem,
        }),
        // Removed between the listing and now: not there any more.
        Err(ringfeed_shm::OpenError::NotFound { .. }) => None,
        Err(e) => Some(Sample::unreadable(name, e.to_string())),
    }
}

/// A daemon topic whose arena is not in our shm directory (the daemon runs
/// with another `RINGFEED_SHM_DIR`): its figures as the daemon reports them.
fn topic_sample(t: &TopicFigures) -> Sample {
    Sample {
        name: t.arena.clone().unwrap_or_else(|| format!("({})", t.topic)),
        topic: Some(t.topic.clone()),
        instance: 0,
        write_seq: t.get("write_seq"),
        bytes: t.get("published_bytes_total"),
        readers: t.get("readers").map(|v| v as u32),
        max_lag: t.get("lag"),
        leases: t.get("leases"),
        oldest_lease_ns: t
            .values
            .get("oldest_lease_seconds")
            .filter(|s| **s > 0.0)
            .map(|s| (s * 1e9) as u64),
        // The daemon answered, and it is the writer of its topics.
        writer: Liveness::Alive,
        note: Some("not in this shm directory; figures from the daemon".into()),
    }
}

/// A client of the daemon at `path` (`None`: the default socket) whose calls give up
/// after [`DAEMON_TIMEOUT`].
fn connect(path: Option<&Path>) -> Result<Client, ringfeed_client::ClientError> {
    let mut c = Client::connect(path)?;
    c.set_timeout(Some(DAEMON_TIMEOUT))?;
    Ok(c)
}

/// Takes snapshots: every arena, plus the daemon's topics.
pub struct Sampler {
    mode: DaemonMode,
    client: Option<Client>,
}

impl Sampler {
    /// A sampler; with [`DaemonMode::Explicit`] the daemon must answer now.
    pub fn new(mode: DaemonMode) -> anyhow::Result<Self> {
        let client = match &mode {
            DaemonMode::Explicit(path) => Some(connect(path.as_deref())?),
            _ => None,
        };
        Ok(Self { mode, client })
    }

    /// The daemon's metrics text, connecting first if needed. `None`: not asked.
    fn stat(&mut self) -> Option<Result<(String, String), String>> {
        if self.client.is_none() {
            let path = match &self.mode {
                DaemonMode::Off => return None,
                DaemonMode::Auto => {
                    let p = ringfeed_client::socket_path();
                    if !p.exists() {
                        return None;
                    }
                    p
                }
                DaemonMode::Explicit(p) => p.clone().unwrap_or_else(ringfeed_client::socket_path),
            };
            match connect(Some(&path)) {
                Ok(c) => self.client = Some(c),
                Err(e) => return Some(Err(e.to_string())),
            }
        }
        let c = self.client.as_mut()?;
        let path = c.path().display().to_string();
        Some(c.stat().map(|t| (path, t)).map_err(|e| e.to_string()))
    }

    /// One snapshot of every ring.
    pub fn sample(&mut self) -> Snapshot {
        let at = Instant::now();
        let names = ringfeed_shm::list_arenas().unwrap_or_default();
        let mut samples: Vec<Sample> = names.iter().filter_map(|n| arena_sample(n)).collect();
        let daemon = self.stat().map(|r| {
            r.map(|(path, text)| {
                for t in parse_topics(&text) {
                    match topic_arena(&t, &names)
                        .and_then(|n| samples.iter_mut().find(|s| &s.name == n))
                    {
                        Some(s) => s.topic = Some(t.topic.clone()),
                        None => samples.push(topic_sample(&t)),
                    }
                }
                path
            })
        });
        Snapshot {
            at,
            samples,
            daemon,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP ringfeed_queries_total Queries answered.\n\
        ringfeed_queries_total 4\n\
        ringfeed_topic_info{topic=\"fx/1m\",arena=\"rfd1.t.fx.1m\"} 1\n\
        ringfeed_topic_info{topic=\"odd/5m\",arena=\"a\\\"b\"} 1\n\
        ringfeed_topic_published_bytes_total{topic=\"fx/1m\"} 4096\n\
        ringfeed_topic_oldest_lease_seconds{topic=\"fx/1m\"} 1.500000000\n\
        ringfeed_topic_write_seq{topic=\"fx/1m\"} 7\n\
        ringfeed_topic_readers{topic=\"fx/1m\"} 2\n\
        ringfeed_topic_lag{topic=\"fx/1m\"} 1\n\
        ringfeed_topic_leases{topic=\"fx/1m\"} 3\n\
        ringfeed_topic_write_seq{topic=\"old/1h\"} 2\n\
        garbage line {\n\
        ringfeed_topic_lag{topic=\"broken} 5\n";

    #[test]
    fn topics_parse_from_the_metrics_text() {
        let t = parse_topics(TEXT);
        let names: Vec<&str> = t.iter().map(|t| t.topic.as_str()).collect();
        assert_eq!(names, ["fx/1m", "odd/5m", "old/1h"]);
        assert_eq!(t[0].arena.as_deref(), Some("rfd1.t.fx.1m"));
        assert_eq!(t[1].arena.as_deref(), Some("a\"b"), "escapes");
        assert_eq!(t[2].arena, None, "a daemon without topic_info");
        let s = topic_sample(&t[0]);
        assert_eq!(s.name, "rfd1.t.fx.1m");
        assert_eq!(
            (s.write_seq, s.bytes, s.readers, s.max_lag, s.leases),
            (Some(7), Some(4096), Some(2), Some(1), Some(3))
        );
        assert_eq!(s.oldest_lease_ns, Some(1_500_000_000));
        let s = topic_sample(&t[2]);
        assert_eq!((s.name.as_str(), s.bytes), ("(old/1h)", None));
    }

    #[test]
    fn topics_find_their_arena_by_name_or_by_the_daemon_naming_rule() {
        let t = parse_topics(TEXT);
        let names: Vec<String> = ["rfd1.t.fx.1m", "rfd9.t.old.1h", "other"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            topic_arena(&t[0], &names).map(String::as_str),
            Some("rfd1.t.fx.1m")
        );
        assert_eq!(topic_arena(&t[1], &names), None);
        assert_eq!(
            topic_arena(&t[2], &names).map(String::as_str),
            Some("rfd9.t.old.1h")
        );
    }
}

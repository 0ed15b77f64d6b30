//! Real `ringfeedd` daemons on loopback with Flight on a free port and bearer tokens,
//! that can be killed (-9) and started again on the same data dir and port: the
//! primaries and followers of follow.rs and follow_mtls.rs.
#![allow(dead_code)]

use super::{prefix_for, q, shm_dir};
use arrow_array::{ArrayRef, RecordBatch};
use ringfeed_client::protocol::QuerySpec;
use ringfeed_client::Client;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token followers present (read scope on `test` only).
pub const FOLLOWER: &str = "follower-token-0123456789";
/// A writer's token on the primaries (read and write everything).
pub const OPS: &str = "ops-token-0123456789";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `ringfeedd` that can be killed and started again on the same data dir and port.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub socket: PathBuf,
    pub cfg: PathBuf,
    pub child: Option<Child>,
    /// Flags given to `ringfeedd` besides `--config`.
    pub args: Vec<String>,
    /// Environment given to `ringfeedd`.
    pub env: Vec<(String, String)>,
}

impl Node {
    /// A daemon with Flight on a free port, tokens, dataset `test` (1m, rollups 5m, 1h)
    /// unless it follows, and `extra` config.
    pub fn new(follow: Option<&str>, extra: &str) -> Node {
        Node::build(follow, extra, "")
    }

    /// [`Node::new`] with `flight` lines added to its `[flight]` table's end (TLS).
    pub fn build(follow: Option<&str>, extra: &str, flight: &str) -> Node {
        let mut n = Node::prepare(follow, extra, flight);
        n.start();
        n
    }

    /// [`Node::build`] not started yet.
    pub fn prepare(follow: Option<&str>, extra: &str, flight: &str) -> Node {
        shm_dir();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let socket = dir.path().join("rf.sock");
        let cfg = dir.path().join("ringfeed.toml");
        let datasets = if follow.is_some() {
            String::new()
        } else {
            "[datasets.test]\nbase = \"1m\"\nrollups = [\"5m\", \"1h\"]\nfsync = \"never\"\n\
             [datasets.secret]\nbase = \"1m\"\nrollups = [\"1h\"]\nfsync = \"never\"\n"
                .into()
        };
        let follow = follow.unwrap_or_default();
        std::fs::write(
            &cfg,
            format!(
                "data_dir = {:?}\nsocket = {:?}\narena_prefix = \"{}\"\nmemory_budget = \"256MiB\"\n{extra}\n\
                 [flight]\nlisten = \"127.0.0.1:{port}\"\n{flight}\n\
                 [[auth.tokens]]\nname = \"follower\"\nsha256 = \"{}\"\nread = [\"test\"]\n\
                 [[auth.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nread = [\"*\"]\nwrite = [\"*\"]\nadmin = true\n\
                 {follow}\n{datasets}",
                dir.path().join("data"),
                socket,
                prefix_for(dir.path()),
                ringfeed_daemon::auth::hash_token(FOLLOWER),
                ringfeed_daemon::auth::hash_token(OPS),
            ),
        )
        .unwrap();
        Node {
            dir,
            port,
            socket,
            cfg,
            child: None,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A follower of `primary`'s `datasets`, with `extra` config.
    pub fn follower(primary: &Node, datasets: &[&str], extra: &str) -> Node {
        let mut n = Node::follower_of(primary, datasets, extra);
        n.start();
        n
    }

    /// [`Node::follower`] not started yet (to set its environment first).
    pub fn follower_of(primary: &Node, datasets: &[&str], extra: &str) -> Node {
        Node::prepare(
            Some(&format!(
                "[follow]\nurl = \"grpc://127.0.0.1:{}\"\ntoken = \"{FOLLOWER}\"\ndatasets = {datasets:?}\n",
                primary.port
            )),
            extra,
            "",
        )
    }

    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Starts the daemon and waits until its socket answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
            .arg("--config")
            .arg(&self.cfg)
            .args(&self.args)
            .env("RINGFEED_SHM_DIR", shm_dir())
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ringfeedd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Client::connect(Some(&self.socket)).is_err() {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ringfeedd exited with {s}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ringfeedd did not come up within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    pub fn client(&self) -> Client {
        Client::connect(Some(&self.socket)).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let mine = format!("ringfeed.{}", prefix_for(self.dir.path()));
        for e in std::fs::read_dir(shm_dir()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&mine)
                && matches!(name.as_bytes().get(mine.len()), Some(b'.' | b'@'))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Every row of `dataset` at `tf`, all symbols, with strings as plain utf8 (so two
/// stores' answers compare by value).
pub fn rows(n: &Node, dataset: &str, tf: &str) -> RecordBatch {
    let q = QuerySpec {
        dataset: dataset.into(),
        timeframe: tf.into(),
        ..Default::default()
    };
    let bars = n.client().bars(&q).expect("a query through the socket");
    let batches: Vec<RecordBatch> = bars
        .batches
        .iter()
        .map(|b| canon(b.record_batch()))
        .collect();
    if batches.is_empty() {
        return RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty()));
    }
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

pub fn canon(b: &RecordBatch) -> RecordBatch {
    use arrow_schema::{DataType, Field, Schema};
    let (fields, cols): (Vec<Field>, Vec<ArrayRef>) = b
        .schema()
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| match f.data_type() {
            DataType::Dictionary(..) | DataType::Utf8View | DataType::LargeUtf8 => (
                Field::new(f.name(), DataType::Utf8, f.is_nullable()),
                arrow_cast::cast(c, &DataType::Utf8).unwrap(),
            ),
            _ => (f.as_ref().clone(), c.clone()),
        })
        .unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

pub fn count(n: &Node, tf: &str) -> usize {
    rows(n, "test", tf).num_rows()
}

/// Waits until `b` holds what `a` holds at every stored timeframe of `test`, row for
/// row (or fails after `secs` showing both counts).
pub fn converge(a: &Node, b: &Node, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        // The cheap check first (how far each timeframe goes), then row for row.
        let same = extent(a) == extent(b)
            && ["1m", "5m", "1h"]
                .iter()
                .all(|tf| rows(a, "test", tf) == rows(b, "test", tf));
        if same {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the follower did not converge within {secs} s: 1m {} vs {}, 5m {} vs {}, 1h {} vs {}\nfollower log:\n{}",
            count(a, "1m"), count(b, "1m"), count(a, "5m"), count(b, "5m"), count(a, "1h"), count(b, "1h"),
            tail(&b.log())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A timeframe, its first and last ts.
pub type Extent = (String, Option<i64>, Option<i64>);

/// First and last ts of each timeframe of `test` (`None` while it does not exist).
pub fn extent(n: &Node) -> Option<Vec<Extent>> {
    let r = n.client().ready(Some("test")).ok()?;
    Some(
        r.datasets
            .iter()
            .flat_map(|d| d.timeframes.iter())
            .map(|t| (t.timeframe.clone(), t.first_ts, t.last_ts))
            .collect(),
    )
}

pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The follower still answers a real query, equal to the primary's.
pub fn still_answers(primary: &Node, follower: &Node) {
    let q = QuerySpec {
        symbols: vec!["AAA".into()],
        ..q("1h")
    };
    let f = follower
        .client()
        .bars(&q)
        .expect("the follower answers a query");
    let p = primary.client().bars(&q).unwrap();
    assert!(f.rows > 0);
    assert_eq!(f.rows, p.rows);
}

/// A metric's value in `text` (the first line starting with `name`).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

//! The lake against a `file://` directory: uploads, generations, verify, corruption,
//! leftovers, retention. (The S3 side, kill -9 of the real binaries and the engines run in
//! `scripts/test_lake.sh`.)

use ringfeed_lake::{Lake, LakeConfig, Problem};
use ringfeed_store::schema::BarColumns;
use ringfeed_store::time::parse_day;
use ringfeed_store::{BarStore, DatasetConfig};
use std::path::{Path, PathBuf};

const MIN: i64 = 60_000_000_000;
const DAY: i64 = 86_400_000_000_000;

/// 1m bars of one symbol from 2021-01-01 to 2021-03-15, written down before 03-15: January
/// and February are compacted months (finished partitions), March stays in day parts.
fn store_with_two_months() -> (tempfile::TempDir, BarStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = BarStore::open(dir.path()).unwrap();
    store
        .create_dataset("d", DatasetConfig::new("1m".parse().unwrap()))
        .unwrap();
    let start = parse_day("2021-01-01").unwrap();
    let end = parse_day("2021-03-15").unwrap();
    let mut bars = BarColumns::default();
    for m in 0..(end - start) * 1440 {
        bars.ts.push(start * DAY + m * MIN);
        bars.symbol.push("BTC".into());
        let p = 100.0 + (m % 997) as f64;
        for c in [
            &mut bars.open,
            &mut bars.high,
            &mut bars.low,
            &mut bars.close,
        ] {
            c.push(p);
        }
        bars.volume.push(1.0);
    }
    store.upsert("d", &bars.into_batch().unwrap()).unwrap();
    store.write_down(None, end).unwrap();
    (dir, store)
}

fn lake_at(dir: &Path) -> LakeConfig {
    LakeConfig::new(format!("file://{}", dir.display()))
}

/// Every `.parquet` under the lake's data keys.
fn parquet_objects(lake: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![lake.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn uploads_finished_months_once_and_verifies() {
    let (data, _store) = store_with_two_months();
    let ld = tempfile::tempdir().unwrap();
    let lake = Lake::open(&lake_at(ld.path()), data.path()).unwrap();
    let r = lake.sync().unwrap();
    // Jan and Feb of 1m, 5m, 15m, 1h, 1d; March is not finished.
    assert_eq!(r.local_partitions, 10, "{r:?}");
    assert_eq!(r.partitions_uploaded, 10);
    assert_eq!(r.uploaded_objects, 10);
    assert_eq!(r.lake_partitions, 10);
    let objs = parquet_objects(ld.path());
    assert_eq!(objs.len(), 10);
    assert!(objs
        .iter()
        .all(|p| !p.to_string_lossy().contains("month=2021-03")));
    // The layout is the store's Hive layout, so engines read it.
    assert!(ld.path().join("dataset=d/tf=1m/month=2021-01").is_dir());
    let v = lake.verify(false).unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.files, 10);
    assert_eq!(
        v.rows,
        (31 + 28) * 1440 + (31 + 28) * 288 + (31 + 28) * 96 + (31 + 28) * 24 + 59
    );
    // A second pass has nothing to do.
    let again = lake.sync().unwrap();
    assert_eq!(
        (again.uploaded_objects, again.deleted_objects),
        (0, 0),
        "{again:?}"
    );
    let status = lake.status().unwrap();
    assert!(status.iter().all(|(_, done)| *done));
}

#[test]
fn a_late_correction_is_a_new_generation_and_the_old_one_goes() {
    let (data, mut store) = store_with_two_months();
    let ld = tempfile::tempdir().unwrap();
    let lake = Lake::open(&lake_at(ld.path()), data.path()).unwrap();
    lake.sync().unwrap();
    let before = parquet_objects(ld.path());
    // Correct one January bar; write-down rewrites January's month files.
    let mut bars = BarColumns::default();
    bars.ts.push(parse_day("2021-01-10").unwrap() * DAY);
    bars.symbol.push("BTC".into());
    for c in [
        &mut bars.open,
        &mut bars.high,
        &mut bars.low,
        &mut bars.close,
    ] {
        c.push(5.0);
    }
    bars.volume.push(9.0);
    store.upsert("d", &bars.into_batch().unwrap()).unwrap();
    store
        .write_down(None, parse_day("2021-03-15").unwrap())
        .unwrap();
    let r = lake.sync().unwrap();
    // January's 1m, 5m, 15m, 1h and 1d change; February's do not.
    assert_eq!(r.partitions_uploaded, 5, "{r:?}");
    assert_eq!(
        r.deleted_objects, 10,
        "5 old objects and 5 old manifests: {r:?}"
    );
    let after = parquet_objects(ld.path());
    assert_eq!(after.len(), 10, "one object per partition: {after:?}");
    assert_eq!(before.iter().filter(|p| after.contains(p)).count(), 5);
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ld.path().join("_lake/index.json")).unwrap())
            .unwrap();
    assert_eq!(
        idx["partitions"]["dataset=d/tf=1m/month=2021-01"]["generation"],
        2
    );
    assert_eq!(
        idx["partitions"]["dataset=d/tf=1m/month=2021-02"]["generation"],
        1
    );
    assert!(lake.verify(false).unwrap().ok());
}

#[test]
fn corrupt_records_are_refused_and_reported() {
    let (data, _store) = store_with_two_months();
    let ld = tempfile::tempdir().unwrap();
    let lake = Lake::open(&lake_at(ld.path()), data.path()).unwrap();
    lake.sync().unwrap();
    let idx_path = ld.path().join("_lake/index.json");
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&idx_path).unwrap()).unwrap();
    let manifest = ld.path().join(
        idx["partitions"]["dataset=d/tf=1h/month=2021-02"]["manifest"]
            .as_str()
            .unwrap(),
    );

    // A manifest edited by hand (valid JSON, wrong checksum): verify refuses it.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\"rows\": ", "\"rows\": 1", 1)).unwrap();
    let v = lake.verify(false).unwrap();
    assert!(!v.ok());
    assert!(
        matches!(&v.problems[..], [Problem::CorruptManifest { key, .. }] if key.contains("tf=1h/month=2021-02")),
        "{:?}",
        v.problems
    );
    std::fs::write(&manifest, &text).unwrap();
    assert!(lake.verify(false).unwrap().ok());

    // A data object with one byte flipped (same size): the checksum catches it; a quick
    // verify (sizes only) does not.
    let obj = ld.path().join(
        idx["partitions"]["dataset=d/tf=1m/month=2021-01"]["files"][0]
            .as_str()
            .unwrap(),
    );
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&obj, &bytes).unwrap();
    let v = lake.verify(false).unwrap();
    assert!(
        matches!(&v.problems[..], [Problem::Checksum { .. }]),
        "{:?}",
        v.problems
    );
    assert!(lake.verify(true).unwrap().ok());
    bytes[100] ^= 0xff;
    std::fs::write(&obj, &bytes).unwrap();
    // A missing object.
    std::fs::rename(&obj, obj.with_extension("moved")).unwrap();
    let v = lake.verify(true).unwrap();
    assert!(
        matches!(&v.problems[..], [Problem::Missing { .. }]),
        "{:?}",
        v.problems
    );
    std::fs::rename(obj.with_extension("moved"), &obj).unwrap();

    // A corrupt index: verify and sync refuse it (a sync over it could sweep away what
    // only the lake holds); rebuilding from the manifests restores it.
    let good = std::fs::read(&idx_path).unwrap();
    for bad in [&b"{garbage"[..], &good[..good.len() / 2], b""] {
        std::fs::write(&idx_path, bad).unwrap();
        let e = lake.verify(false).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
        let e = lake.sync().unwrap_err().to_string();
        assert!(e.contains("corrupt") && e.contains("rebuild-index"), "{e}");
    }
    // A deleted index while manifests exist: refused as well.
    std::fs::remove_file(&idx_path).unwrap();
    assert!(lake.sync().unwrap_err().to_string().contains("missing"));
    let r = lake.rebuild_index().unwrap();
    assert_eq!((r.lake_partitions, r.uploaded_objects), (10, 0), "{r:?}");
    assert_eq!(r.partitions_relinked, 10);
    assert!(lake.verify(false).unwrap().ok());
    assert_eq!(parquet_objects(ld.path()).len(), 10);
}

#[test]
fn leftovers_of_a_pass_cut_short_are_swept() {
    let (data, _store) = store_with_two_months();
    let ld = tempfile::tempdir().unwrap();
    let lake = Lake::open(&lake_at(ld.path()), data.path()).unwrap();
    lake.sync().unwrap();
    // An object uploaded by a pass killed before its index commit, whose partition then
    // changed again: no record names it.
    let stray = ld
        .path()
        .join("dataset=d/tf=1m/month=2021-01/part-7-00000000deadbeef.parquet");
    std::fs::write(&stray, b"PAR1 stray").unwrap();
    let v = lake.verify(false).unwrap();
    assert!(v.ok());
    assert_eq!(v.strays.len(), 1, "{:?}", v.strays);
    let r = lake.sync().unwrap();
    assert_eq!(r.deleted_objects, 1);
    assert!(!stray.exists());
    // Objects outside the lake's own keys are never touched.
    std::fs::write(ld.path().join("README"), b"mine").unwrap();
    lake.sync().unwrap();
    assert!(ld.path().join("README").exists());
}

#[test]
fn lake_retention_removes_from_the_lake_only_and_local_retention_never_does() {
    let (data, mut store) = store_with_two_months();
    let ld = tempfile::tempdir().unwrap();
    Lake::open(&lake_at(ld.path()), data.path())
        .unwrap()
        .sync()
        .unwrap();
    // A lake retention whose cutoff is 2021-02-01: January goes, February stays.
    let today = chrono::Utc::now()
        .timestamp_nanos_opt()
        .unwrap()
        .div_euclid(DAY);
    let span = today - parse_day("2021-02-01").unwrap();
    let mut cfg = lake_at(ld.path());
    cfg.lake_retention = Some(format!("{span}d").parse().unwrap());
    let lake = Lake::open(&cfg, data.path()).unwrap();
    let r = lake.sync().unwrap();
    assert_eq!((r.partitions_expired, r.lake_partitions), (5, 5), "{r:?}");
    let objs = parquet_objects(ld.path());
    assert_eq!(objs.len(), 5);
    assert!(objs
        .iter()
        .all(|p| p.to_string_lossy().contains("month=2021-02")));
    // The store still has January.
    assert!(data.path().join("dataset=d/tf=1m/month=2021-01").is_dir());
    // Expired partitions are not uploaded again.
    assert_eq!(lake.sync().unwrap().uploaded_objects, 0);
    assert!(lake.verify(false).unwrap().ok());

    // Local retention dropping February from the store leaves it in the lake.
    store
        .set_retention("d", Some(format!("{}d", span - 28).parse().unwrap()), None)
        .unwrap();
    store
        .apply_retention(Some("d"), chrono::Utc::now().timestamp_nanos_opt().unwrap())
        .unwrap();
    assert!(!data.path().join("dataset=d/tf=1m/month=2021-02").exists());
    let r = Lake::open(&lake_at(ld.path()), data.path())
        .unwrap()
        .sync()
        .unwrap();
    assert_eq!((r.lake_partitions, r.deleted_objects), (5, 0), "{r:?}");
    assert_eq!(parquet_objects(ld.path()).len(), 5);
}

#[test]
fn a_second_pass_on_the_same_data_dir_is_refused_while_one_runs() {
    let (data, _store) = store_with_two_months();
    let ld = tempfile::tempdir().unwrap();
    let lake = Lake::open(&lake_at(ld.path()), data.path()).unwrap();
    // Hold the lock as a running pass would.
    std::fs::create_dir_all(data.path().join("_lake")).unwrap();
    let f = std::fs::File::create(data.path().join("_lake/sync.lock")).unwrap();
    fs4::FileExt::try_lock(&f).unwrap();
    let e = lake.sync().unwrap_err().to_string();
    assert!(e.contains("another lake sync"), "{e}");
    fs4::FileExt::unlock(&f).unwrap();
    assert_eq!(lake.sync().unwrap().partitions_uploaded, 10);
}

#[test]
fn bad_urls_say_what_is_expected() {
    let d = tempfile::tempdir().unwrap();
    for (url, want) in [
        ("ftp://x/y", "s3://bucket/prefix or file:///path"),
        ("s3:///nobucket", "names a bucket"),
        ("not a url", "lake url"),
    ] {
        let e = Lake::open(&LakeConfig::new(url), d.path())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(want), "{url}: {e}");
    }
}

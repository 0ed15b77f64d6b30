//! Helpers shared by the store's integration tests.

/// Rewrite the dataset-day WALs of `hot` (`_hot/<dataset>`) as a store written before
/// them had them: one file per timeframe and day (`<dir>/<YYYY-MM-DD>.wal`, frames with
/// stream 0) for each `(dir, timeframe)`, no rollup markers.
pub fn to_legacy_layout(hot: &std::path::Path, dirs: &[(&str, &str)]) {
    use ringfeed_store::wal;
    for e in std::fs::read_dir(hot).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "wal") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for (name, tf) in dirs {
            let (ops, _) =
                wal::scan_stream(&bytes, true, Some(wal::stream_of(tf.parse().unwrap())));
            let legacy = hot.join(name).join(path.file_name().unwrap());
            let mut w = wal::WalWriter::open(&legacy, wal::FsyncPolicy::Never).unwrap();
            w.append(&ops).unwrap();
            w.close().unwrap();
        }
        std::fs::remove_file(&path).unwrap();
    }
}

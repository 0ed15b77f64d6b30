//! Where CSV bytes come from: a file, the one CSV inside a zip archive, or stdin; and
//! the progress bar over them.

use crate::IngestError;
use std::io::Read;
use std::path::Path;

/// Whether `path` is a zip archive (by its name).
pub(super) fn is_zip(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// The bytes of a CSV input and their length when known: the file, or the one CSV
/// inside a zip archive (Binance's and Lean's downloads), read in place. `archive`
/// holds the open archive the reader borrows.
pub(crate) fn open_input<'a>(
    path: &Path,
    archive: &'a mut Option<zip::ZipArchive<std::fs::File>>,
) -> Result<(Box<dyn Read + 'a>, Option<u64>), IngestError> {
    let file = std::fs::File::open(path).map_err(|source| IngestError::Io {
        path: path.into(),
        source,
    })?;
    if !is_zip(path) {
        let len = file.metadata().ok().map(|m| m.len());
        return Ok((Box::new(file), len));
    }
    let dec = |detail: String| IngestError::Decode {
        path: path.into(),
        format: "zip",
        detail,
    };
    let z = archive.insert(zip::ZipArchive::new(file).map_err(|e| dec(e.to_string()))?);
    let csv: Vec<usize> = (0..z.len())
        .filter(|i| {
            z.name_for_index(*i)
                .is_some_and(|n| !n.ends_with('/') && n.to_ascii_lowercase().ends_with(".csv"))
        })
        .collect();
    let [i] = csv[..] else {
        return Err(dec(format!(
            "it holds {} CSV files; ingest reads a zip holding exactly one (unzip it and ingest the files)",
            csv.len()
        )));
    };
    let entry = z.by_index(i).map_err(|e| dec(e.to_string()))?;
    let len = entry.size();
    Ok((Box::new(entry), Some(len)))
}

/// A progress bar over `total` bytes of `path` on stderr; hidden unless `on` and stderr
/// is a terminal.
pub(super) fn progress(on: bool, total: Option<u64>, path: &Path) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if !on || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    b.set_message(path.display().to_string());
    b
}

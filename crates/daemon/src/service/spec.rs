//! Protocol specs as store values: timeframes and dataset settings, checked
//! with the errors every face reports.

use super::error::{ErrorKind, ServiceError};
use ringfeed_client::DatasetSpec;

/// `s` as a timeframe; `what` names the argument in the error ("timeframe", "rollup").
pub(super) fn parse_timeframe(
    s: &str,
    what: &str,
) -> Result<ringfeed_store::Timeframe, ServiceError> {
    s.parse()
        .map_err(|e| ServiceError::new(ErrorKind::BadTimeframe, format!("{what} {s:?}: {e}")))
}

/// A dataset's store settings from its spec (a client's `create_dataset`, or
/// `[datasets.NAME]` in the daemon's config): base timeframe, rollups (default:
/// the store's ladder above the base), fsync policy.
pub(super) fn dataset_config(
    spec: &DatasetSpec,
) -> Result<ringfeed_store::DatasetConfig, ServiceError> {
    let mut cfg = ringfeed_store::DatasetConfig::new(parse_timeframe(&spec.base, "base")?);
    if let Some(rollups) = &spec.rollups {
        cfg.rollups = rollups
            .iter()
            .map(|r| parse_timeframe(r, "rollup"))
            .collect::<Result<_, _>>()?;
    }
    if let Some(f) = &spec.fsync {
        cfg.fsync = f
            .parse()
            .map_err(|e| ServiceError::bad_request(format!("fsync {f:?}: {e}")))?;
    }
    Ok(cfg)
}

//! Writes: appends (store, then publish to the base topic and every rollup
//! topic it changed), deletes, and end-of-day write-downs. Each holds the
//! ingest lock, so a replay snapshot sees a write whole or not at all.

use super::error::ServiceError;
use super::open::Service;
use super::spec::dataset_config;
use arrow_array::RecordBatch;
use ringfeed_client::time::now_ns;
use ringfeed_client::{AppendReport, DatasetSpec, InvalidRows, TimeSpec};
use ringfeed_store::store::{day_string, WriteDownSummary};
use ringfeed_store::validate::{InvalidPolicy, RowPolicy};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an append stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Rows stored (durable per the dataset's fsync policy) and published.
    pub rows: u64,
    /// What the row rules made of the rows.
    pub report: AppendReport,
}

/// What a delete changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Days touched.
    pub days: u64,
    /// A one-line summary.
    pub text: String,
}

/// What a write-down moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteDownOutcome {
    /// Rows written to Parquet.
    pub rows: u64,
    /// Bytes of Parquet written.
    pub bytes: u64,
    /// A one-line summary.
    pub text: String,
}

/// Days written down per hold of the store's write lock. Each hold commits the catalog
/// once (which rewrites it whole), so one day per hold made a year's catch-up 2.6x slower
/// than one pass (7.5 vs 2.9 s); 8 days keep a hold near 0.1 s for a symbol with 4 rollups.
const WRITE_DOWN_DAYS_PER_LOCK: usize = 8;

impl Service {
    /// Creates a dataset (the same settings again: a no-op). New topics and
    /// queries see it at once; no restart, no config edit.
    pub fn create_dataset(&self, spec: &DatasetSpec) -> Result<String, ServiceError> {
        self.create_dataset_with(&spec.dataset, dataset_config(spec)?)
    }

    /// [`Service::create_dataset`] with the store's settings as they are (a follower
    /// creates its copy with its primary's).
    pub fn create_dataset_with(
        &self,
        dataset: &str,
        cfg: ringfeed_store::DatasetConfig,
    ) -> Result<String, ServiceError> {
        use ringfeed_store::store::CreateDatasetError as C;
        let _ingest = self.ingest();
        let mut store = self.store_mut();
        let existed = store.dataset(dataset).is_some();
        store.create_dataset(dataset, cfg).map_err(|e| match e {
            C::Name(_) | C::Exists(_) | C::Rollup { .. } | C::Session(_) | C::Calendar(_) => {
                ServiceError::bad_request(e.to_string())
            }
            _ => ServiceError::store(e),
        })?;
        let stored: Vec<String> = store
            .stored_timeframes(dataset)
            .iter()
            .map(|t| t.to_string())
            .collect();
        Ok(if existed {
            format!(
                "dataset {dataset} exists with these settings ({})",
                stored.join(", ")
            )
        } else {
            tracing::info!(dataset, timeframes = ?stored, "created dataset");
            format!("created dataset {dataset} ({})", stored.join(", "))
        })
    }

    /// Appends an Arrow IPC stream (the payload of a local `append`). The
    /// stream is checked before anything decodes it ([`decode_append_payload`]),
    /// so no payload can panic the decoder or make the cast to the store's
    /// columns allocate more than a small multiple of its own size.
    pub fn append_ipc(
        &self,
        dataset: &str,
        payload: &[u8],
        invalid: InvalidRows,
    ) -> Result<AppendOutcome, ServiceError> {
        let batches = decode_append_payload(payload)?;
        self.append(dataset, &batches, invalid)
    }

    /// Appends rows at the dataset's base timeframe. The batches are one write:
    /// the store checks every row by its rules and, per `invalid`, refuses the
    /// whole append, skips the bad rows or keeps them flagged; the rows stored
    /// are durable, then published to the base topic and to every rollup topic
    /// they changed, and cached results they can change are dropped.
    /// A dataset followed from a primary takes no local appends (`followed`, naming it).
    pub fn append(
        &self,
        dataset: &str,
        batches: &[RecordBatch],
        invalid: InvalidRows,
    ) -> Result<AppendOutcome, ServiceError> {
        self.refuse_if_followed(dataset, "append")?;
        self.append_unchecked(dataset, batches, invalid)
    }

    /// The follower's append of rows its primary sent: [`Service::append`] without the
    /// refusal of followed datasets, every row kept as the primary stored it (flagged
    /// rows too).
    pub fn append_followed(
        &self,
        dataset: &str,
        batches: &[RecordBatch],
    ) -> Result<AppendOutcome, ServiceError> {
        self.append_unchecked(dataset, batches, InvalidRows::Keep)
    }

    fn append_unchecked(
        &self,
        dataset: &str,
        batches: &[RecordBatch],
        invalid: InvalidRows,
    ) -> Result<AppendOutcome, ServiceError> {
        let t = Instant::now();
        let Some(first) = batches.first() else {
            return Ok(AppendOutcome::default());
        };
        // One batch, so that validation and storage are one step: an append is
        // stored whole or refused whole, never applied batch by batch.
        let batch = if batches.len() == 1 {
            first.clone()
        } else {
            arrow_select::concat::concat_batches(first.schema_ref(), batches)
                .map_err(|e| ServiceError::bad_request(format!("append batches differ: {e}")))?
        };
        let policy = RowPolicy {
            invalid: match invalid {
                InvalidRows::Keep => InvalidPolicy::Keep,
                _ => InvalidPolicy::Reject,
            },
            strict: invalid == InvalidRows::Refuse,
        };
        // Store write and publications are one step for replay snapshots.
        let _ingest = self.ingest();
        let (base, s) = {
            let mut store = self.store_mut();
            let base = store
                .dataset(dataset)
                .map(|e| e.config.base)
                .ok_or_else(|| {
                    let mut e =
                        ServiceError::unknown_dataset(dataset, store.catalog().datasets.keys());
                    e.message.push_str(
                        "; create it first: `ringfeed append --create --timeframe 1m [--rollups 5m,1h]`, or create_dataset from a client",
                    );
                    e
                })?;
            (base, store.append(dataset, &batch, &policy)?)
        };
        let rows = s.accepted.num_rows() as u64;
        // The rows are stored (durable per the dataset's fsync policy): from
        // here on nothing answers an error. A publication that fails stays in
        // its topic's backlog and goes out, in order, before the topic's next
        // one; the report says so.
        let mut unpublished = Vec::new();
        if rows > 0 {
            // What the rows can change: their symbols, from the earliest of their
            // bars and of the earlier rollup bars they closed (the store's report
            // already holds the rows' symbols and smallest ts).
            let lo = s
                .write
                .rollups
                .iter()
                .filter_map(|(_, b)| earliest_ts(b))
                .chain(s.report.min_ts)
                .min()
                .unwrap_or(i64::MIN);
            self.cache.invalidate(dataset, &s.report.symbols, lo);
            // Publish the rows, then every rollup bar the store rewrote: the buckets the
            // rows landed in and the earlier bars they closed, each with its new complete flag.
            let publications = std::iter::once((base, &s.accepted))
                .chain(s.write.rollups.iter().map(|(tf, bars)| (*tf, bars)));
            for (tf, bars) in publications {
                if let Err(e) = self
                    .topics
                    .publish(dataset, tf, bars, || self.topic_schema(dataset, tf))
                {
                    self.metrics
                        .publish_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(dataset, timeframe = %tf, error = %e, "stored rows not yet published; kept for the topic's next publication");
                    unpublished.push(format!("{dataset}/{tf}: {e}"));
                }
            }
        }
        self.metrics.observe_ingest(rows, t.elapsed());
        let r = &s.report;
        Ok(AppendOutcome {
            rows,
            report: AppendReport {
                rows_read: r.rows_read,
                rows_stored: r.rows_ok,
                rejected: r.rejected,
                flagged: r.flagged,
                rejects: r.rejects.iter().map(|b| b.to_string()).collect(),
                flags: r.flags.iter().map(|b| b.to_string()).collect(),
                unpublished: (!unpublished.is_empty()).then(|| {
                    format!(
                        "all {rows} rows were stored; publishing them to live topics failed ({}); they stay queued and go out, in order, before each topic's next publication (next append, maintenance pass or replay)",
                        unpublished.join("; ")
                    )
                }),
            },
        })
    }

    /// Deletes bars of the base timeframe in `[start, end)` (a correction): the
    /// store rewrites the rollups, cached results it can change are dropped.
    /// Live topics carry appends only, so subscribers are not told; they see
    /// the change in their next query.
    pub fn delete(
        &self,
        dataset: &str,
        symbol: Option<String>,
        start: &TimeSpec,
        end: &TimeSpec,
    ) -> Result<DeleteOutcome, ServiceError> {
        self.refuse_if_followed(dataset, "delete")?;
        let (start, end) = match ringfeed_client::time::range(Some(start), Some(end))? {
            (Some(s), Some(e)) => (s, e),
            _ => unreachable!("both ends given"),
        };
        self.delete_followed(dataset, symbol, start, end)
    }

    /// The follower's delete of what its primary deleted: [`Service::delete`] of
    /// `[start, end)` (ns) without the refusal of followed datasets.
    pub fn delete_followed(
        &self,
        dataset: &str,
        symbol: Option<String>,
        start: i64,
        end: i64,
    ) -> Result<DeleteOutcome, ServiceError> {
        // Store change and cache invalidation are one step for replay snapshots and
        // concurrent builds, as for appends.
        let _ingest = self.ingest();
        let mut store = self.store_mut();
        let symbols: BTreeSet<String> = match (&symbol, store.dataset(dataset)) {
            (_, None) => {
                return Err(ServiceError::unknown_dataset(
                    dataset,
                    store.catalog().datasets.keys(),
                ))
            }
            (Some(s), Some(_)) => [s.clone()].into(),
            (None, Some(e)) => e.symbols.clone(),
        };
        let range = ringfeed_store::DeleteRange { symbol, start, end };
        let days = store.delete(dataset, range).map_err(ServiceError::store)?;
        drop(store);
        self.cache.invalidate(dataset, &symbols, start);
        Ok(DeleteOutcome {
            days: days as u64,
            text: format!("deleted from {days} days of {dataset}"),
        })
    }

    /// A write-down asked for by a client: the days before `before`
    /// ("YYYY-MM-DD"; default: before today), or every day with `all`.
    pub fn write_down(
        &self,
        dataset: Option<&str>,
        before: Option<&str>,
        all: bool,
    ) -> Result<WriteDownOutcome, ServiceError> {
        let before_day = match (all, before) {
            (true, _) => i64::MAX,
            (false, Some(d)) => ringfeed_store::store::parse_day(d).ok_or_else(|| {
                ServiceError::bad_request(format!("before {d:?} is not a YYYY-MM-DD date"))
            })?,
            (false, None) => write_down_boundary(now_ns(), Duration::ZERO),
        };
        let t = Instant::now();
        let s = self.write_down_before(dataset, before_day)?;
        Ok(WriteDownOutcome {
            rows: s.rows,
            bytes: s.bytes,
            text: format!(
                "wrote down {} partitions: {} rows, {} bytes of Parquet in {:.2}s{}",
                s.partitions,
                s.rows,
                s.bytes,
                t.elapsed().as_secs_f64(),
                if s.compacted_months > 0 {
                    format!(
                        "; compacted {} day parts into {} month parts",
                        s.compacted_parts, s.compacted_months
                    )
                } else {
                    String::new()
                }
            ),
        })
    }

    /// End-of-day write-down: move every hot day before `before_day` (days since the
    /// epoch, UTC) of every dataset into the Parquet cold tier, [`WRITE_DOWN_DAYS_PER_LOCK`]
    /// days per store lock, so that appends and uncached queries wait for a few days'
    /// write-down at most (catching up on a year at start would otherwise hold the store
    /// for seconds). Cached results stay valid: the bars do not change, only where they
    /// live.
    pub fn write_down_before(
        &self,
        dataset: Option<&str>,
        before_day: i64,
    ) -> Result<WriteDownSummary, ServiceError> {
        let t = Instant::now();
        // Retention first: expired hot days are dropped, not written down.
        if let Err(e) = self.apply_retention(now_ns()) {
            tracing::error!(error = %e, "retention failed; expired partitions stay until the next pass");
        }
        let days = self.store().write_down_days(dataset, before_day)?;
        let mut total = WriteDownSummary::default();
        let mut result = Ok(());
        for (i, chunk) in days.chunks(WRITE_DOWN_DAYS_PER_LOCK).enumerate() {
            if i > 0 {
                // A short pause between chunks, so that appends and queries queued on
                // the lock get in before the next chunk.
                std::thread::sleep(Duration::from_millis(1));
            }
            let last = *chunk.last().expect("chunks are not empty");
            let held = Instant::now();
            let r = self.store_mut().write_down(dataset, last + 1);
            tracing::debug!(
                days = chunk.len(),
                last = %day_string(last),
                ms = held.elapsed().as_millis() as u64,
                "write-down chunk"
            );
            match r {
                Ok(s) => {
                    total.partitions += s.partitions;
                    total.rows += s.rows;
                    total.bytes += s.bytes;
                    total.compacted_months += s.compacted_months;
                    total.compacted_parts += s.compacted_parts;
                }
                Err(e) => {
                    result = Err(ServiceError::from(e));
                    break;
                }
            }
        }
        // Each chunk compacted the months that ended before it; the months that end
        // before `before_day` but after the last chunk are compacted here.
        if result.is_ok() {
            match self.store_mut().compact(dataset, before_day) {
                Ok(c) => {
                    total.compacted_months += c.months;
                    total.compacted_parts += c.parts_in;
                }
                Err(e) => result = Err(ServiceError::from(e)),
            }
        }
        self.metrics.observe_write_down(
            result.is_ok().then_some(total.partitions as u64),
            t.elapsed(),
        );
        result.map(|()| total)
    }
}

/// The smallest `ts` of a store batch (`timestamp[ns]`), if any.
fn earliest_ts(b: &RecordBatch) -> Option<i64> {
    use arrow_array::cast::AsArray;
    b.column_by_name("ts")?
        .as_primitive_opt::<arrow_array::types::TimestampNanosecondType>()?
        .iter()
        .flatten()
        .min()
}

/// A client's append payload as record batches: the stream's structure
/// checked before arrow-ipc reads it, row counts and decoded sizes bounded by
/// the payload's size, every column validated
/// ([`ringfeed_arrow::ipc_stream::decode_stream`]). Every refusal is
/// `bad_request` and says what is wrong. The daemon's `append` and the
/// `append_payload` fuzz target run exactly this.
pub fn decode_append_payload(payload: &[u8]) -> Result<Vec<RecordBatch>, ServiceError> {
    use ringfeed_arrow::ipc_stream::{decode_stream, StreamLimits};
    decode_stream(payload, &StreamLimits::for_payload(payload.len()))
        .map(|(_, batches)| batches)
        .map_err(|e| ServiceError::bad_request(format!("append payload refused: {e}")))
}

/// The first day (days since the epoch, UTC) that is not yet due for write-down at
/// `now_ns`: days before it ended at least `delay` ago.
pub fn write_down_boundary(now_ns: i64, delay: Duration) -> i64 {
    (now_ns - delay.as_nanos() as i64).div_euclid(ringfeed_store::timeframe::NANOS_PER_DAY)
}

/// Runs end-of-day write-downs until `stop`: one pass at start (catching up on days left
/// hot while the daemon was down), then one each time a UTC day has been over for
/// `delay`. A failed pass is logged, counted, and retried after `RETRY`.
pub fn write_down_loop(service: Arc<Service>, delay: Duration, stop: Arc<AtomicBool>) {
    const RETRY: Duration = Duration::from_secs(300);
    let mut done_before = i64::MIN;
    let mut retry_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let boundary = write_down_boundary(now_ns(), delay);
        let due = boundary > done_before && retry_at.is_none_or(|t| Instant::now() >= t);
        if due {
            let t = Instant::now();
            match service.write_down_before(None, boundary) {
                Ok(s) => {
                    done_before = boundary;
                    retry_at = None;
                    if s.partitions > 0 {
                        tracing::info!(
                            partitions = s.partitions,
                            rows = s.rows,
                            bytes = s.bytes,
                            ms = t.elapsed().as_millis() as u64,
                            "wrote down the days before {} to Parquet",
                            day_string(boundary)
                        );
                    }
                }
                Err(e) => {
                    retry_at = Some(Instant::now() + RETRY);
                    tracing::error!(
                        error = %e,
                        "end-of-day write-down failed; the days stay in the hot tier (nothing is lost), retrying in {} s",
                        RETRY.as_secs()
                    );
                }
            }
        }
        // Wake often enough to notice `stop` promptly; the due check is cheap.
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_due_for_write_down_once_it_has_been_over_for_the_delay() {
        const DAY: i64 = 86_400_000_000_000;
        const MIN: i64 = 60_000_000_000;
        let ten = Duration::from_secs(600);
        // 2021-01-01.
        let day = 18_628;
        // 00:05 on day+1: day is not due yet, the day before it is.
        assert_eq!(write_down_boundary((day + 1) * DAY + 5 * MIN, ten), day);
        // 00:10 on day+1: day is due.
        let at = (day + 1) * DAY + 10 * MIN;
        assert_eq!(write_down_boundary(at, ten), day + 1);
        // No delay: due at midnight.
        assert_eq!(
            write_down_boundary((day + 1) * DAY, Duration::ZERO),
            day + 1
        );
        assert_eq!(day_string(day), "2021-01-01");
    }
}

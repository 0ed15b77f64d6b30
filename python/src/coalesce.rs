//! `Reader.read_many`: every batch pending for a reader that fell behind,
//! as one record batch in private memory (one DataFrame, one table).

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use ringfeed_arrow::{ReadError, Reader};

/// What one drain took from the ring.
pub(crate) struct Drained {
    /// The batches' rows, in seq order: the first batch itself (still leased,
    /// zero-copy) when it was the only one, otherwise a copy of all of them.
    pub(crate) batch: RecordBatch,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    pub(crate) ts_ns: u64,
    pub(crate) count: u64,
    pub(crate) arena: std::ops::Range<usize>,
    /// The error that stopped the drain (e.g. `Lagged`), for the next read to
    /// raise: the batches before it are returned first.
    pub(crate) deferred: Option<ReadError>,
}

/// Takes `first` and every batch ready after it (at most `max` in all)
/// without waiting. Batches are copied and their leases dropped whenever the
/// reader's lease cap is reached, so any number can be taken.
pub(crate) fn drain(
    reader: &mut Reader,
    first: ringfeed_arrow::Batch,
    max: usize,
) -> Result<Drained, ArrowError> {
    let schema = reader.schema().clone();
    let (first_seq, arena) = (first.seq(), first.arena_range());
    let (mut last_seq, mut ts_ns) = (first.seq(), first.ts_ns());
    let mut count = 1u64;
    let mut leased: Vec<RecordBatch> = vec![first.into_record_batch()];
    let mut copied: Vec<RecordBatch> = Vec::new();
    let mut deferred = None;
    while (count as usize) < max {
        match reader.try_read() {
            Ok(Some(b)) => {
                last_seq = b.seq();
                ts_ns = b.ts_ns();
                count += 1;
                leased.push(b.into_record_batch());
            }
            Ok(None) => break,
            // The cap: copy what is held, drop the leases, go on.
            Err(ReadError::TooManyLeases { .. }) if !leased.is_empty() => {
                copied.push(copy_of(&schema, &leased, &arena)?);
                leased.clear();
            }
            Err(e) => {
                deferred = Some(e);
                break;
            }
        }
    }
    let batch = if copied.is_empty() && leased.len() == 1 {
        leased.remove(0)
    } else {
        copied.append(&mut leased);
        copy_of(&schema, &copied, &arena)?
    };
    Ok(Drained {
        batch,
        first_seq,
        last_seq,
        ts_ns,
        count,
        arena,
        deferred,
    })
}

/// `batches` concatenated into one batch whose buffers are all private
/// (none inside the arena, so it holds no lease).
fn copy_of(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    arena: &std::ops::Range<usize>,
) -> Result<RecordBatch, ArrowError> {
    let out = arrow_select::concat::concat_batches(schema, batches)?;
    // `concat` may hand back a view column's data buffers as they are (not
    // copied): such a batch would keep its slots leased.
    if crate::export::any_in(&out, arena) {
        return crate::export::deep_copy(&out);
    }
    Ok(out)
}

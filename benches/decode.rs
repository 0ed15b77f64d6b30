//! Reader-side cost of getting a `RecordBatch` out of a committed slot, vs rows.
//!
//! Bar batches (7 columns, 64 bytes a row) of 1k, 100k, 1M and 10M rows.
//!
//! ringfeed (should be flat, O(columns)):
//! - `decode/ringfeed_codec/*`: `codec::decode` of a slot that sits in the ring
//!   (a `Buffer` over a leased slot): structural checks + `FileDecoder`.
//! - `decode/ringfeed/*`: the whole `Reader::try_read` of a freshly committed
//!   batch (seqlock, pin, fence, decode) plus dropping it (unpin). The writer
//!   re-commits between iterations, outside the timed region (see below).
//! - `decode/ringfeed_open/*`: `Reader::open` (attach: open, lock, mmap,
//!   schema) + the first read: what a new process pays for its first batch.
//! - `decode/arrow_filedecoder_unchecked/*` (diagnostic): arrow's own floor for
//!   the same slot, `FileDecoder` with `skip_validation` and no ringfeed checks.
//!
//! What users do otherwise (O(rows)), over the same batch as an in-memory IPC
//! file / stream, with arrow's default full validation:
//! - `decode/arrow_ipc_validated/*`: `FileReader` over a `Cursor` (copies the
//!   body, then validates).
//! - `decode/arrow_ipc_stream_validated/*`: `StreamReader` over a `Cursor`
//!   (not at 10M rows, where it takes ~3 s an iteration).
//! - `decode/arrow_ipc_zero_copy_validated/*`: arrow's own zero-copy recipe
//!   (`FileDecoder` over a `Buffer`, as in `arrow/examples/zero_copy_ipc.rs`),
//!   validated: no copy, but still O(rows).
//!
//! Re-reading the same committed batch without copying it again: the writer
//! is primed by writing the batch into every buffer of the pool once (the
//! writer cycles through its free buffers, so M writes fill all M buffers with
//! identical bytes). After that, `claim(len)` + `commit(len)` without touching
//! the bytes re-publishes the same batch in O(1). That re-commit is not timed.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{FileDecoder, FileReader, StreamReader};
use arrow_ipc::writer::{FileWriter, StreamWriter};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use ringfeed_arrow::{
    codec, Reader, ReaderOptions, RingOptions, StartAt, Writer, FORMAT_ARROW_IPC_V1,
};
use ringfeed_benches::{arena_name, bar_batch, quick, rows_label, times};
use ringfeed_shm::RingReader;
use std::io::Cursor;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS: [usize; 4] = [1_000, 100_000, 1_000_000, 10_000_000];
/// M: pool buffers. Three identical copies of the batch (one may be pinned by
/// the codec bench while the others rotate).
const BUFFERS: u32 = 3;

/// One batch committed in a ring, plus the same batch as IPC file and stream bytes.
struct Fixture {
    name: String,
    batch: RecordBatch,
    writer: Writer,
    /// Bytes of the encoded slot.
    slot_len: u64,
    file: Buffer,
    stream: Vec<u8>,
}

impl Fixture {
    fn new(rows: usize) -> Self {
        let batch = bar_batch(rows);
        let name = arena_name(&format!("decode-{rows}"));
        let slot_bytes = rows as u64 * 64 + (64 << 10);
        let opts = RingOptions {
            slots: 1,
            slot_bytes,
            max_readers: 4,
            leases_per_reader: 2,
            buffers: Some(BUFFERS),
            force: true,
            ..RingOptions::default()
        };
        let mut writer = Writer::create(&name, batch.schema_ref(), opts).expect("create ring");
        let mut probe = RingReader::open(&name, StartAt::Next).expect("attach byte reader");
        for _ in 0..BUFFERS {
            writer.write(&batch).expect("prime a buffer");
        }
        // The probe fell behind (one descriptor slot): skip to the newest.
        let slot_len = loop {
            match probe.try_read() {
                Ok(Some(lease)) => break lease.bytes().len() as u64,
                Ok(None) => panic!("primed ring is empty"),
                Err(_lagged) => continue,
            }
        };
        drop(probe);

        let mut fw = FileWriter::try_new(Vec::new(), batch.schema_ref()).expect("ipc file writer");
        fw.write(&batch).expect("ipc file write");
        // Copied into an arrow (64-byte aligned) allocation, as a mapped file would be.
        let file = Buffer::from_slice_ref(fw.into_inner().expect("ipc file finish"));
        let mut sw =
            StreamWriter::try_new(Vec::new(), batch.schema_ref()).expect("ipc stream writer");
        sw.write(&batch).expect("ipc stream write");
        let stream = sw.into_inner().expect("ipc stream finish");

        let mut fx = Self {
            name,
            batch,
            writer,
            slot_len,
            file,
            stream,
        };
        fx.check();
        fx
    }

    /// Re-publishes the batch already sitting in every pool buffer: O(1).
    fn recommit(&mut self) {
        let rows = self.batch.num_rows() as u64;
        let claim = self.writer.ring_mut().claim(self.slot_len).expect("claim");
        claim.commit(self.slot_len, rows, FORMAT_ARROW_IPC_V1);
    }

    /// Every re-committed slot decodes to the original batch, zero-copy.
    fn check(&mut self) {
        let mut r = Reader::open(&self.name, StartAt::Next).expect("attach");
        let n = self.batch.num_rows();
        for _ in 0..2 * BUFFERS {
            self.recommit();
            let got = r.try_read().expect("read").expect("a batch");
            assert!(got.is_zero_copy(), "decoded batch points outside the arena");
            assert_eq!(got.num_rows(), n);
            let tail = n.min(1000);
            assert_eq!(got.slice(n - tail, tail), self.batch.slice(n - tail, tail));
            if n <= 100_000 {
                assert_eq!(*got, self.batch);
            }
        }
    }
}

fn ipc_file_validated(bytes: &[u8]) -> RecordBatch {
    let mut r = FileReader::try_new(Cursor::new(bytes), None).expect("ipc file");
    r.next().expect("one batch").expect("valid batch")
}

fn ipc_stream_validated(bytes: &[u8]) -> RecordBatch {
    let mut r = StreamReader::try_new(Cursor::new(bytes), None).expect("ipc stream");
    r.next().expect("one batch").expect("valid batch")
}

/// arrow's zero-copy recipe: parse the footer, decode the batch in place, validated.
fn ipc_zero_copy_validated(buf: &Buffer) -> RecordBatch {
    let trailer = buf.len() - 10;
    let footer_len =
        arrow_ipc::reader::read_footer_length(buf[trailer..].try_into().expect("10 bytes"))
            .expect("footer length");
    let footer = arrow_ipc::root_as_footer(&buf[trailer - footer_len..trailer]).expect("footer");
    let schema =
        arrow_ipc::convert::try_fb_to_schema(footer.schema().expect("schema")).expect("schema");
    let decoder = FileDecoder::new(Arc::new(schema), footer.version()).with_require_alignment(true);
    let blocks = footer.recordBatches().expect("blocks");
    let block = blocks.get(0);
    let data = buf.slice_with_length(
        block.offset() as usize,
        block.metaDataLength() as usize + block.bodyLength() as usize,
    );
    decoder
        .read_record_batch(block, &data)
        .expect("valid batch")
        .expect("a batch")
}

/// The bare arrow-rs floor for decoding one slot: frame the record-batch
/// message by hand and hand it to a `FileDecoder` that skips validation.
fn filedecoder_unchecked(schema: &arrow_schema::SchemaRef, slot: &Buffer) -> RecordBatch {
    let meta_len = u32::from_le_bytes(slot[4..8].try_into().expect("4 bytes")) as usize + 8;
    let msg = arrow_ipc::root_as_message(&slot[8..meta_len]).expect("message");
    let block = arrow_ipc::Block::new(0, meta_len as i32, msg.bodyLength());
    let decoder = FileDecoder::new(schema.clone(), arrow_ipc::MetadataVersion::V5)
        .with_require_alignment(true);
    // SAFETY: the slot was written by `Writer::write` from a valid batch in
    // this process and `ringfeed_codec` checks the same bytes; this is only
    // the diagnostic floor without those checks.
    let decoder = unsafe { decoder.with_skip_validation(true) };
    decoder
        .read_record_batch(&block, slot)
        .expect("decode")
        .expect("a batch")
}

fn bench_decode(c: &mut Criterion) {
    let (warm_up, measure) = times();
    let mut group = c.benchmark_group("decode");
    group.warm_up_time(warm_up).measurement_time(measure);
    for rows in ROWS {
        if quick() && rows > 1_000_000 {
            continue;
        }
        let label = rows_label(rows);
        let mut fx = Fixture::new(rows);
        let schema = fx.batch.schema();
        if rows >= 1_000_000 {
            // O(rows) baselines take 10-300 ms an iteration here.
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        } else {
            group
                .sample_size(if quick() { 20 } else { 50 })
                .sampling_mode(SamplingMode::Auto);
        }

        // (a) codec::decode of a slot that lives in the ring.
        {
            let mut probe = RingReader::open_with(
                &fx.name,
                ReaderOptions {
                    start: StartAt::Next,
                    ..Default::default()
                },
            )
            .expect("attach byte reader");
            fx.recommit();
            let lease = probe.try_read().expect("read").expect("a slot");
            let bytes = lease.bytes();
            let (ptr, len) = (
                NonNull::new(bytes.as_ptr() as *mut u8).expect("non-null"),
                bytes.len(),
            );
            // SAFETY: ptr..ptr+len is the leased slot inside the pool mapping;
            // the `Arc<Lease>` owner keeps the pin and the mapping alive for as
            // long as the Buffer lives, and a pinned slot is never rewritten.
            let slot = unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(lease)) };
            group.bench_function(BenchmarkId::new("ringfeed_codec", &label), |b| {
                // SAFETY: the slot was written by a `Writer` from `bar_batch`,
                // whose arrays arrow's safe constructors validated.
                b.iter(|| unsafe { codec::decode(&schema, black_box(&slot)) }.expect("decode"))
            });
            // The same slot with every value checked (`Validate::Full`).
            group.bench_function(BenchmarkId::new("ringfeed_codec_full", &label), |b| {
                b.iter(|| codec::decode_validated(&schema, black_box(&slot)).expect("decode"))
            });
            // Diagnostic: arrow's own floor for the same slot, without
            // ringfeed's structural checks (FileDecoder, skip_validation).
            group.bench_function(
                BenchmarkId::new("arrow_filedecoder_unchecked", &label),
                |b| b.iter(|| filedecoder_unchecked(&schema, black_box(&slot))),
            );
        }

        // (b) the whole Reader::try_read of a freshly committed batch.
        {
            let mut reader = Reader::open(&fx.name, StartAt::Next).expect("attach");
            group.bench_function(BenchmarkId::new("ringfeed", &label), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        fx.recommit();
                        let t = Instant::now();
                        let batch = reader.try_read().expect("read").expect("a batch");
                        black_box(batch.num_rows());
                        drop(batch);
                        total += t.elapsed();
                    }
                    total
                })
            });
        }

        // (c) attach + first read, as a new process would.
        group.bench_function(BenchmarkId::new("ringfeed_open", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let mut reader = Reader::open(&fx.name, StartAt::Latest).expect("attach");
                    let batch = reader.try_read().expect("read").expect("a batch");
                    black_box(batch.num_rows());
                    total += t.elapsed();
                    drop(batch);
                    drop(reader);
                }
                total
            })
        });

        // Baselines: what users do otherwise, over the same batch in memory.
        group.bench_function(BenchmarkId::new("arrow_ipc_validated", &label), |b| {
            b.iter(|| ipc_file_validated(black_box(fx.file.as_slice())))
        });
        // StreamReader takes ~3 s an iteration at 10M rows here (4x FileReader):
        // skipped there to keep the whole run near 5 minutes.
        if rows < 10_000_000 {
            group.bench_function(
                BenchmarkId::new("arrow_ipc_stream_validated", &label),
                |b| b.iter(|| ipc_stream_validated(black_box(&fx.stream))),
            );
        }
        group.bench_function(
            BenchmarkId::new("arrow_ipc_zero_copy_validated", &label),
            |b| b.iter(|| ipc_zero_copy_validated(black_box(&fx.file))),
        );
        assert_eq!(ipc_zero_copy_validated(&fx.file), fx.batch);
        drop(fx);
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);

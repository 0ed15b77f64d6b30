//! A reader of a ring: its own row, its own cursor, leases that pin buffers.

use crate::arena::{self, Access, Regions};
use crate::error::{OpenError, ReadError};
use crate::layout::{row_state, state, READER_LOCK_BASE};
use crate::os;
use crate::sync::{fence, futex_wait, futex_wake, AtomicU32, Ordering};
use crate::table::{self, ReaderInfo};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a new reader starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The oldest batch still in the ring.
    Oldest,
    /// The newest batch in the ring (or the first one, if none yet).
    #[default]
    Latest,
    /// Only batches published after the open.
    Next,
}

/// How much of each payload the layer above (`ringfeed-arrow`) checks before
/// handing it out. This crate moves bytes and checks nothing of them itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Validate {
    /// Trust what only the writer can write: the arena is ours (our uid, no
    /// group/other write bits), mode 0400 once READY and mapped read-only by
    /// every reader, so only its writer wrote the payloads. Structure is
    /// still checked, in O(columns). The default.
    #[default]
    Trusted,
    /// Check every value as well, in O(rows): for rings written by less
    /// trusted writers (e.g. opened with `allow_foreign_owner`, which implies it).
    Full,
}

/// Options for [`RingReader::open_with`].
#[derive(Clone, Debug, Default)]
pub struct ReaderOptions {
    /// Where to start.
    pub start: StartAt,
    /// Busy-poll this long before sleeping on the futex. Zero (the default)
    /// sleeps at once: on small machines spinning steals the writer's core.
    pub spin: Duration,
    /// Attach even if the arena belongs to another user, or others may
    /// write it: then its bytes cannot be trusted, so the layer above should
    /// validate every batch in full (it implies [`Validate::Full`]).
    pub allow_foreign_owner: bool,
    /// How the layer above validates payloads (see [`Validate`]).
    pub validate: Validate,
}

/// How often a sleeping reader wakes to check that the writer still lives.
const LIVENESS_SLICE: Duration = Duration::from_millis(100);

pub(crate) struct ReaderShared {
    pub(crate) regions: Regions,
    row: u32,
    /// `Control::readers_epoch` when we joined: a change means the writer
    /// rebuilt the reader table and our row is gone.
    readers_epoch: u32,
    leases: AtomicU32,
    block_mode: bool,
    name: String,
    fork_gen: u64,
}

impl Drop for ReaderShared {
    fn drop(&mut self) {
        if self.fork_gen != crate::sync::fork_generation() {
            // Inherited across fork(): the row and its lock are the parent's.
            return;
        }
        // The last lease is gone: no pins remain. Free the row, then the lock.
        let row = self.regions.row(self.row);
        row.state.store(row_state::FREE, Ordering::Release);
        let _ = os::unlock_byte(&self.regions.table_file, READER_LOCK_BASE + self.row as u64);
    }
}

impl ReaderShared {
    /// Whether our row is gone: the table was truncated (a SIGBUS replaced
    /// our mapping by zero pages) or the writer rebuilt it since we joined.
    fn detached(&self) -> bool {
        self.regions.table_lost()
            || self
                .regions
                .control()
                .state
                .0
                .readers_epoch
                .load(Ordering::Relaxed)
                != self.readers_epoch
    }

    fn ring_writer_bell(&self) {
        if !self.block_mode {
            return;
        }
        // SYNC POINT: writer-bell. Pairs with the writer's fence after it sets
        // writer_waiting.
        fence(Ordering::SeqCst);
        let bell = &self.regions.table_control().writer_bell.0;
        if bell.writer_waiting.load(Ordering::Relaxed) != 0 {
            bell.bell.fetch_add(1, Ordering::Release);
            futex_wake(&bell.bell, 1);
        }
    }
}

/// One batch's bytes, pinned: the writer will not rewrite the buffer until
/// every clone of the `Arc<Lease>` that wraps it is dropped.
pub struct Lease {
    shared: Arc<ReaderShared>,
    buf: u32,
    ptr: *const u8,
    len: usize,
    seq: u64,
    rows: u64,
    ts_ns: u64,
    user: u64,
}

// SAFETY: the bytes behind `ptr` are immutable while the lease lives (pin
// protocol) and `shared` keeps the mapping alive; the pin is released with an
// atomic, from any thread.
unsafe impl Send for Lease {}
// SAFETY: see `Send`; `&Lease` only reads.
unsafe impl Sync for Lease {}

impl Lease {
    /// The payload.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len lies inside the read-only pool mapping (len <=
        // buffer_bytes was checked), which `shared` keeps mapped; the pin keeps
        // the writer from rewriting it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    /// Sequence number (1-based).
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Rows recorded by the writer.
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Publish time, ns since the Unix epoch.
    pub fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
    /// The writer's `user` word.
    pub fn user(&self) -> u64 {
        self.user
    }
    /// Buffer index (diagnostics).
    pub fn buffer(&self) -> u32 {
        self.buf
    }
    /// Address range of the whole arena pool mapping, for zero-copy checks.
    pub fn pool_range(&self) -> std::ops::Range<usize> {
        self.shared.regions.pool_range()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let s = &self.shared;
        if s.fork_gen != crate::sync::fork_generation() {
            return; // the parent's copy of this lease releases the pin
        }
        if s.detached() {
            return; // our row was rebuilt from zero: nothing of ours is in it
        }
        // SYNC POINT: unpin. Release pairs with the writer's Acquire load of
        // the pin: our reads of the buffer happen-before it is rewritten.
        s.regions.pins(s.row)[self.buf as usize].fetch_sub(1, Ordering::Release);
        s.regions.row(s.row).leases.fetch_sub(1, Ordering::Relaxed);
        s.leases.fetch_sub(1, Ordering::Relaxed);
        s.ring_writer_bell();
    }
}

/// The reader end of a ring.
pub struct RingReader {
    /// The event-loop wait ([`RingReader::arm`]), made on first use; declared before
    /// `shared` so that it is closed (its wait cancelled) before the mapping may go.
    evented: Option<crate::uring::FutexFd>,
    /// Counted in `waiters` (and `sleeping` set) by [`RingReader::arm`].
    armed: bool,
    shared: Arc<ReaderShared>,
    cursor: u64,
    spin: Duration,
    last_liveness: Option<Instant>,
}

impl RingReader {
    /// Attaches to the arena `name`, starting where `start` says.
    pub fn open(name: &str, start: StartAt) -> Result<Self, OpenError> {
        Self::open_with(
            name,
            ReaderOptions {
                start,
                ..Default::default()
            },
        )
    }

    /// Attaches with full options.
    pub fn open_with(name: &str, opts: ReaderOptions) -> Result<Self, OpenError> {
        let v = arena::open_validated(name, opts.allow_foreign_owner, Access::Read)?;
        let path = v.path.clone();
        let regions = arena::map_reader(name, v, opts.allow_foreign_owner)?;
        let ctl = regions.control();
        let readers_epoch = ctl.state.0.readers_epoch.load(Ordering::Relaxed);
        // SYNC POINT: ready. Pairs with the creator's Release store of READY.
        let st = ctl.state.0.state.load(Ordering::Acquire);
        if st != state::READY && st != state::CLOSED {
            return Err(OpenError::CorruptHeader {
                path,
                what: "arena is not READY (a foreign or half-built file)",
            });
        }
        if regions.meta_bytes().is_none() {
            return Err(OpenError::CorruptHeader {
                path,
                what: "meta block length or CRC",
            });
        }
        let geo = regions.geo;
        let row = (0..geo.max_readers)
            .find(|&i| {
                matches!(
                    os::try_lock_byte(&regions.table_file, READER_LOCK_BASE + i as u64),
                    Ok(true)
                )
            })
            .ok_or_else(|| OpenError::ReaderTableFull {
                name: name.to_string(),
                max_readers: geo.max_readers,
            })?;
        // We hold the row's lock: whoever owned it is dead, so the row is ours.
        let r = regions.row(row);
        for p in regions.pins(row) {
            p.store(0, Ordering::Relaxed);
        }
        r.leases.store(0, Ordering::Relaxed);
        r.missed.store(0, Ordering::Relaxed);
        // SYNC POINT: row-claim. Pairs with the writer's Acquire load of `gen`
        // in its sweep: a row recorded as bad under the old gen is ours now,
        // with the pins zeroed above, and the writer no longer ignores it.
        let gen = r.gen.fetch_add(1, Ordering::Release).wrapping_add(1);
        // Lease age (diagnostics): nothing leased under this gen yet.
        r.leased_since_ns.store(0, Ordering::Relaxed);
        r.lease_gen.store(gen, Ordering::Relaxed);
        r.pid.store(std::process::id(), Ordering::Relaxed);
        r.start_time.store(
            os::process_start_time(std::process::id()),
            Ordering::Relaxed,
        );
        r.heartbeat_ns.store(os::monotonic_ns(), Ordering::Relaxed);
        let w = ctl.write_seq.0.load(Ordering::Acquire);
        let d = geo.slots as u64;
        let cursor = match opts.start {
            StartAt::Oldest => (w + 1).saturating_sub(d).max(1),
            StartAt::Latest => w.max(1),
            StartAt::Next => w + 1,
        };
        r.sleeping.store(0, Ordering::Relaxed);
        r.cursor.store(cursor, Ordering::Relaxed);
        // SYNC POINT: row-active. Pairs with the writer's Acquire load of the
        // row state: it sees our cursor and zeroed pins.
        r.state.store(row_state::ACTIVE, Ordering::Release);
        let block_mode = regions.header.on_full == 1;
        let mut cursor = cursor;
        if block_mode {
            // SYNC POINT: join. Pairs with the fence after the writer's store
            // of write_seq: a claim that checked the readers before our
            // ACTIVE store can only evict seqs up to w2 + 1 - D, where w2 is
            // what we load here, so start past them (else the first read laps).
            fence(Ordering::SeqCst);
            let w2 = ctl.write_seq.0.load(Ordering::Relaxed);
            let safe = (w2 + 2).saturating_sub(d).max(1);
            if cursor < safe {
                cursor = safe;
                r.cursor.store(cursor, Ordering::Release);
            }
        }
        Ok(Self {
            shared: Arc::new(ReaderShared {
                regions,
                readers_epoch,
                row,
                leases: AtomicU32::new(0),
                block_mode,
                name: name.to_string(),
                fork_gen: crate::sync::fork_generation(),
            }),
            cursor,
            spin: opts.spin,
            last_liveness: None,
            evented: None,
            armed: false,
        })
    }

    /// The meta payload (the Arrow schema message, for the layer above).
    pub fn meta(&self) -> Vec<u8> {
        self.shared.regions.meta_bytes().unwrap_or_default()
    }

    /// Arena name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Next seq this reader will read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Highest seq the writer has published.
    pub fn write_seq(&self) -> u64 {
        self.shared
            .regions
            .control()
            .write_seq
            .0
            .load(Ordering::Acquire)
    }

    /// Random id of the arena instance (differs if it was re-created).
    pub fn instance_id(&self) -> u64 {
        self.shared.regions.header.instance_id
    }

    /// Address range of the pool mapping, for zero-copy checks.
    pub fn pool_range(&self) -> std::ops::Range<usize> {
        self.shared.regions.pool_range()
    }

    /// Leases this reader holds right now.
    pub fn leases(&self) -> u32 {
        self.shared.leases.load(Ordering::Relaxed)
    }

    /// Readers attached to the arena (including this one).
    pub fn readers(&self) -> Vec<ReaderInfo> {
        table::read_rows(&self.shared.regions)
    }

    /// Whether the writer lives: a live process holds the writer lock, and
    /// the writer's pid has not been reused by another process (a lock kept
    /// by a child that escaped the fork hook). One or two syscalls.
    pub fn writer_alive(&self) -> bool {
        let r = &self.shared.regions;
        let st = &r.control().state.0;
        os::writer_lock_held(&r.file).unwrap_or(true)
            && !os::pid_reused(
                st.writer_pid.load(Ordering::Relaxed),
                st.writer_start.load(Ordering::Relaxed),
            )
    }

    fn lag(&mut self, at: u64) -> ReadError {
        let s = &self.shared;
        let w = s.regions.control().write_seq.0.load(Ordering::Acquire);
        let oldest = (w + 1).saturating_sub(s.regions.geo.slots as u64).max(1);
        let next = oldest.max(at + 1);
        let missed = next - at;
        self.cursor = next;
        let row = s.regions.row(s.row);
        row.missed.fetch_add(missed, Ordering::Relaxed);
        // SYNC POINT: consumed (see `try_read`).
        row.cursor.store(next, Ordering::Release);
        s.ring_writer_bell();
        ReadError::Lagged { missed }
    }

    fn corrupt(&self, what: &'static str) -> ReadError {
        ReadError::Corrupt {
            name: self.shared.name.clone(),
            what,
        }
    }

    /// Returns the next batch if one is there; never blocks, never makes a syscall
    /// (except a futex wake of a writer blocked on this reader).
    pub fn try_read(&mut self) -> Result<Option<Lease>, ReadError> {
        let s = &self.shared;
        if s.fork_gen != crate::sync::fork_generation() {
            return Err(ReadError::Forked);
        }
        if s.detached() {
            return Err(ReadError::Detached {
                name: s.name.clone(),
            });
        }
        let r = &s.regions;
        let c = self.cursor;
        // SYNC POINT: publish. Pairs with the writer's Release store of write_seq.
        let w = r.control().write_seq.0.load(Ordering::Acquire);
        if c > w {
            return Ok(None);
        }
        let d = r.desc(c);
        // SYNC POINT: desc-seqlock-end. Pairs with the writer's Release store of seq.
        let s1 = d.seq.load(Ordering::Acquire);
        if s1 != c {
            if s1 < c {
                return Err(self.corrupt("descriptor seq behind write_seq"));
            }
            return Err(self.lag(c)); // overwritten, or being overwritten (BUSY)
        }
        let buf = d.buf_idx.load(Ordering::Relaxed);
        let gen = d.buf_gen.load(Ordering::Relaxed);
        let len = d.len.load(Ordering::Relaxed);
        let rows = d.rows.load(Ordering::Relaxed);
        let ts_ns = d.ts_ns.load(Ordering::Relaxed);
        let user = d.user.load(Ordering::Relaxed);
        // SYNC POINT: desc-seqlock-begin. Pairs with the writer's Release fence
        // after it marks the entry BUSY.
        fence(Ordering::Acquire);
        if d.seq.load(Ordering::Relaxed) != c {
            return Err(self.lag(c));
        }
        if buf >= r.geo.buffers {
            return Err(self.corrupt("buffer index out of range"));
        }
        if len > r.geo.buffer_bytes {
            return Err(self.corrupt("payload longer than a buffer"));
        }
        if gen % 2 == 1 {
            return Err(self.corrupt("published buffer generation is odd"));
        }
        let held = s.leases.load(Ordering::Relaxed);
        let max = r.geo.leases_per_reader;
        if held >= max {
            return Err(ReadError::TooManyLeases { held, max });
        }
        let pins = r.pins(s.row);
        // SYNC POINT: row-active. Release pairs with the writer's Acquire load
        // of the pin: seeing it, the writer also sees our row ACTIVE (it
        // ignores pins of rows that are not attached).
        pins[buf as usize].fetch_add(1, Ordering::Release);
        // SYNC POINT: recycle. Pairs with the writer's fence after it marks a
        // buffer odd: either it sees our pin, or we see its odd gen / new seq.
        fence(Ordering::SeqCst);
        if r.gen(buf).load(Ordering::Relaxed) != gen || d.seq.load(Ordering::Relaxed) != c {
            pins[buf as usize].fetch_sub(1, Ordering::Release);
            return Err(self.lag(c));
        }
        let row = r.row(s.row);
        if s.leases.fetch_add(1, Ordering::Relaxed) == 0 {
            // Lease age (diagnostics): our lease count went 0 -> 1. Reads are
            // serialised by `&mut self`, so these stores come in order. A vDSO
            // clock read, no syscall.
            row.leased_since_ns
                .store(os::monotonic_ns(), Ordering::Relaxed);
        }
        row.leases.fetch_add(1, Ordering::Relaxed);
        self.cursor = c + 1;
        // SYNC POINT: consumed. Pairs with a Block writer's Acquire load of our
        // cursor: our descriptor reads happen-before it rewrites the entry.
        row.cursor.store(c + 1, Ordering::Release);
        s.ring_writer_bell();
        Ok(Some(Lease {
            shared: s.clone(),
            buf,
            ptr: r.buffer_ptr(buf),
            len: len as usize,
            seq: c,
            rows,
            ts_ns,
            user,
        }))
    }

    /// Waits up to `timeout` for the next batch. `Ok(None)` on timeout.
    /// Ends with `Err(Closed)` after the writer closed and everything was read,
    /// or `Err(WriterGone)` if the writer died.
    pub fn read(&mut self, timeout: Duration) -> Result<Option<Lease>, ReadError> {
        let start = Instant::now();
        let shared = self.shared.clone();
        let ctl = shared.regions.control();
        loop {
            if let Some(l) = self.try_read()? {
                return Ok(Some(l));
            }
            let ctl_state = ctl.state.0.state.load(Ordering::Acquire);
            if ctl_state == state::CLOSED {
                // SYNC POINT: closed. write_seq was final before CLOSED was stored.
                if ctl.write_seq.0.load(Ordering::Acquire) < self.cursor {
                    return Err(ReadError::Closed {
                        name: self.shared.name.clone(),
                    });
                }
                continue;
            }
            if !self.spin.is_zero() {
                let spin_end = Instant::now() + self.spin;
                let mut i = 0u32;
                while ctl.write_seq.0.load(Ordering::Acquire) < self.cursor
                    && Instant::now() < spin_end
                {
                    std::hint::spin_loop();
                    i = i.wrapping_add(1);
                    if i.is_multiple_of(256) {
                        // On small machines the writer may need this core: a spin
                        // that never yields made every publish wait out our budget.
                        std::thread::yield_now();
                    }
                }
                if ctl.write_seq.0.load(Ordering::Acquire) >= self.cursor {
                    continue;
                }
            }
            if self
                .last_liveness
                .is_none_or(|t| t.elapsed() >= LIVENESS_SLICE)
            {
                self.last_liveness = Some(Instant::now());
                let row = shared.regions.row(shared.row);
                row.heartbeat_ns
                    .store(os::monotonic_ns(), Ordering::Relaxed);
                if !self.writer_alive() {
                    if self.ready_or_closed() {
                        continue;
                    }
                    return Err(ReadError::WriterGone {
                        name: self.shared.name.clone(),
                    });
                }
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Ok(None);
            }
            // An armed reader is counted already (`arm`): once per row, so a sweep of a
            // dead one takes back exactly one.
            if !self.armed {
                self.count_sleeper(true);
            }
            // SYNC POINT: wake. Pairs with the writer's fence after its store of
            // write_seq: either it sees our waiter count, or we see its seq.
            fence(Ordering::SeqCst);
            let v = ctl.notify.0.load(Ordering::Acquire);
            if ctl.write_seq.0.load(Ordering::Relaxed) < self.cursor
                && ctl.state.0.state.load(Ordering::Relaxed) != state::CLOSED
            {
                futex_wait(&ctl.notify.0, v, (timeout - elapsed).min(LIVENESS_SLICE));
            }
            if !self.armed {
                self.count_sleeper(false);
            }
        }
    }

    /// Counts this reader as a sleeper (in `waiters`, and `sleeping` on its row) or
    /// takes it back: what the writer's wake and its sweep of dead readers look at.
    fn count_sleeper(&self, sleeping: bool) {
        let row = self.shared.regions.row(self.shared.row);
        let waiters = &self.shared.regions.table_control().waiters.0;
        if sleeping {
            waiters.fetch_add(1, Ordering::Relaxed);
            row.sleeping.store(1, Ordering::Relaxed);
        } else {
            row.sleeping.store(0, Ordering::Relaxed);
            waiters.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// For event loops (asyncio, tokio, epoll): prepares to sleep until the next batch
    /// without a thread. `Ok(None)` when a read would not wait now (a batch is ready, or
    /// the ring is closed): call [`RingReader::try_read`]. Otherwise `Ok(Some(fd))`: the
    /// reader is counted as a sleeper, so the writer's next publish wakes it, and `fd`
    /// turns readable then, or after [`RingReader::LIVENESS_SLICE`] at the latest;
    /// register it with the loop for readability, and when it fires call
    /// `read(Duration::ZERO)` (which also checks that the writer lives) and `arm` again.
    /// The same fd is returned every time.
    ///
    /// Stays counted until a call finds a batch ready, [`RingReader::disarm`], or the
    /// drop (a reader that died counted is taken back by the writer's sweep, as a
    /// blocked one is). `Err` when this kernel cannot (io_uring absent, disabled or
    /// older than Linux 6.7): wait on a thread with [`RingReader::read`] instead.
    pub fn arm(&mut self) -> std::io::Result<Option<std::os::fd::RawFd>> {
        let shared = self.shared.clone();
        let ctl = shared.regions.control();
        if self.ready_or_closed() {
            self.disarm();
            return Ok(None);
        }
        if self.evented.is_none() {
            self.evented = Some(crate::uring::FutexFd::new(LIVENESS_SLICE)?);
        }
        if !self.armed {
            self.count_sleeper(true);
            self.armed = true;
        }
        // SYNC POINT: wake. Pairs with the writer's fence after its store of write_seq,
        // as in `read`: either it sees our waiter count, or we see its seq.
        fence(Ordering::SeqCst);
        let v = ctl.notify.0.load(Ordering::Acquire);
        if self.ready_or_closed() {
            self.disarm();
            return Ok(None);
        }
        let ev = self.evented.as_mut().expect("made above");
        ev.reap();
        ev.arm(&ctl.notify.0, v)?;
        Ok(Some(ev.fd()))
    }

    /// How long an armed reader may sleep before it should read (and so check that the
    /// writer lives) again.
    pub const LIVENESS_SLICE: Duration = LIVENESS_SLICE;

    /// No longer counted as a sleeper (after [`RingReader::arm`]); the publishes that
    /// follow do not wake this reader's fd. Cheap when not armed.
    pub fn disarm(&mut self) {
        if let Some(ev) = &mut self.evented {
            ev.reap();
        }
        if !self.armed {
            return;
        }
        self.armed = false;
        self.count_sleeper(false);
    }

    /// A batch past our cursor is published, or the ring is closed.
    fn ready_or_closed(&self) -> bool {
        let ctl = self.shared.regions.control();
        ctl.write_seq.0.load(Ordering::Acquire) >= self.cursor
            || ctl.state.0.state.load(Ordering::Acquire) == state::CLOSED
    }

    /// Detaches. Leases still out stay valid; the row is freed when the last
    /// one is dropped, and until then a `Block` writer no longer waits for us.
    pub fn close(self) {}
}

impl Drop for RingReader {
    fn drop(&mut self) {
        if self.shared.fork_gen != crate::sync::fork_generation() {
            return;
        }
        self.disarm();
        let row = self.shared.regions.row(self.shared.row);
        row.state.store(row_state::DRAINING, Ordering::Release);
        self.shared.ring_writer_bell();
    }
}

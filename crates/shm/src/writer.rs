//! The single writer of a ring: claims a free buffer, fills it, publishes it.

use crate::arena::{self, Access, Regions};
use crate::create;
use crate::error::{ClaimError, CreateError, OpenError};
use crate::layout::{
    row_state, state, Geometry, CONTROL_OFF, PAGE, READER_LOCK_BASE, SEQ_BUSY, WRITER_LOCK_BYTE,
};
use crate::os;
use crate::sync::{fence, futex_wait, futex_wake, Ordering};
use crate::table::{self, ReaderInfo};
use std::collections::VecDeque;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the writer does when the ring is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFull {
    /// Never block: overwrite the oldest batch. Slow readers get `Lagged`.
    /// Buffers that readers still lease are skipped, never rewritten.
    OverwriteOldest,
    /// Wait (up to the timeout) until the slowest live reader has read the
    /// batch about to be overwritten: lossless back-pressure.
    Block(Duration),
}

/// Sizing and policy of a new ring.
#[derive(Clone, Debug)]
pub struct RingOptions {
    /// D: batches the ring keeps (descriptor entries). Default 8.
    pub slots: u32,
    /// Largest payload one slot holds, in bytes (rounded up to 4 KiB). Default 1 MiB.
    pub slot_bytes: u64,
    /// R: readers that may attach at once. Default 8.
    pub max_readers: u32,
    /// P: batches one reader may hold (lease) at once. Default 4: a reader
    /// that keeps its first batch, the previous one and the new one (a common
    /// Python loop) needs 3.
    pub leases_per_reader: u32,
    /// M: buffers in the pool. Default D + R·P + 1, which guarantees the
    /// writer always finds a free buffer; fewer save memory but can make the
    /// writer fail with `AllLeased` (or wait, in `Block` mode).
    pub buffers: Option<u32>,
    /// Full-ring policy. Default `OverwriteOldest`.
    pub on_full: OnFull,
    /// Capacity of the meta (schema) block. Default 64 KiB.
    pub meta_cap: u32,
    /// Replace an existing arena of the same name. Default false.
    pub force: bool,
}

impl Default for RingOptions {
    fn default() -> Self {
        Self {
            slots: 8,
            slot_bytes: 1 << 20,
            max_readers: 8,
            leases_per_reader: 4,
            buffers: None,
            on_full: OnFull::OverwriteOldest,
            meta_cap: 64 << 10,
            force: false,
        }
    }
}

impl RingOptions {
    /// The geometry these options produce.
    pub fn geometry(&self) -> Result<Geometry, CreateError> {
        let slot_bytes = self
            .slot_bytes
            .max(1)
            .checked_add(PAGE - 1)
            .ok_or(CreateError::InvalidOptions("slot_bytes too large"))?
            & !(PAGE - 1);
        let default_m =
            self.slots as u64 + self.max_readers as u64 * self.leases_per_reader as u64 + 1;
        let buffers = match self.buffers {
            Some(m) => m as u64,
            None => default_m,
        };
        let g = Geometry {
            slots: self.slots,
            buffers: u32::try_from(buffers)
                .map_err(|_| CreateError::InvalidOptions("too many buffers"))?,
            buffer_bytes: slot_bytes,
            max_readers: self.max_readers,
            leases_per_reader: self.leases_per_reader,
            meta_cap: self.meta_cap,
        };
        g.check().map_err(CreateError::InvalidOptions)?;
        Ok(g)
    }
}

const NONE: u32 = u32::MAX;
const SWEEP_EVERY: Duration = Duration::from_millis(50);
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The writer end of a ring. One per arena, enforced by an OFD lock.
pub struct RingWriter {
    regions: Regions,
    path: PathBuf,
    name: String,
    next_seq: u64,
    /// Which buffer each descriptor slot references (process-local mirror).
    desc_buf: Vec<u32>,
    /// Buffers no descriptor references, oldest-retired first.
    free: VecDeque<u32>,
    on_full: OnFull,
    last_sweep: Option<Instant>,
    closed: bool,
    fork_gen: u64,
    /// Rows the last sweep found breaking an invariant, with the row `gen`
    /// it saw: their pins are ignored until the row is claimed anew.
    bad: Vec<Option<u32>>,
    /// Times the reader table was found truncated and rebuilt.
    table_rebuilds: u64,
}

/// A buffer claimed for the next batch. Fill [`Claim::buf`], then
/// [`Claim::commit`]. Dropping it without committing abandons the buffer;
/// readers never see it.
pub struct Claim<'w> {
    w: &'w mut RingWriter,
    buf: u32,
    gen: u64,
    seq: u64,
    done: bool,
}

impl RingWriter {
    /// Creates a new arena and becomes its writer. `meta` is stored once
    /// (the layer above puts the Arrow schema there).
    pub fn create(name: &str, opts: &RingOptions, meta: &[u8]) -> Result<Self, CreateError> {
        let geo = opts.geometry()?;
        let (on_full, timeout_ns) = match opts.on_full {
            OnFull::OverwriteOldest => (0, 0),
            OnFull::Block(t) => (1, t.as_nanos().min(u64::MAX as u128) as u64),
        };
        let (path, regions) = create::create(name, geo, on_full, timeout_ns, meta, opts.force)?;
        Ok(Self {
            desc_buf: vec![NONE; geo.slots as usize],
            free: (0..geo.buffers).collect(),
            bad: vec![None; geo.max_readers as usize],
            table_rebuilds: 0,
            regions,
            path,
            name: name.to_string(),
            next_seq: 1,
            on_full: opts.on_full,
            last_sweep: None,
            closed: false,
            fork_gen: crate::sync::fork_generation(),
        })
    }

    /// Takes over an existing arena whose writer died: bumps the writer
    /// epoch, frees buffers a dead writer left half-written and continues at
    /// `write_seq + 1`. Fails with `WriterAlive` if its writer still lives.
    pub fn open_existing(name: &str) -> Result<Self, OpenError> {
        let v = arena::open_validated(name, false, Access::TakeOver)?;
        let io = |e| OpenError::Io {
            path: v.path.clone(),
            source: e,
        };
        if !os::try_lock_byte(&v.file, WRITER_LOCK_BYTE).map_err(io)? {
            let mut pid = [0u8; 4];
            let _ = v.file.read_exact_at(&mut pid, CONTROL_OFF + 8);
            return Err(OpenError::WriterAlive {
                name: name.to_string(),
                pid: u32::from_ne_bytes(pid),
            });
        }
        let path = v.path.clone();
        let (regions, rebuilt) = arena::map_takeover(name, v)?;
        let geo = regions.geo;
        let ctl = regions.control();
        if rebuilt {
            ctl.state.0.readers_epoch.fetch_add(1, Ordering::Relaxed);
        }
        ctl.state.0.writer_epoch.fetch_add(1, Ordering::Relaxed);
        ctl.state
            .0
            .writer_pid
            .store(std::process::id(), Ordering::Relaxed);
        ctl.state.0.writer_start.store(
            os::process_start_time(std::process::id()),
            Ordering::Relaxed,
        );
        regions
            .table_control()
            .writer_bell
            .0
            .writer_waiting
            .store(0, Ordering::Relaxed);
        let w = ctl.write_seq.0.load(Ordering::Acquire);
        let mut desc_buf = vec![NONE; geo.slots as usize];
        let mut in_ring = vec![false; geo.buffers as usize];
        let lo = w.saturating_sub(geo.slots as u64 - 1).max(1);
        for s in lo..=w {
            let d = regions.desc(s);
            let b = d.buf_idx.load(Ordering::Relaxed);
            if d.seq.load(Ordering::Acquire) == s && b < geo.buffers && !in_ring[b as usize] {
                in_ring[b as usize] = true;
                desc_buf[(s % geo.slots as u64) as usize] = b;
            }
        }
        let mut free = VecDeque::new();
        for b in 0..geo.buffers {
            let g = regions.gen(b).load(Ordering::Relaxed);
            if g % 2 == 1 {
                // A writer died while filling it; no descriptor references it.
                regions.gen(b).store(g + 1, Ordering::Relaxed);
            }
            if !in_ring[b as usize] {
                free.push_back(b);
            }
        }
        let on_full = match regions.header.on_full {
            1 => OnFull::Block(Duration::from_nanos(regions.header.block_timeout_ns)),
            _ => OnFull::OverwriteOldest,
        };
        // SYNC POINT: ready (takeover). Pairs with readers' Acquire of state.
        ctl.state.0.state.store(state::READY, Ordering::Release);
        let mut me = Self {
            bad: vec![None; geo.max_readers as usize],
            table_rebuilds: 0,
            regions,
            path,
            name: name.to_string(),
            next_seq: w + 1,
            desc_buf,
            free,
            on_full,
            last_sweep: None,
            closed: false,
            fork_gen: crate::sync::fork_generation(),
        };
        me.sweep_dead_readers(true);
        Ok(me)
    }

    /// Arena name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the arena file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The meta payload stored at creation.
    pub fn meta(&self) -> Vec<u8> {
        self.regions.meta_bytes().unwrap_or_default()
    }

    /// Largest payload one slot holds.
    pub fn slot_bytes(&self) -> u64 {
        self.regions.geo.buffer_bytes
    }

    /// Geometry of the arena.
    pub fn geometry(&self) -> Geometry {
        self.regions.geo
    }

    /// The seq the next commit will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Payload bytes published to this arena over its life (every writer's).
    pub fn bytes_published(&self) -> u64 {
        self.regions
            .control()
            .writer_stats
            .0
            .bytes_published
            .load(Ordering::Relaxed)
    }

    /// Claims a buffer for a payload of `len` bytes. In `Block` mode this
    /// waits for the slowest reader; in `OverwriteOldest` mode it never waits.
    pub fn claim(&mut self, len: u64) -> Result<Claim<'_>, ClaimError> {
        if self.closed {
            return Err(ClaimError::Closed);
        }
        if self.fork_gen != crate::sync::fork_generation() {
            return Err(ClaimError::Forked);
        }
        let geo = self.regions.geo;
        if len > geo.buffer_bytes {
            return Err(ClaimError::TooLarge {
                size: len,
                slot_bytes: geo.buffer_bytes,
            });
        }
        if self.regions.table_lost() {
            self.rebuild_table()?;
        }
        let seq = self.next_seq;
        let slot = (seq % geo.slots as u64) as usize;
        let start = Instant::now();
        // Dead readers' pins and cursors must not linger (rate-limited: one
        // lock probe per attached row every SWEEP_EVERY).
        self.sweep_dead_readers(false);
        if let OnFull::Block(timeout) = self.on_full {
            if seq > geo.slots as u64 {
                let evicted = seq - geo.slots as u64;
                self.wait_until(start, timeout, |w| {
                    w.slowest_reader_at_or_below(evicted).is_none()
                })
                .map_err(|()| {
                    let (pid, cursor) = self.slowest_reader_at_or_below(evicted).unwrap_or((0, 0));
                    ClaimError::Timeout {
                        waited: start.elapsed(),
                        pid,
                        cursor,
                        needed: evicted,
                    }
                })?;
            }
        }
        let mut found = self.pick(slot);
        if found.is_none() {
            match self.on_full {
                OnFull::OverwriteOldest => {
                    self.sweep_dead_readers(true);
                    found = self.pick(slot);
                }
                OnFull::Block(timeout) => {
                    let mut got = None;
                    let _ = self.wait_until(start, timeout, |w| {
                        got = w.pick(slot);
                        got.is_some()
                    });
                    found = got;
                }
            }
        }
        let (buf, gen) = found.ok_or(ClaimError::AllLeased {
            buffers: geo.buffers,
        })?;
        Ok(Claim {
            w: self,
            buf,
            gen,
            seq,
            done: false,
        })
    }

    /// Copies `payload` into a slot and publishes it. Returns its seq.
    pub fn publish(&mut self, payload: &[u8], rows: u64, user: u64) -> Result<u64, ClaimError> {
        let mut c = self.claim(payload.len() as u64)?;
        c.buf()[..payload.len()].copy_from_slice(payload);
        Ok(c.commit(payload.len() as u64, rows, user))
    }

    /// The reader table was truncated by some process (the SIGBUS guard
    /// replaced it by zero pages): give it back its length, every row FREE,
    /// and tell the readers attached to it that they are detached.
    fn rebuild_table(&mut self) -> Result<(), ClaimError> {
        self.regions
            .rebuild_table()
            .map_err(|source| ClaimError::TableLost {
                path: os::table_path(&self.name),
                source,
            })?;
        self.table_rebuilds += 1;
        self.bad.iter_mut().for_each(|b| *b = None);
        // Readers load it on every read; Relaxed is enough: a reader that
        // misses the bump for a while only writes into a row nobody reads.
        self.regions
            .control()
            .state
            .0
            .readers_epoch
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Times the reader table was found truncated and rebuilt.
    pub fn table_rebuilds(&self) -> u64 {
        self.table_rebuilds
    }

    /// Rows the last sweep found breaking an invariant (their pins are ignored).
    pub fn bad_rows(&self) -> u32 {
        self.bad.iter().filter(|b| b.is_some()).count() as u32
    }

    /// Whether row `i`'s pins must not count: the row is not attached (a FREE
    /// or unknown state never holds legitimate pins), or the last sweep found
    /// it broken and it has not been claimed anew since.
    fn ignored(&self, i: u32) -> bool {
        let row = self.regions.row(i);
        // SYNC POINT: row-active. Pairs with the reader's Release store of
        // ACTIVE; the pin we just loaded was stored (Release) after it.
        let st = row.state.load(Ordering::Acquire);
        if st != row_state::ACTIVE && st != row_state::DRAINING {
            return true;
        }
        self.bad[i as usize].is_some_and(|g| g == row.gen.load(Ordering::Relaxed))
    }

    fn any_pin(&self, buf: u32) -> bool {
        (0..self.regions.geo.max_readers).any(|i| {
            // SYNC POINT: unpin. Acquire pairs with the Release decrement in
            // `Lease::drop`, so the reader's reads of the buffer happen-before
            // our rewrite of it; and with the reader's Release increment, so
            // we see the row state it stored before pinning.
            self.regions.pins(i)[buf as usize].load(Ordering::Acquire) != 0 && !self.ignored(i)
        })
    }

    /// Finds a buffer no reader pins and marks it as being written (odd gen).
    fn pick(&mut self, slot: usize) -> Option<(u32, u64)> {
        let retiring = self.desc_buf[slot];
        let n = self.free.len();
        let candidates = (0..n).map(Some).chain(std::iter::once(None));
        for c in candidates {
            let b = match c {
                Some(i) => self.free[i],
                None if retiring != NONE => retiring,
                None => continue,
            };
            if self.any_pin(b) {
                continue;
            }
            let gen_cell = self.regions.gen(b);
            let g = gen_cell.load(Ordering::Relaxed);
            debug_assert!(g.is_multiple_of(2));
            gen_cell.store(g + 1, Ordering::Relaxed);
            // SYNC POINT: recycle. Pairs with the reader's fence after it bumps
            // its pin: either we see its pin now, or it sees the odd gen (and a
            // changed descriptor) and backs off.
            fence(Ordering::SeqCst);
            if self.any_pin(b) {
                gen_cell.store(g, Ordering::Relaxed);
                continue;
            }
            if let Some(i) = c {
                self.free.remove(i);
            } else {
                self.desc_buf[slot] = NONE;
            }
            return Some((b, g + 1));
        }
        None
    }

    /// (pid, cursor) of an ACTIVE reader whose cursor is `<= seq`.
    fn slowest_reader_at_or_below(&self, seq: u64) -> Option<(u32, u64)> {
        let mut worst: Option<(u32, u64)> = None;
        for i in 0..self.regions.geo.max_readers {
            let row = self.regions.row(i);
            // SYNC POINT: row-active. Pairs with the reader's Release store of ACTIVE.
            if row.state.load(Ordering::Acquire) != row_state::ACTIVE
                || self.bad[i as usize].is_some_and(|g| g == row.gen.load(Ordering::Relaxed))
            {
                continue;
            }
            // SYNC POINT: consumed. Pairs with the reader's Release store of its
            // cursor: its reads of the old descriptor happen-before our rewrite.
            let c = row.cursor.load(Ordering::Acquire);
            // A cursor past everything published is not a reader's: ignore it.
            if c <= seq && c <= self.next_seq && worst.is_none_or(|(_, wc)| c < wc) {
                worst = Some((row.pid.load(Ordering::Relaxed), c));
            }
        }
        worst
    }

    /// Sleeps on the writer doorbell until `ready` holds or the timeout passes.
    fn wait_until(
        &mut self,
        start: Instant,
        timeout: Duration,
        mut ready: impl FnMut(&mut Self) -> bool,
    ) -> Result<(), ()> {
        let result = loop {
            if ready(self) {
                break Ok(());
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                break Err(());
            }
            let bell = &self.regions.table_control().writer_bell.0;
            bell.writer_waiting.store(1, Ordering::Relaxed);
            // SYNC POINT: writer-bell. Pairs with the fence readers run after
            // moving their cursor or dropping a pin: either they see
            // writer_waiting and ring, or we see their progress in `ready`.
            fence(Ordering::SeqCst);
            let v = bell.bell.load(Ordering::Relaxed);
            if ready(self) {
                break Ok(());
            }
            self.sweep_dead_readers(false);
            let bell = &self.regions.table_control().writer_bell.0;
            futex_wait(&bell.bell, v, (timeout - elapsed).min(WAIT_SLICE));
        };
        self.regions
            .table_control()
            .writer_bell
            .0
            .writer_waiting
            .store(0, Ordering::Relaxed);
        result
    }

    /// Frees the rows (and pins) of readers whose process died (their OFD
    /// lock is gone, so we can take it), and re-validates every row: a row
    /// that breaks an invariant is recorded as bad and its pins are ignored
    /// until it is claimed anew. Rate-limited unless `force`. Returns the
    /// rows freed.
    pub fn sweep_dead_readers(&mut self, force: bool) -> u32 {
        if !force && self.last_sweep.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return 0;
        }
        self.last_sweep = Some(Instant::now());
        let write_seq = self.next_seq - 1;
        let p = self.regions.geo.leases_per_reader;
        let mut freed = 0;
        for i in 0..self.regions.geo.max_readers {
            let row = self.regions.row(i);
            // SYNC POINT: row-claim. Pairs with the Release bump of `gen` by a
            // reader claiming the row after zeroing its pins: if we see the new
            // gen we see the zeroed pins, and a verdict taken on older contents
            // carries an older gen, which never matches the new owner's.
            let gen = row.gen.load(Ordering::Acquire);
            // SYNC POINT: row-active. Pairs with the reader's Release store of ACTIVE.
            let st = row.state.load(Ordering::Acquire);
            let problem = table::row_problem(&self.regions.row_view(i), p, write_seq);
            if st == row_state::FREE && problem.is_none() {
                self.bad[i as usize] = None;
                continue;
            }
            let byte = READER_LOCK_BASE + i as u64;
            if !matches!(os::try_lock_byte(&self.regions.table_file, byte), Ok(true)) {
                // Its owner is alive (or a reader is claiming the row right
                // now): trust the row only if it is well-formed.
                self.bad[i as usize] = problem.map(|_| gen);
                continue;
            }
            // The owner is dead: nobody else can touch this row while we hold its lock.
            for pin in self.regions.pins(i) {
                pin.store(0, Ordering::Release);
            }
            row.leases.store(0, Ordering::Relaxed);
            if row.sleeping.swap(0, Ordering::Relaxed) != 0 {
                // It died asleep: take back its count so publishes stop waking nobody.
                let waiters = &self.regions.table_control().waiters.0;
                let _ = waiters
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
            }
            row.state.store(row_state::FREE, Ordering::Release);
            let _ = os::unlock_byte(&self.regions.table_file, byte);
            self.bad[i as usize] = None;
            if st != row_state::FREE {
                freed += 1;
            }
        }
        freed
    }

    /// Readers currently attached (ACTIVE or DRAINING rows).
    pub fn readers(&self) -> Vec<ReaderInfo> {
        table::read_rows(&self.regions)
    }

    /// Waits until at least `n` readers are ACTIVE.
    pub fn wait_for_readers(&mut self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.sweep_dead_readers(true);
            let active = self
                .readers()
                .iter()
                .filter(|r| r.state == row_state::ACTIVE && r.problem.is_none())
                .count();
            if active >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Marks the ring CLOSED, wakes every reader and removes the name (only
    /// if it still names this arena). Readers drain what is left.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        if self.closed || self.fork_gen != crate::sync::fork_generation() {
            // Closed already, or inherited across fork(): the parent closes it.
            return;
        }
        self.closed = true;
        let ctl = self.regions.control();
        // SYNC POINT: closed. Pairs with the reader's Acquire load of state;
        // write_seq was stored before, so a reader seeing CLOSED sees every batch.
        ctl.state.0.state.store(state::CLOSED, Ordering::Release);
        ctl.notify.0.fetch_add(1, Ordering::Release);
        futex_wake(&ctl.notify.0, i32::MAX);
        let same =
            |p: &std::path::Path, f: &std::fs::File| match (std::fs::metadata(p), f.metadata()) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
        if same(&self.path, &self.regions.file) {
            let _ = std::fs::remove_file(&self.path);
        }
        let tpath = os::table_path(&self.name);
        if same(&tpath, &self.regions.table_file) {
            let _ = std::fs::remove_file(&tpath);
        }
    }

    #[doc(hidden)]
    /// Test hook: forget this writer without closing, as if its process died
    /// (the lock is released when the returned file is dropped).
    pub fn simulate_death(mut self) {
        self.closed = true;
    }

    fn publish_desc(&mut self, buf: u32, gen: u64, seq: u64, len: u64, rows: u64, user: u64) {
        let r = &self.regions;
        r.gen(buf).store(gen, Ordering::Relaxed);
        let d = r.desc(seq);
        d.seq.store(SEQ_BUSY, Ordering::Relaxed);
        // SYNC POINT: desc-seqlock-begin. Pairs with the reader's Acquire
        // fence before its second load of `seq`.
        fence(Ordering::Release);
        d.buf_idx.store(buf, Ordering::Relaxed);
        d.buf_gen.store(gen, Ordering::Relaxed);
        d.len.store(len, Ordering::Relaxed);
        d.rows.store(rows, Ordering::Relaxed);
        d.ts_ns.store(os::realtime_ns(), Ordering::Relaxed);
        d.user.store(user, Ordering::Relaxed);
        // SYNC POINT: desc-seqlock-end. Pairs with the reader's Acquire load
        // of `seq`: the fields and the buffer bytes are visible after it.
        d.seq.store(seq, Ordering::Release);
        let slot = (seq % r.geo.slots as u64) as usize;
        let old = std::mem::replace(&mut self.desc_buf[slot], buf);
        if old != NONE && old != buf {
            self.free.push_back(old);
        }
        let ctl = self.regions.control();
        // Statistics: only the writer (lock holder) stores it, so load + store
        // (no locked RMW). Before the publish store, so that whoever
        // acquire-loads write_seq = seq counts this batch's bytes too.
        let bytes = &ctl.writer_stats.0.bytes_published;
        bytes.store(
            bytes.load(Ordering::Relaxed).wrapping_add(len),
            Ordering::Relaxed,
        );
        // SYNC POINT: publish. Pairs with the reader's Acquire load of write_seq.
        ctl.write_seq.0.store(seq, Ordering::Release);
        // SYNC POINT: wake. Pairs with the reader's fence after `waiters += 1`:
        // either we see its increment, or it sees the new write_seq.
        fence(Ordering::SeqCst);
        // A reader may scribble `waiters`: a wrong count costs at most a
        // needless wake, or a sleeper waking on its 100 ms liveness slice.
        if self
            .regions
            .table_control()
            .waiters
            .0
            .load(Ordering::Relaxed)
            > 0
        {
            ctl.notify.0.fetch_add(1, Ordering::Release);
            futex_wake(&ctl.notify.0, i32::MAX);
        }
        ctl.writer_stats
            .0
            .heartbeat_ns
            .store(os::monotonic_ns(), Ordering::Relaxed);
        self.next_seq = seq + 1;
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        self.close_inner();
    }
}

impl Claim<'_> {
    /// The whole buffer, `slot_bytes` long, 4 KiB-aligned.
    pub fn buf(&mut self) -> &mut [u8] {
        let r = &self.w.regions;
        // SAFETY: the buffer is inside the writer's read-write mapping; its gen
        // is odd and no reader holds a pin (checked after the SeqCst fence in
        // `pick`), so no reader reads it until it is published again, and
        // `&mut self` makes this the only slice into it in this process.
        unsafe {
            std::slice::from_raw_parts_mut(r.buffer_ptr(self.buf), r.geo.buffer_bytes as usize)
        }
    }

    /// The seq this batch will get.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Publishes the first `len` bytes of the buffer. Returns the seq.
    pub fn commit(mut self, len: u64, rows: u64, user: u64) -> u64 {
        assert!(
            len <= self.w.regions.geo.buffer_bytes,
            "commit longer than the slot"
        );
        self.done = true;
        self.w
            .publish_desc(self.buf, self.gen + 1, self.seq, len, rows, user);
        self.seq
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned: nothing references it; make it even again and reuse it first.
            self.w
                .regions
                .gen(self.buf)
                .store(self.gen + 1, Ordering::Relaxed);
            self.w.free.push_front(self.buf);
        }
    }
}

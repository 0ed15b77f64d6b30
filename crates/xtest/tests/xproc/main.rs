//! Multi-process tests of ringfeed: real `rf-xtest` writer and reader
//! processes (and readers or writers in this test process) on one arena.
//!
//! Every test runs under a watchdog and removes its arena at the end. Times
//! are never asserted; deadlines only turn hangs into failures.

mod common;

mod block_join;
mod claim_takeover;
mod cli;
mod dead_reader_accounting;
mod fanout;
mod held_batch;
mod leftover;
mod race;
mod reader_death;
mod writer_death;
mod zero_copy;

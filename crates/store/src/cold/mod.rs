//! The cold tier: closed days as Parquet in a Hive layout.

pub mod parquet;

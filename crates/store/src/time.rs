//! The store's day grammar: UTC day numbers and their `YYYY-MM-DD` names, as WAL files,
//! Hive partitions and CLI arguments spell them.

/// Format a UTC day number as `YYYY-MM-DD`.
pub fn day_string(day: i64) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(day);
    d.format("%Y-%m-%d").to_string()
}

/// Parse `YYYY-MM-DD` into a UTC day number.
pub fn parse_day(s: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some((d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days())
}

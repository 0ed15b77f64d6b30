//! What a file says about itself before it is parsed: the headerless 12-column
//! Binance kline layout of its first line, and the symbol and interval in a
//! Binance file name (`ADABTC-1m-2021-11-27.csv`).

use crate::field::{num, trim};
use ringfeed_store::Timeframe;
use std::path::Path;

/// What a Binance file name says: `SYMBOL-INTERVAL-YYYY-MM-DD.csv` (a daily file)
/// or `SYMBOL-INTERVAL-YYYY-MM.csv` (a monthly one), or the `.zip` of either, as
/// data.binance.vision ships them.
///
/// ```
/// use ringfeed_ingest::BinanceName;
/// let n = BinanceName::parse("dl/ADABTC-1m-2021-11-27.csv".as_ref()).unwrap();
/// assert_eq!((n.symbol.as_str(), n.interval.as_str()), ("ADABTC", "1m"));
/// assert_eq!(n.timeframe, Some("1m".parse().unwrap()));
/// assert!(BinanceName::parse("bars.csv".as_ref()).is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinanceName {
    /// The symbol, e.g. `ADABTC`.
    pub symbol: String,
    /// The interval as written, e.g. `1m` or `1mo`.
    pub interval: String,
    /// The interval as a timeframe; `None` for `1mo` (months are not a fixed duration).
    pub timeframe: Option<Timeframe>,
    /// The period the file covers: `2021-11-27` or `2021-11`.
    pub period: String,
}

impl BinanceName {
    /// Parse the file name of `path`; `None` when it is not Binance's pattern.
    pub fn parse(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let stem = [".csv", ".CSV", ".zip", ".ZIP"]
            .iter()
            .find_map(|ext| name.strip_suffix(ext))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (symbol, interval, date) = match parts.as_slice() {
            [s, i, date @ ..] if (2..=3).contains(&date.len()) => (*s, *i, date),
            _ => return None,
        };
        let num = |s: &str, len: usize| s.len() == len && s.bytes().all(|c| c.is_ascii_digit());
        let month_ok = num(date[1], 2) && (1..=12).contains(&date[1].parse::<u32>().ok()?);
        let day_ok = date
            .get(2)
            .is_none_or(|d| num(d, 2) && d.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d)));
        if symbol.is_empty()
            || !symbol.bytes().all(|c| c.is_ascii_alphanumeric())
            || !num(date[0], 4)
            || !month_ok
            || !day_ok
        {
            return None;
        }
        let digits = interval.bytes().take_while(u8::is_ascii_digit).count();
        let unit = &interval[digits..];
        if digits == 0 || !["s", "m", "h", "d", "w", "mo"].contains(&unit) {
            return None;
        }
        Some(BinanceName {
            symbol: symbol.to_string(),
            interval: interval.to_string(),
            timeframe: if unit == "mo" {
                None
            } else {
                interval.parse().ok()
            },
            period: date.join("-"),
        })
    }
}

/// Whether `line`, the first line of a headerless CSV, has Binance's kline layout:
/// 12 comma-separated fields (open_time, open, high, low, close, volume, close_time,
/// quote_volume, trades, taker_buy_base, taker_buy_quote, ignore), integer open and
/// close times in ms or µs with the close after the open, an integer trade count and
/// numbers elsewhere. Returns the bar interval in ns (close - open + 1 time unit).
///
/// ```
/// use ringfeed_ingest::sniff_binance_kline;
/// let line = b"1637971200000,0.00002853,0.00002854,0.00002851,0.00002854,36304.2,\
///              1637971259999,1.03547608,79,19523.0,0.55694227,0";
/// assert_eq!(sniff_binance_kline(line), Some(60_000_000_000));
/// assert_eq!(sniff_binance_kline(b"1637971200000,1,2,0.5,1.5,10"), None);
/// ```
pub fn sniff_binance_kline(line: &[u8]) -> Option<i64> {
    let f: Vec<&[u8]> = line.split(|c| *c == b',').map(trim).collect();
    if f.len() != 12 {
        return None;
    }
    let int = |b: &[u8]| -> Option<i64> {
        if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        lexical_core::parse::<i64>(b).ok()
    };
    let (open, close) = (int(f[0])?, int(f[6])?);
    // ms from 1973 to 5138, µs from then on (Binance spot since 2025).
    let unit_ns = match open {
        100_000_000_000..=99_999_999_999_999 => 1_000_000,
        100_000_000_000_000..=99_999_999_999_999_999 => 1_000,
        _ => return None,
    };
    int(f[8])?;
    for k in [1, 2, 3, 4, 5, 7, 9, 10] {
        num(f[k], "").ok().filter(|x| x.is_finite())?;
    }
    (close > open).then(|| (close - open + 1).saturating_mul(unit_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_names_parse_and_others_do_not() {
        let n = BinanceName::parse(Path::new("BTCUSDT-15m-2024-03.csv")).unwrap();
        assert_eq!(n.symbol, "BTCUSDT");
        assert_eq!(n.timeframe, Some("15m".parse().unwrap()));
        assert_eq!(n.period, "2024-03");
        let n = BinanceName::parse(Path::new("dl/ADABTC-1m-2021-11-27.zip")).unwrap();
        assert_eq!(
            (n.symbol.as_str(), n.period.as_str()),
            ("ADABTC", "2021-11-27")
        );
        let n = BinanceName::parse(Path::new("ETHBTC-1mo-2024-03.csv")).unwrap();
        assert_eq!((n.interval.as_str(), n.timeframe), ("1mo", None));
        for other in [
            "bars.csv",
            "UNITTEST_BTC-1m.feather",
            "XRP_ETH-1m-2021-11-27.csv",
            "ADABTC-1m-2021-13-27.csv",
            "ADABTC-1m-2021-11-27.parquet",
            "ADABTC-1m-2021-11-27.csv.gz",
            "ADABTC-1x-2021-11-27.csv",
            "ADABTC-m-2021-11-27.csv",
            "btc-perp-20211231-20220201_1m.csv",
        ] {
            assert_eq!(BinanceName::parse(Path::new(other)), None, "{other}");
        }
    }

    #[test]
    fn kline_lines_are_told_from_other_csv() {
        let ms = b"1637971200000,1,2,0.5,1.5,10,1637971259999,15,3,4,6,0";
        assert_eq!(sniff_binance_kline(ms), Some(60_000_000_000));
        let us = b"1735689600000000,1,2,0.5,1.5,10,1735693199999999,15,3,4,6,0";
        assert_eq!(sniff_binance_kline(us), Some(3_600_000_000_000));
        // Seconds, a close before the open, a fractional trade count, 11 fields.
        for other in [
            &b"1637971200,1,2,0.5,1.5,10,1637971259,15,3,4,6,0"[..],
            b"1637971200000,1,2,0.5,1.5,10,1637971100000,15,3,4,6,0",
            b"1637971200000,1,2,0.5,1.5,10,1637971259999,15,3.5,4,6,0",
            b"1637971200000,1,2,0.5,1.5,10,1637971259999,15,3,4,6",
            b"1637971200000,a,2,0.5,1.5,10,1637971259999,15,3,4,6,0",
        ] {
            assert_eq!(sniff_binance_kline(other), None);
        }
    }
}

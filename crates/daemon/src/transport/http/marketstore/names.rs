//! MarketStore's names as ringfeed's: time bucket keys (`SYM1,SYM2/1Min/OHLCV`),
//! timeframes (`1Min` ↔ `1m`), attribute groups (`OHLCV` ↔ `[http] ohlcv_dataset`) and
//! column names (`QuoteVolume` ↔ `quote_volume`).

/// The attribute group that names `[http] ohlcv_dataset`.
pub const OHLCV: &str = "OHLCV";

/// The category suffix MarketStore puts on the keys of a query's `startindex`.
pub const CATEGORIES: &str = "Symbol/Timeframe/AttributeGroup";

/// A time bucket key, `SYMBOLS/TIMEFRAME/ATTRIBUTEGROUP`, its `:categories` suffix dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tbk {
    /// The symbols (`*`: every symbol), from a comma-separated list.
    pub symbols: Vec<String>,
    /// The timeframe as MarketStore spells it (`1Min`).
    pub timeframe: String,
    /// The attribute group (`OHLCV`, or a dataset name).
    pub group: String,
}

impl Tbk {
    /// Parses `SYM1,SYM2/1Min/OHLCV` (optionally followed by `:Symbol/Timeframe/...`).
    pub fn parse(key: &str) -> Result<Self, String> {
        let item = key.split(':').next().unwrap_or_default();
        let parts: Vec<&str> = item.split('/').collect();
        let [symbols, timeframe, group] = parts[..] else {
            return Err(format!(
                "key {key:?} is not in proper format, should be like: TSLA/1Min/OHLCV"
            ));
        };
        let symbols: Vec<String> = symbols
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if symbols.is_empty() || timeframe.is_empty() || group.is_empty() {
            return Err(format!(
                "destinations must have a Symbol, Timeframe and AttributeGroup, have: {key:?}"
            ));
        }
        Ok(Self {
            symbols,
            timeframe: timeframe.to_string(),
            group: group.to_string(),
        })
    }

    /// `*` alone: every symbol.
    pub fn all_symbols(&self) -> bool {
        self.symbols.iter().all(|s| s == "*")
    }
}

/// The key of one symbol's rows in a reply: `SYM/1Min/OHLCV:Symbol/Timeframe/AttributeGroup`.
pub fn reply_key(symbol: &str, timeframe: &str, group: &str) -> String {
    format!("{symbol}/{timeframe}/{group}:{CATEGORIES}")
}

/// The dataset an attribute group names: `OHLCV` is `[http] ohlcv_dataset`; any other
/// group is a dataset name.
pub fn dataset_of(group: &str, ohlcv: Option<&str>) -> Result<String, String> {
    if group == OHLCV {
        return ohlcv.map(str::to_string).ok_or_else(|| {
            "the attribute group OHLCV names no dataset on this daemon: set [http] ohlcv_dataset in its config, or use the dataset's name as the attribute group".to_string()
        });
    }
    Ok(group.to_string())
}

/// The attribute group a dataset is shown under: `OHLCV` for `[http] ohlcv_dataset`.
pub fn group_of(dataset: &str, ohlcv: Option<&str>) -> String {
    if ohlcv == Some(dataset) {
        OHLCV.to_string()
    } else {
        dataset.to_string()
    }
}

/// A MarketStore timeframe (`1Sec`, `5Min`, `1H`, `1D`, `1W`, `1M`, `1Y`; also `S`,
/// `T` and `Tick`) as ringfeed's (`1s`, `5m`, `1h`, `1d`, `1w`, `1M`, `1Y`, `tick`).
pub fn timeframe_to_rf(tf: &str) -> Result<String, String> {
    if tf == "Tick" {
        return Ok("tick".into());
    }
    let split = tf.find(|c: char| !c.is_ascii_digit()).unwrap_or(tf.len());
    let (n, unit) = tf.split_at(split);
    let unit = match unit {
        "Sec" | "S" => "s",
        "Min" | "T" => "m",
        "H" => "h",
        "D" => "d",
        "W" => "w",
        "M" => "M",
        "Y" => "Y",
        _ => "",
    };
    match n.parse::<u32>() {
        Ok(n) if n > 0 && !unit.is_empty() => Ok(format!("{n}{unit}")),
        _ => Err(format!(
            "timeframe {tf:?} is not a MarketStore timeframe: write a count and Sec, Min, H, D, W, M or Y (1Sec, 5Min, 1H, 1D, 1W, 1M, 1Y)"
        )),
    }
}

/// A ringfeed timeframe as MarketStore spells it (`1m` → `1Min`, `tick` → `Tick`).
pub fn timeframe_to_ms(tf: &str) -> String {
    if tf == "tick" {
        return "Tick".into();
    }
    let split = tf.find(|c: char| !c.is_ascii_digit()).unwrap_or(tf.len());
    let (n, unit) = tf.split_at(split);
    let unit = match unit {
        "s" => "Sec",
        "m" => "Min",
        "h" => "H",
        "d" => "D",
        "w" => "W",
        other => other,
    };
    format!("{n}{unit}")
}

/// A ringfeed column as MarketStore names it: `quote_volume` → `QuoteVolume`.
pub fn column_to_ms(field: &str) -> String {
    field
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// A MarketStore column as ringfeed names it: `QuoteVolume` → `quote_volume`, `open` → `open`.
pub fn column_to_rf(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_timeframes_and_columns_map_both_ways() {
        let t = Tbk::parse("AAPL,MSFT/1Min/OHLCV:Symbol/Timeframe/AttributeGroup").unwrap();
        assert_eq!(t.symbols, ["AAPL", "MSFT"]);
        assert_eq!((t.timeframe.as_str(), t.group.as_str()), ("1Min", "OHLCV"));
        assert!(Tbk::parse("AAPL/1Min").is_err());
        assert!(Tbk::parse("/1Min/OHLCV").is_err());
        assert!(Tbk::parse("*/1Min/OHLCV").unwrap().all_symbols());
        for (ms, rf) in [
            ("1Sec", "1s"),
            ("1Min", "1m"),
            ("5Min", "5m"),
            ("15Min", "15m"),
            ("1H", "1h"),
            ("4H", "4h"),
            ("1D", "1d"),
            ("1W", "1w"),
            ("1M", "1M"),
            ("1Y", "1Y"),
            ("Tick", "tick"),
        ] {
            assert_eq!(timeframe_to_rf(ms).unwrap(), rf);
            assert_eq!(timeframe_to_ms(rf), ms);
        }
        assert_eq!(timeframe_to_rf("1T").unwrap(), "1m");
        for bad in ["", "Min", "0Min", "1Hour", "-1D", "99999999999Min"] {
            assert!(timeframe_to_rf(bad).is_err(), "{bad}");
        }
        for (rf, ms) in [
            ("open", "Open"),
            ("quote_volume", "QuoteVolume"),
            ("taker_buy_base", "TakerBuyBase"),
        ] {
            assert_eq!(column_to_ms(rf), ms);
            assert_eq!(column_to_rf(ms), rf);
        }
        assert_eq!(column_to_rf("close"), "close");
        assert_eq!(dataset_of("OHLCV", Some("spot")).unwrap(), "spot");
        assert!(dataset_of("OHLCV", None).is_err());
        assert_eq!(group_of("spot", Some("spot")), "OHLCV");
        assert_eq!(group_of("fut", Some("spot")), "fut");
    }
}

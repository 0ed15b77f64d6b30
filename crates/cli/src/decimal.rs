//! Floats as people write them: `0.1 + 0.2` prints `0.3`, not `0.30000000000000004`.
//!
//! Shortest round-trip formatting (Rust's `{}`, ryu) is exact about the bits, so it
//! shows the noise that sums and averages add (`0.30000000000000004` *is* the shortest
//! string for that value). Fifteen significant digits is what an f64 holds for any
//! decimal: every decimal of up to 15 digits parses to an f64 that prints back as
//! that decimal, so prices and volumes read from files print as they were written,
//! and computed values lose only the noise. The text outputs of `query` use this;
//! `--format arrow` and `parquet` keep the exact bits.

/// Significant digits every f64 holds (`f64::DIGITS`).
const DIGITS: usize = f64::DIGITS as usize;

/// `x` with at most 15 significant digits, trailing zeros trimmed; positional from
/// 1e-10 to below 1e15, else scientific (`1.5e-12`, `2.5e20`).
///
/// ```ignore
/// assert_eq!(decimal(0.1 + 0.2), "0.3");
/// assert_eq!(decimal(0.00002853), "0.00002853");
/// ```
pub fn decimal(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // d.dddddddddddddde±X, rounded once, correctly, by the standard library.
    let sci = format!("{:.*e}", DIGITS - 1, x);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let sign = if x < 0.0 { "-" } else { "" };
    let all: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = all.trim_end_matches('0');
    if !(-10..15).contains(&exp) {
        let (head, tail) = digits.split_at(1);
        let dot = if tail.is_empty() { "" } else { "." };
        return format!("{sign}{head}{dot}{tail}e{exp}");
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int = exp as usize + 1;
    if digits.len() <= int {
        format!("{sign}{digits}{}", "0".repeat(int - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int], &digits[int..])
    }
}

/// `x` rounded to the value [`decimal`] prints (for JSON numbers).
pub fn rounded(x: f64) -> f64 {
    decimal(x).parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_goes_and_written_decimals_stay() {
        assert_eq!(decimal(0.1 + 0.2), "0.3");
        assert_eq!(decimal(1.1 * 3.0), "3.3");
        assert_eq!(decimal(0.1 + 0.7), "0.8");
        for (x, want) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (100.0, "100"),
            (36304.2, "36304.2"),
            (19997.95, "19997.95"),
            (0.00002853, "0.00002853"),
            (1e-10, "0.0000000001"),
            (2.5e-11, "2.5e-11"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e15"),
            (1.2345678901234567e17, "1.23456789012346e17"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
            (0.9999999999999999, "1"),
        ] {
            assert_eq!(decimal(x), want, "{x:e}");
        }
    }

    /// Against the naive reference: any decimal of up to 15 significant digits prints
    /// back as written (canonical form), and every value stays within 15 digits of
    /// itself.
    #[test]
    fn every_short_decimal_prints_as_written() {
        let mut rnd = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rnd ^= rnd << 13;
            rnd ^= rnd >> 7;
            rnd ^= rnd << 17;
            rnd
        };
        for _ in 0..100_000 {
            let r = next();
            let sig = (r % 15 + 1) as u32;
            let m = (next() % 10u64.pow(sig)).max(1);
            let scale = (next() % 20) as i32 - 9; // 10^-9 .. 10^10
            let text = if scale >= 0 {
                format!("{m}{}", "0".repeat(scale as usize))
            } else {
                let s = format!("{m:0>width$}", width = (-scale) as usize + 1);
                let (i, f) = s.split_at(s.len() - (-scale) as usize);
                let f = f.trim_end_matches('0');
                if f.is_empty() {
                    i.to_string()
                } else {
                    format!("{i}.{f}")
                }
            };
            let x: f64 = text.parse().unwrap();
            if x.abs() >= 1e15 {
                continue;
            }
            assert_eq!(decimal(x), text, "{x:e}");
            let y: f64 = decimal(x * 1.000_000_000_000_3).parse().unwrap();
            assert!(((y - x * 1.000_000_000_000_3) / x).abs() < 1e-14, "{x:e}");
        }
    }
}

//! One field's text into a value: surrounding blanks and quotes trimmed, decimal
//! numbers (a correctly rounded fast path, `lexical-core` otherwise) and trade sides.

pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let mut s = b;
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() || *first == b'"' {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() || *last == b'"' {
            s = rest;
        } else {
            break;
        }
    }
    s
}

pub(crate) fn num(b: &[u8], what: &str) -> Result<f64, String> {
    let t = trim(b);
    if let Some(x) = fast_decimal(t) {
        return Ok(x);
    }
    lexical_core::parse::<f64>(t)
        .map_err(|_| format!("{what}: not a number: {:?}", String::from_utf8_lossy(t)))
}

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `[-]digits[.digits]` with a mantissa below 2^53 and at most 22 decimals, the common case
/// in market data, parsed as `mantissa / 10^decimals`: both are exact f64 values and IEEE
/// division rounds correctly, so this is the correctly rounded value, the same bits
/// `lexical_core::parse` returns (Clinger's fast path). `None` for anything else.
#[inline]
fn fast_decimal(t: &[u8]) -> Option<f64> {
    let (neg, d) = match t {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, t),
    };
    // At most 19 characters: at most 19 digits, so the mantissa cannot overflow a u64.
    if d.is_empty() || d.len() > 19 {
        return None;
    }
    let mut m: u64 = 0;
    let mut i = 0;
    while i < d.len() {
        let c = d[i].wrapping_sub(b'0');
        if c > 9 {
            break;
        }
        m = m * 10 + u64::from(c);
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut decimals = 0;
    if i < d.len() {
        if d[i] != b'.' {
            return None;
        }
        let s = i + 1;
        i = s;
        while i < d.len() {
            let c = d[i].wrapping_sub(b'0');
            if c > 9 {
                return None;
            }
            m = m * 10 + u64::from(c);
            i += 1;
        }
        decimals = i - s;
        if decimals == 0 {
            return None;
        }
    }
    if m > (1u64 << 53) {
        return None;
    }
    let x = m as f64 / POW10[decimals];
    Some(if neg { -x } else { x })
}

pub(crate) fn parse_side(b: &[u8]) -> Option<i8> {
    match trim(b).to_ascii_lowercase().as_slice() {
        b"buy" | b"b" | b"1" | b"bid" => Some(1),
        b"sell" | b"s" | b"-1" | b"ask" => Some(-1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_decimals_match_lexical_bit_for_bit() {
        let mut rnd = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rnd ^= rnd << 13;
            rnd ^= rnd >> 7;
            rnd ^= rnd << 17;
            rnd
        };
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "20000.00",
            "19997.95",
            "43.69863",
            "873972.6000",
            "0.1",
            "0.3",
            "9007199254740992",
            "9007199254740993",
            "900719925474099.3",
            "1234567890123456789",
            "12345678901234567890",
            "1.",
            ".5",
            "-",
            "",
            "1e5",
            "+1",
            "1.2.3",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "00012.50",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..200_000 {
            let r = next();
            let int = r % 10u64.pow((r >> 60) as u32 % 12 + 1);
            let dec = (r >> 8) % 10u64.pow((r >> 56) as u32 % 10);
            let width = ((r >> 52) % 10) as usize;
            let sign = if r & 1 == 1 { "-" } else { "" };
            cases.push(format!("{sign}{int}.{dec:0width$}"));
            cases.push(format!("{sign}{int}"));
        }
        for c in &cases {
            let want = lexical_core::parse::<f64>(c.as_bytes()).ok();
            if let Some(got) = fast_decimal(c.as_bytes()) {
                assert_eq!(Some(got.to_bits()), want.map(f64::to_bits), "{c}");
            }
            assert_eq!(
                num(c.as_bytes(), "x").ok().map(f64::to_bits),
                want.map(f64::to_bits),
                "{c}"
            );
        }
    }
}

//! Go-style durations ("2m0s", "1h30m", "500ms") as used in `service.json` and `--expire-in`.

use std::time::Duration;

/// A duration string that Go's `time.ParseDuration` would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration '{input}': {reason}")]
pub struct DurationParseError {
    /// The text that failed to parse.
    pub input: String,
    /// Why it failed.
    pub reason: &'static str,
}

/// Parses a Go duration string. Negative durations are rejected: no config key accepts them.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationParseError> {
    let err = |reason| DurationParseError { input: input.to_string(), reason };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty duration"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(err("negative durations are not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_nanos: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &s[start..i];
        let mut frac_part = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let fstart = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &s[fstart..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("expected a number"));
        }
        let ustart = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() && bytes[i] != b'.' {
            i += 1;
        }
        let unit_nanos: u128 = match &s[ustart..i] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        let int_val: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err("number out of range"))?
        };
        let mut nanos = int_val.checked_mul(unit_nanos).ok_or_else(|| err("overflow"))?;
        if !frac_part.is_empty() {
            let digits = frac_part.len().min(18) as u32;
            let frac: u128 = frac_part[..digits as usize].parse().map_err(|_| err("bad fraction"))?;
            nanos += frac * unit_nanos / 10u128.pow(digits);
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(|| err("overflow"))?;
    }
    if total_nanos > u64::MAX as u128 {
        return Err(err("overflow"));
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

/// Formats a duration the way Go's `Duration.String` does ("2m0s", "1h0m0s", "500ms", "0s").
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        // Sub-second values use the largest unit that keeps an integer part.
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1u128)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{}", trim_fraction(nanos, div), unit);
    }
    let total_secs = nanos / 1_000_000_000;
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let sec_nanos = nanos - (h * 3600 + m * 60) * 1_000_000_000;
    let secs = trim_fraction(sec_nanos, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

fn trim_fraction(value: u128, div: u128) -> String {
    let int = value / div;
    let frac = value % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = (div as f64).log10().round() as usize;
    let frac_str = format!("{frac:0width$}");
    format!("{int}.{}", frac_str.trim_end_matches('0'))
}

/// Serde adapter for `Duration` fields written as Go duration strings.
pub mod serde_go {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as a Go duration string.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_go_duration(*d))
    }

    /// Deserializes from a Go duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_go_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(120), "2m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(200), "200ms"),
            (Duration::from_secs(24 * 3600), "24h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(12 * 60), "12m0s"),
            (Duration::from_micros(1), "1µs"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn parses_like_go() {
        assert_eq!(parse_go_duration("2m0s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("300ms").unwrap(), Duration::from_millis(300));
        for bad in ["", "5", "5x", "-1s", "abc", "1h-2m", "."] {
            assert!(parse_go_duration(bad).is_err(), "{bad} should fail");
        }
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(n in 0u64..10_000_000_000_000u64) {
            let d = Duration::from_nanos(n);
            proptest::prop_assert_eq!(parse_go_duration(&format_go_duration(d)).unwrap(), d);
        }
    }
}

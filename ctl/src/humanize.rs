//! Human-readable sizes and relative times, worded like the Go tool's output (which uses the
//! `go-humanize` conventions: SI byte units, "25 seconds from now", "3 minutes ago").

use chrono::{DateTime, Utc};

/// A byte count with SI units and one decimal below 10: `12 GB`, `1.5 MB`, `9 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let mut exp = 0usize;
    let mut scale = 1f64;
    while exp + 1 < UNITS.len() && (n as f64) >= scale * 1000.0 {
        scale *= 1000.0;
        exp += 1;
    }
    let value = ((n as f64) / scale * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 { format!("{value:.1} {}", UNITS[exp]) } else { format!("{value:.0} {}", UNITS[exp]) }
}

const SECOND: i128 = 1_000_000_000;
const MINUTE: i128 = 60 * SECOND;
const HOUR: i128 = 60 * MINUTE;
const DAY: i128 = 24 * HOUR;
const WEEK: i128 = 7 * DAY;
const MONTH: i128 = 30 * DAY;
const YEAR: i128 = 12 * MONTH;

/// How one range of distances is worded: below `below`, print `text`, where `{n}` is the
/// distance divided by `unit` (truncated).
struct Magnitude {
    below: i128,
    text: &'static str,
    unit: i128,
}

const MAGNITUDES: [Magnitude; 17] = [
    Magnitude { below: SECOND, text: "now", unit: 1 },
    Magnitude { below: 2 * SECOND, text: "1 second", unit: 1 },
    Magnitude { below: MINUTE, text: "{n} seconds", unit: SECOND },
    Magnitude { below: 2 * MINUTE, text: "1 minute", unit: 1 },
    Magnitude { below: HOUR, text: "{n} minutes", unit: MINUTE },
    Magnitude { below: 2 * HOUR, text: "1 hour", unit: 1 },
    Magnitude { below: DAY, text: "{n} hours", unit: HOUR },
    Magnitude { below: 2 * DAY, text: "1 day", unit: 1 },
    Magnitude { below: WEEK, text: "{n} days", unit: DAY },
    Magnitude { below: 2 * WEEK, text: "1 week", unit: 1 },
    Magnitude { below: MONTH, text: "{n} weeks", unit: WEEK },
    Magnitude { below: 2 * MONTH, text: "1 month", unit: 1 },
    Magnitude { below: YEAR, text: "{n} months", unit: MONTH },
    Magnitude { below: 18 * MONTH, text: "1 year", unit: 1 },
    Magnitude { below: 2 * YEAR, text: "2 years", unit: 1 },
    Magnitude { below: 37 * YEAR, text: "{n} years", unit: YEAR },
    Magnitude { below: i128::MAX, text: "a long while", unit: 1 },
];

/// The distance from `now` to `then` in words: `now`, `25 seconds from now`, `3 minutes ago`.
pub fn rel_time(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = (then - now).num_nanoseconds().map(i128::from).unwrap_or_else(|| {
        // Beyond ±292 years: far enough for "a long while".
        if then > now { i128::MAX / 2 } else { -(i128::MAX / 2) }
    });
    let (distance, label) = if delta > 0 { (delta, "from now") } else { (-delta, "ago") };
    let m = MAGNITUDES.iter().find(|m| m.below > distance).unwrap_or(&MAGNITUDES[MAGNITUDES.len() - 1]);
    if m.text == "now" {
        return "now".to_string();
    }
    let text = m.text.replace("{n}", &(distance / m.unit).to_string());
    format!("{text} {label}")
}

/// [`rel_time`] for a time given in unix nanoseconds.
pub fn rel_time_nanos(nanos: i64, now: DateTime<Utc>) -> String {
    rel_time(DateTime::from_timestamp_nanos(nanos), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(9), "9 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(1500), "1.5 kB");
        assert_eq!(bytes(12_000_000_000), "12 GB");
        assert_eq!(bytes(82_854_982), "83 MB");
        assert_eq!(bytes(u64::MAX), "18 EB");
    }

    #[test]
    fn relative_times() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |secs: i64| DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        assert_eq!(rel_time(now, now), "now");
        assert_eq!(rel_time(at(1), now), "1 second from now");
        assert_eq!(rel_time(at(25), now), "25 seconds from now");
        assert_eq!(rel_time(at(-90), now), "1 minute ago");
        assert_eq!(rel_time(at(-180), now), "3 minutes ago");
        assert_eq!(rel_time(at(3 * 86400), now), "3 days from now");
        assert_eq!(rel_time_nanos(0, now), "a long while ago");
    }
}

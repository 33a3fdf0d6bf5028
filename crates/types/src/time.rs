//! Timestamps that serialize like Go's `time.Time`: RFC 3339, with the zero time meaning unset.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Go's zero `time.Time` as it appears in JSON.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A point in time, or unset (Go's zero time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub Option<DateTime<Utc>>);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp(Some(Utc::now()))
    }

    /// The unset time.
    pub const fn zero() -> Self {
        Timestamp(None)
    }

    /// True when unset.
    pub fn is_zero(&self) -> bool {
        self.0.is_none()
    }

    /// Unix nanoseconds, 0 when unset.
    pub fn unix_nanos(&self) -> i64 {
        self.0.and_then(|t| t.timestamp_nanos_opt()).unwrap_or(0)
    }

    /// Builds from unix nanoseconds, 0 meaning unset.
    pub fn from_unix_nanos(n: i64) -> Self {
        if n == 0 {
            Timestamp(None)
        } else {
            Timestamp(Some(DateTime::from_timestamp_nanos(n)))
        }
    }

    /// RFC 3339 text as Go prints it (nanoseconds with trailing zeros trimmed).
    pub fn to_rfc3339(&self) -> String {
        match self.0 {
            None => ZERO_TIME.to_string(),
            Some(t) => {
                let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
                trim_nanos(&s)
            }
        }
    }

    /// Parses RFC 3339; the Go zero time gives an unset timestamp.
    pub fn parse(s: &str) -> Result<Self, chrono::ParseError> {
        if s == ZERO_TIME || s.starts_with("0001-01-01T00:00:00") {
            return Ok(Timestamp(None));
        }
        Ok(Timestamp(Some(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))))
    }
}

fn trim_nanos(s: &str) -> String {
    // "2024-05-06T10:00:00.120000000Z" -> "2024-05-06T10:00:00.12Z", like RFC3339Nano.
    if let Some(dot) = s.find('.') {
        let end = s.len() - 1; // 'Z'
        let frac = s[dot + 1..end].trim_end_matches('0');
        if frac.is_empty() {
            format!("{}Z", &s[..dot])
        } else {
            format!("{}.{}Z", &s[..dot], frac)
        }
    } else {
        s.to_string()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        match s {
            None => Ok(Timestamp(None)),
            Some(s) => Timestamp::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_roundtrip() {
        let z = Timestamp::zero();
        assert_eq!(serde_json::to_string(&z).unwrap(), "\"0001-01-01T00:00:00Z\"");
        let back: Timestamp = serde_json::from_str("\"0001-01-01T00:00:00Z\"").unwrap();
        assert!(back.is_zero());
    }

    #[test]
    fn trims_nanos_like_go() {
        let t = Timestamp::parse("2024-05-06T10:00:00.120Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-06T10:00:00.12Z");
        let t = Timestamp::parse("2024-05-06T10:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-06T10:00:00Z");
        assert_eq!(Timestamp::from_unix_nanos(t.unix_nanos()), t);
    }
}

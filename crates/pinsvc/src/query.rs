//! The query string of `GET /pins`: filters, pagination window and limit.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cluster_types::{ApiError, Cid, parse_cid};

use crate::error::bad_request;
use crate::index::{CreatedWindow, PinRequest};
use crate::model::{Status, check_name};

/// Results per page when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 10;
/// Largest accepted `limit`.
pub const MAX_LIMIT: usize = 1000;
/// Most CIDs one `cid` filter may name.
pub const MAX_CIDS: usize = 10;

/// How `name` is compared (`match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextMatch {
    /// Equal, case-sensitive (the default).
    #[default]
    Exact,
    /// Equal ignoring case.
    IExact,
    /// Contains, case-sensitive.
    Partial,
    /// Contains ignoring case.
    IPartial,
}

impl TextMatch {
    fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "exact" => Ok(TextMatch::Exact),
            "iexact" => Ok(TextMatch::IExact),
            "partial" => Ok(TextMatch::Partial),
            "ipartial" => Ok(TextMatch::IPartial),
            other => Err(bad_request(format!(
                "invalid match '{other}': expected exact, iexact, partial or ipartial"
            ))),
        }
    }

    /// True when `name` matches `wanted` under this strategy.
    pub fn matches(self, name: &str, wanted: &str) -> bool {
        match self {
            TextMatch::Exact => name == wanted,
            TextMatch::IExact => name.to_lowercase() == wanted.to_lowercase(),
            TextMatch::Partial => name.contains(wanted),
            TextMatch::IPartial => name.to_lowercase().contains(&wanted.to_lowercase()),
        }
    }
}

/// A parsed `GET /pins` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only requests for these CIDs (empty: any).
    pub cids: Vec<Cid>,
    /// Only requests whose name matches.
    pub name: Option<String>,
    /// How `name` is compared.
    pub text_match: TextMatch,
    /// Only requests in these states; `pinned` alone when the query names none, as the spec
    /// says listings without a status filter return successful pins.
    pub statuses: BTreeSet<Status>,
    /// Only requests created strictly between `after` and `before`.
    pub window: CreatedWindow,
    /// Results per page.
    pub limit: usize,
    /// Only requests whose meta contains all these pairs.
    pub meta: BTreeMap<String, String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            cids: Vec::new(),
            name: None,
            text_match: TextMatch::Exact,
            statuses: BTreeSet::from([Status::Pinned]),
            window: CreatedWindow::default(),
            limit: DEFAULT_LIMIT,
            meta: BTreeMap::new(),
        }
    }
}

impl ListQuery {
    /// Parses a raw query string. List parameters (`cid`, `status`) may repeat and may hold
    /// comma lists, covering both encodings clients use; other parameters take their first
    /// value. Empty values count as absent. Unknown parameters are ignored.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let pairs = decode_pairs(raw)?;
        let first = |key: &str| {
            pairs
                .iter()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| v.as_str())
        };
        let all = |key: &'static str| {
            pairs
                .iter()
                .filter(move |(k, _)| k == key)
                .flat_map(|(_, v)| v.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let mut q = ListQuery::default();

        for c in all("cid") {
            let cid = parse_cid(c)?;
            if !q.cids.contains(&cid) {
                q.cids.push(cid);
            }
        }
        if q.cids.len() > MAX_CIDS {
            return Err(bad_request(format!(
                "too many cids: {} (at most {MAX_CIDS})",
                q.cids.len()
            )));
        }

        if let Some(name) = first("name") {
            check_name(name)?;
            q.name = Some(name.to_string());
        }
        if let Some(m) = first("match") {
            q.text_match = TextMatch::parse(m)?;
        }

        let statuses = all("status")
            .map(str::parse)
            .collect::<Result<BTreeSet<Status>, _>>()?;
        if !statuses.is_empty() {
            q.statuses = statuses;
        }

        if let Some(before) = first("before") {
            q.window.until_millis = Some(ceil_millis(parse_time("before", before)?));
        }
        if let Some(after) = first("after") {
            q.window.from_millis =
                Some(floor_millis(parse_time("after", after)?).saturating_add(1));
        }

        if let Some(limit) = first("limit") {
            q.limit = match limit.parse::<u64>() {
                Ok(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
                _ => {
                    return Err(bad_request(format!(
                        "invalid limit '{limit}': expected an integer from 1 to {MAX_LIMIT}"
                    )));
                }
            };
        }

        if let Some(meta) = first("meta") {
            q.meta = serde_json::from_str(meta).map_err(|e| {
                bad_request(format!(
                    "invalid meta: expected a JSON object of strings: {e}"
                ))
            })?;
        }
        Ok(q)
    }

    /// True when every status passes, so listing needs no cluster lookups to count.
    pub fn any_status(&self) -> bool {
        self.statuses.len() == Status::ALL.len()
    }

    /// The filters that need no cluster lookup: cid, name and meta.
    pub fn matches_stored(&self, req: &PinRequest) -> bool {
        if !self.cids.is_empty() && !self.cids.contains(&req.pin.cid) {
            return false;
        }
        if let Some(wanted) = &self.name
            && !self.text_match.matches(&req.pin.name, wanted)
        {
            return false;
        }
        self.meta
            .iter()
            .all(|(k, v)| req.pin.meta.get(k) == Some(v))
    }

    /// True when a request created at `millis` lies inside the window.
    pub fn in_window(&self, millis: u64) -> bool {
        self.window.from_millis.is_none_or(|lo| millis >= lo)
            && self.window.until_millis.is_none_or(|hi| millis < hi)
    }
}

fn parse_time(key: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            bad_request(format!(
                "invalid {key} '{s}': expected an RFC 3339 time: {e}"
            ))
        })
}

/// Milliseconds since the epoch rounded down, clamped at zero.
fn floor_millis(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// Milliseconds since the epoch rounded up, clamped at zero: `created < before` on whole
/// milliseconds means `created_ms < ceil(before)`.
fn ceil_millis(t: DateTime<Utc>) -> u64 {
    let extra = u64::from(!t.timestamp_subsec_nanos().is_multiple_of(1_000_000));
    floor_millis(t).saturating_add(extra)
}

/// Splits `a=b&c=d` and form-decodes both sides (`+` is a space).
fn decode_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let bad = || bad_request(format!("invalid query parameter '{part}'"));
            Ok((
                percent_decode(k, true).ok_or_else(bad)?,
                percent_decode(v, true).ok_or_else(bad)?,
            ))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space when asked); `None` for a broken escape or
/// bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "bafkqaaa";
    const C2: &str = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n";

    fn identity_cid(i: u8) -> String {
        let mh = cid::multihash::Multihash::<64>::wrap(0, &[i]).unwrap();
        Cid::new_v1(0x55, mh).to_string()
    }

    #[test]
    fn defaults() {
        let q = ListQuery::parse("").unwrap();
        assert_eq!(q, ListQuery::default());
        assert_eq!(q.limit, 10);
        assert_eq!(q.statuses, BTreeSet::from([Status::Pinned]));
        assert_eq!(ListQuery::parse("status=&limit=&unknown=1").unwrap(), q);
    }

    #[test]
    fn lists_repeat_or_comma() {
        let q = ListQuery::parse(&format!(
            "cid={C1},{C2}&cid={C1}&status=queued,pinning&status=failed"
        ))
        .unwrap();
        assert_eq!(q.cids.len(), 2);
        assert_eq!(
            q.statuses,
            BTreeSet::from([Status::Queued, Status::Pinning, Status::Failed])
        );
        let cids: Vec<String> = (0u8..11).map(identity_cid).collect();
        assert_eq!(
            ListQuery::parse(&format!("cid={}", cids[..10].join(",")))
                .unwrap()
                .cids
                .len(),
            10
        );
        let e = ListQuery::parse(&format!("cid={}", cids.join(","))).unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "cid=nope",
            "status=done",
            "match=fuzzy",
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=ten",
            "before=yesterday",
            "after=2020-13-01T00:00:00Z",
            "meta=%7Bx",
            "meta=%5B%5D",
            "meta=%7B%22a%22%3A1%7D",
            "name=%zz",
        ] {
            let e = ListQuery::parse(bad).unwrap_err();
            assert_eq!(e.code, 400, "{bad}");
        }
        let long = format!("name={}", "a".repeat(256));
        assert!(ListQuery::parse(&long).is_err());
    }

    #[test]
    fn times_round_to_milliseconds() {
        let q =
            ListQuery::parse("before=1970-01-01T00:00:01.0005Z&after=1970-01-01T00:00:01.0005Z")
                .unwrap();
        assert_eq!(q.window.until_millis, Some(1001));
        assert_eq!(q.window.from_millis, Some(1001));
        let q = ListQuery::parse("before=1970-01-01T00:00:01Z&after=1960-01-01T00:00:00Z").unwrap();
        assert_eq!(q.window.until_millis, Some(1000));
        assert_eq!(q.window.from_millis, Some(1));
        let q = ListQuery::parse("after=2020-07-27T17:32:28%2B02:00").unwrap();
        assert_eq!(q.window.from_millis, Some(1_595_863_948_001));
    }

    #[test]
    fn text_matching() {
        assert!(TextMatch::Exact.matches("Data", "Data"));
        assert!(!TextMatch::Exact.matches("Data", "data"));
        assert!(TextMatch::IExact.matches("Data", "dATA"));
        assert!(TextMatch::Partial.matches("my Data.pdf", "Data"));
        assert!(!TextMatch::Partial.matches("my Data.pdf", "data"));
        assert!(TextMatch::IPartial.matches("my Data.pdf", "DATA"));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert!(percent_decode("%4", true).is_none());
        assert!(percent_decode("%ff", true).is_none());
    }
}

//! Pin options as query-string parameters (§5.2), shared by the REST API and its clients.

use std::collections::BTreeMap;

use crate::duration::parse_go_duration;
use crate::error::ApiError;
use crate::pin::{PinMode, PinOptions};
use crate::time::Timestamp;

/// Builds pin options from query pairs, rejecting malformed values with a message naming them.
pub fn pin_options_from_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<PinOptions, ApiError> {
    let mut o = PinOptions::default();
    let int = |k: &str, v: &str| -> Result<i32, ApiError> {
        v.parse::<i32>().map_err(|_| ApiError::bad_request(format!("invalid {k} '{v}': expected an integer")))
    };
    for (k, v) in pairs {
        match k {
            "name" => o.name = v.to_string(),
            "mode" => o.mode = v.parse::<PinMode>()?,
            "replication" => {
                let n = int(k, v)?;
                o.replication_factor_min = n;
                o.replication_factor_max = n;
            }
            "replication-min" => o.replication_factor_min = int(k, v)?,
            "replication-max" => o.replication_factor_max = int(k, v)?,
            "shard-size" => {
                o.shard_size = v
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid shard-size '{v}'")))?
            }
            "user-allocations" => {
                o.user_allocations = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
            }
            "expire-at" => {
                if !v.is_empty() {
                    o.expire_at = Timestamp::parse(v)
                        .map_err(|e| ApiError::bad_request(format!("invalid expire-at '{v}': {e}")))?;
                }
            }
            "expire-in" => {
                if !v.is_empty() {
                    let d = parse_go_duration(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
                    if d < std::time::Duration::from_secs(1) {
                        return Err(ApiError::bad_request("expire-in must be at least 1s"));
                    }
                    let at = chrono::Utc::now()
                        + chrono::Duration::from_std(d).map_err(|_| ApiError::bad_request("expire-in too large"))?;
                    o.expire_at = Timestamp(Some(at));
                }
            }
            "pin-update" => {
                if !v.is_empty() {
                    o.pin_update = Some(crate::parse_cid(v)?);
                }
            }
            "origins" => o.origins = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            _ => {
                if let Some(key) = k.strip_prefix("meta-") {
                    o.metadata.insert(key.to_string(), v.to_string());
                }
            }
        }
    }
    if let Some(t) = o.expire_at.0
        && t <= chrono::Utc::now() {
            return Err(ApiError::bad_request("expire-at is in the past"));
        }
    Ok(o)
}

/// Encodes pin options as query pairs (the inverse of [`pin_options_from_query`]).
pub fn pin_options_to_query(o: &PinOptions) -> Vec<(String, String)> {
    let mut q = Vec::new();
    if !o.name.is_empty() {
        q.push(("name".into(), o.name.clone()));
    }
    q.push(("mode".into(), o.mode.as_str().into()));
    q.push(("replication-min".into(), o.replication_factor_min.to_string()));
    q.push(("replication-max".into(), o.replication_factor_max.to_string()));
    if o.shard_size > 0 {
        q.push(("shard-size".into(), o.shard_size.to_string()));
    }
    if !o.user_allocations.is_empty() {
        q.push(("user-allocations".into(), o.user_allocations.join(",")));
    }
    if !o.expire_at.is_zero() {
        q.push(("expire-at".into(), o.expire_at.to_rfc3339()));
    }
    for (k, v) in &o.metadata {
        q.push((format!("meta-{k}"), v.clone()));
    }
    if let Some(c) = &o.pin_update {
        q.push(("pin-update".into(), c.to_string()));
    }
    if !o.origins.is_empty() {
        q.push(("origins".into(), o.origins.join(",")));
    }
    q
}

/// Parses `k=v` metadata arguments as given to ctl's `--metadata`.
pub fn parse_metadata_args(args: &[String]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut m = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| ApiError::bad_request(format!("invalid metadata '{a}': expected key=value")))?;
        if k.is_empty() {
            return Err(ApiError::bad_request(format!("invalid metadata '{a}': empty key")));
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let o = PinOptions {
            name: "x".into(),
            mode: PinMode::Direct,
            replication_factor_min: 1,
            replication_factor_max: 2,
            metadata: BTreeMap::from([("kind".to_string(), "text".to_string())]),
            user_allocations: vec!["A".into()],
            expire_at: Timestamp::parse("2999-01-01T00:00:00Z").unwrap(),
            ..PinOptions::default()
        };
        let q = pin_options_to_query(&o);
        let back = pin_options_from_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(pin_options_from_query([("mode", "sideways")]).is_err());
        assert!(pin_options_from_query([("replication-min", "x")]).is_err());
        assert!(pin_options_from_query([("expire-in", "5")]).is_err());
        assert!(pin_options_from_query([("expire-at", "2001-01-01T00:00:00Z")]).is_err());
        assert!(pin_options_from_query([("pin-update", "nope")]).is_err());
        let o = pin_options_from_query([("expire-in", "1h")]).unwrap();
        assert!(!o.expire_at.is_zero());
    }
}

//! Serde adapters for the original's JSON conventions (CIDs as strings, `null` for empty lists).

use cid::Cid;
use serde::{Deserialize, Deserializer, Serializer};

/// A CID serialized as its string form.
pub mod cid_string {
    use super::*;
    /// Serializes a CID as a string.
    pub fn serialize<S: Serializer>(c: &Cid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&c.to_string())
    }
    /// Deserializes a CID from a string, also accepting the pre-1.0 `{"/": "..."}` form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let s = match &v {
            serde_json::Value::String(s) => s.as_str(),
            serde_json::Value::Object(m) => m.get("/").and_then(|x| x.as_str()).unwrap_or(""),
            _ => "",
        };
        s.parse::<Cid>().map_err(|e| serde::de::Error::custom(format!("invalid cid '{s}': {e}")))
    }
}

/// An optional CID: `null` when undefined.
pub mod opt_cid_string {
    use super::*;
    /// Serializes `None` as `null`.
    pub fn serialize<S: Serializer>(c: &Option<Cid>, s: S) -> Result<S::Ok, S::Error> {
        match c {
            Some(c) => s.serialize_str(&c.to_string()),
            None => s.serialize_none(),
        }
    }
    /// Accepts `null`, an empty string, or a CID string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cid>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let s = match &v {
            serde_json::Value::Null => return Ok(None),
            serde_json::Value::String(s) => s.as_str(),
            serde_json::Value::Object(m) => match m.get("/").and_then(|x| x.as_str()) {
                Some(s) => s,
                None => return Ok(None),
            },
            _ => return Err(serde::de::Error::custom("cid must be a string")),
        };
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<Cid>()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid cid '{s}': {e}")))
    }
}

/// A list that Go emits as `null` when empty (nil slice).
pub mod null_vec {
    use super::*;
    use serde::Serialize;
    /// Serializes an empty vector as `null`.
    pub fn serialize<S: Serializer, T: Serialize>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() { s.serialize_none() } else { v.serialize(s) }
    }
    /// Accepts `null` as empty.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

/// A list that may arrive as `null` but always serializes as an array.
pub mod vec_or_null {
    use super::*;
    /// Accepts `null` as empty.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

/// A string map that Go emits as `null` when empty (nil map).
pub mod null_map {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;
    /// Serializes an empty map as `null`.
    pub fn serialize<S: Serializer>(m: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
        if m.is_empty() { s.serialize_none() } else { m.serialize(s) }
    }
}

//! Introspection of the config structs through their own serde impls.
//!
//! A throwaway [`Deserializer`] walks `ServiceConfig::deserialize` once, recording which dotted
//! paths are structs (and their field names) and which are leaves (and what kind of value they
//! want). The unknown-key check, the error locator and the env overrides all read this schema,
//! so they can never drift from the struct definitions.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::de::value::Error as ProbeError;
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The kind of value a leaf field accepts; drives env-variable conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string (including Go durations).
    Str,
    /// A signed integer.
    Int,
    /// An unsigned integer.
    UInt,
    /// A float.
    Float,
    /// A boolean.
    Bool,
    /// A list of strings.
    List,
    /// A JSON object with free-form keys (tags, headers, credentials).
    Map,
    /// Anything the field's deserializer decides at runtime (string-or-list fields).
    Any,
}

/// Struct paths with their field names, and leaf paths with their kinds. The root is "".
#[derive(Debug, Default)]
pub(crate) struct Schema {
    pub structs: BTreeMap<String, &'static [&'static str]>,
    pub leaves: BTreeMap<String, Kind>,
}

impl Schema {
    /// Builds the schema of `T` by letting it deserialize from the probe.
    pub fn of<T: DeserializeOwned>() -> Schema {
        let cell = RefCell::new(Schema::default());
        // A failure here would only make the schema incomplete; a unit test asserts it succeeds.
        let _ = T::deserialize(Probe { path: String::new(), schema: &cell });
        cell.into_inner()
    }

    /// Dotted paths of keys in `value` that the schema does not know, depth first.
    pub fn unknown_keys(&self, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.walk_unknown(value, "", &mut out);
        out
    }

    fn walk_unknown(&self, value: &Value, path: &str, out: &mut Vec<String>) {
        let (Some(fields), Value::Object(map)) = (self.structs.get(path), value) else {
            // Leaves (and type mismatches, reported by deserialization) end the walk.
            return;
        };
        for (key, child) in map {
            let child_path = join(path, key);
            if fields.contains(&key.as_str()) {
                self.walk_unknown(child, &child_path, out);
            } else {
                out.push(child_path);
            }
        }
    }

    /// Every leaf value in `value` with its dotted path. A struct path holding a non-object is
    /// treated as a leaf so that its type error can be reported.
    pub fn leaves_of<'v>(&self, value: &'v Value) -> Vec<(String, &'v Value)> {
        let mut out = Vec::new();
        self.walk_leaves(value, String::new(), &mut out);
        out
    }

    fn walk_leaves<'v>(&self, value: &'v Value, path: String, out: &mut Vec<(String, &'v Value)>) {
        match (self.structs.contains_key(&path), value) {
            (true, Value::Object(map)) => {
                for (key, child) in map {
                    self.walk_leaves(child, join(&path, key), out);
                }
            }
            _ => out.push((path, value)),
        }
    }
}

/// Joins a parent path and a key with a dot (the root has no prefix).
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// Sets `leaf` at dotted `path` inside `root`, creating intermediate objects.
pub(crate) fn set_at(root: &mut Value, path: &str, leaf: Value) {
    let mut current = root;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(map) = current else { return };
        if parts.peek().is_none() {
            map.insert(part.to_string(), leaf);
            return;
        }
        current = map.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Looks up a dotted path.
pub(crate) fn get_at<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(root, |v, part| v.get(part))
}

/// The recording deserializer. It hands every visitor a harmless value ("0s" for strings, 0,
/// false, empty collections) so that the whole struct tree gets visited.
struct Probe<'a> {
    path: String,
    schema: &'a RefCell<Schema>,
}

impl Probe<'_> {
    fn leaf(&self, kind: Kind) {
        self.schema.borrow_mut().leaves.insert(self.path.clone(), kind);
    }
}

macro_rules! probe_leaves {
    ($($method:ident => $kind:expr, $visit:ident($($value:expr)?);)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
            self.leaf($kind);
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.leaf(Kind::Any);
        visitor.visit_unit()
    }

    probe_leaves! {
        deserialize_bool => Kind::Bool, visit_bool(false);
        deserialize_i8 => Kind::Int, visit_i64(0);
        deserialize_i16 => Kind::Int, visit_i64(0);
        deserialize_i32 => Kind::Int, visit_i64(0);
        deserialize_i64 => Kind::Int, visit_i64(0);
        deserialize_u8 => Kind::UInt, visit_u64(0);
        deserialize_u16 => Kind::UInt, visit_u64(0);
        deserialize_u32 => Kind::UInt, visit_u64(0);
        deserialize_u64 => Kind::UInt, visit_u64(0);
        deserialize_f32 => Kind::Float, visit_f64(0.0);
        deserialize_f64 => Kind::Float, visit_f64(0.0);
        deserialize_char => Kind::Str, visit_char('0');
        // "0s" is both a valid Go duration and an acceptable plain string.
        deserialize_str => Kind::Str, visit_str("0s");
        deserialize_string => Kind::Str, visit_str("0s");
        deserialize_bytes => Kind::Any, visit_bytes(&[]);
        deserialize_byte_buf => Kind::Any, visit_bytes(&[]);
        deserialize_unit => Kind::Any, visit_unit();
        deserialize_ignored_any => Kind::Any, visit_unit();
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        // Visit the inner type so optional sections are part of the schema.
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.leaf(Kind::List);
        visitor.visit_seq(Empty)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.leaf(Kind::Map);
        visitor.visit_map(Empty)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.schema.borrow_mut().structs.insert(self.path.clone(), fields);
        visitor.visit_map(Fields { fields, next: 0, path: self.path, schema: self.schema })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(de::Error::custom(format!("enum {name} is not supported in configuration structs")))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_str(visitor)
    }
}

/// An empty sequence or map.
struct Empty;

impl<'de> SeqAccess<'de> for Empty {
    type Error = ProbeError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, _: T) -> Result<Option<T::Value>, ProbeError> {
        Ok(None)
    }
}

impl<'de> MapAccess<'de> for Empty {
    type Error = ProbeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, ProbeError> {
        Ok(None)
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, ProbeError> {
        Err(de::Error::custom("no value"))
    }
}

/// Feeds a struct visitor every one of its fields, each backed by a nested probe.
struct Fields<'a> {
    fields: &'static [&'static str],
    next: usize,
    path: String,
    schema: &'a RefCell<Schema>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ProbeError> {
        match self.fields.get(self.next) {
            Some(name) => seed.deserialize((*name).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ProbeError> {
        let name = self.fields.get(self.next).copied().unwrap_or_default();
        self.next += 1;
        seed.deserialize(Probe { path: join(&self.path, name), schema: self.schema })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{schema, ServiceConfig};

    #[test]
    fn probe_sees_every_section() {
        let s = schema();
        for path in [
            "",
            "cluster",
            "cluster.connection_manager",
            "cluster.resource_manager",
            "cluster.pubsub",
            "consensus.crdt",
            "consensus.crdt.batching",
            "consensus.raft",
            "api.restapi",
            "api.pinsvcapi",
            "api.ipfsproxy",
            "ipfs_connector.embedded",
            "ipfs_connector.ipfshttp",
            "pin_tracker.stateless",
            "monitor.pubsubmon",
            "allocator.balanced",
            "informer.disk",
            "informer.tags",
            "informer.pinqueue",
            "observations.metrics",
            "observations.tracing",
            "datastore.fjall",
        ] {
            assert!(s.structs.contains_key(path), "missing struct path {path:?}");
        }
        assert_eq!(s.leaves.get("cluster.secret"), Some(&Kind::Str));
        assert_eq!(s.leaves.get("cluster.replication_factor_min"), Some(&Kind::Int));
        assert_eq!(s.leaves.get("pin_tracker.stateless.concurrent_pins"), Some(&Kind::UInt));
        assert_eq!(s.leaves.get("informer.tags.tags"), Some(&Kind::Map));
        assert_eq!(s.leaves.get("allocator.balanced.allocate_by"), Some(&Kind::List));
        assert_eq!(s.leaves.get("observations.tracing.sampling_prob"), Some(&Kind::Float));
        assert_eq!(s.leaves.get("api.restapi.http_listen_multiaddress"), Some(&Kind::Any));
        // Free-form maps are leaves, not structs, so their keys are never "unknown".
        assert!(!s.structs.contains_key("informer.tags.tags"));
    }

    #[test]
    fn every_serialized_key_is_known() {
        // Guards the other direction: what we write must be accepted by what we read.
        let mut config = ServiceConfig::default();
        config.consensus.raft = Some(Default::default());
        config.api.pinsvcapi = Some(Default::default());
        config.api.ipfsproxy = Some(Default::default());
        config.ipfs_connector.ipfshttp = Some(Default::default());
        let value = serde_json::to_value(&config).unwrap();
        assert_eq!(schema().unknown_keys(&value), Vec::<String>::new());
    }

    #[test]
    fn set_and_get_paths() {
        let mut v = Value::Object(Map::new());
        set_at(&mut v, "a.b.c", Value::from(1));
        assert_eq!(get_at(&v, "a.b.c"), Some(&Value::from(1)));
        assert_eq!(get_at(&v, "a.x"), None);
    }
}

//! Small serde adapters shared by the sections.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Serializer;

/// Multiaddress lists that, like the original's `config.Strings`, accept either a single string
/// or an array of strings. `null` and `""` mean "none".
pub mod strings {
    use super::*;

    /// Accepts `"a"`, `["a", "b"]`, `""` or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(StringsVisitor)
    }

    /// Writes a single entry as a plain string (the way the original writes
    /// `http_listen_multiaddress`) and anything else as an array.
    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => s.serialize_str(one),
            many => s.collect_seq(many),
        }
    }

    struct StringsVisitor;

    impl<'de> Visitor<'de> for StringsVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(if v.is_empty() { Vec::new() } else { vec![v.to_string()] })
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
}

/// Lists that accept a single string too but are always written as arrays (the original writes
/// `cluster.listen_multiaddress` as an array).
pub mod string_list {
    use super::*;

    /// Accepts `"a"`, `["a", "b"]`, `""` or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        strings::deserialize(d)
    }

    /// Always an array.
    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v)
    }
}

/// `skip_serializing_if` helper for flags that are omitted while false.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

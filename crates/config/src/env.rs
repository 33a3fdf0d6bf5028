//! Environment overrides, named like the original's envconfig variables:
//! `CLUSTER_<FIELD>` for the cluster section and `CLUSTER_<COMPONENT>_<FIELD>` for component
//! sections, where FIELD is the JSON key without underscores, uppercased
//! (`CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS`, `CLUSTER_STATELESS_CONCURRENTPINS`).
//!
//! The environment is always passed in as a map so tests (and callers) control it.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Number, Value};

use crate::error::ConfigErrors;
use crate::schema::{get_at, set_at, Kind, Schema};

/// Identity fields that happen to live in the cluster section of old configs; their variables
/// (`CLUSTER_ID`, `CLUSTER_PRIVATEKEY`) belong to identity.json instead.
const IDENTITY_FIELDS: [&str; 2] = ["id", "private_key"];

/// One overridable field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    /// The environment variable.
    pub var: String,
    /// Dotted path of the field.
    pub path: String,
    /// Dotted path of its section.
    pub section: String,
    /// What kind of value the field takes.
    pub kind: Kind,
}

/// Every overridable field: the leaves directly inside `cluster` and inside each component
/// section (`<group>.<component>`). Nested objects such as `cluster.pubsub` are not covered.
pub(crate) fn overrides(schema: &Schema) -> Vec<Override> {
    let mut out = Vec::new();
    for (path, kind) in &schema.leaves {
        let parts: Vec<&str> = path.split('.').collect();
        let (var, section) = match parts.as_slice() {
            ["cluster", field] if !IDENTITY_FIELDS.contains(field) => {
                (format!("CLUSTER_{}", env_name(field)), "cluster".to_string())
            }
            [group, component, field] if *group != "cluster" => {
                (format!("CLUSTER_{}_{}", env_name(component), env_name(field)), format!("{group}.{component}"))
            }
            _ => continue,
        };
        out.push(Override { var, path: path.clone(), section, kind: *kind });
    }
    out
}

/// `listen_multiaddress` → `LISTENMULTIADDRESS`.
fn env_name(key: &str) -> String {
    key.replace('_', "").to_ascii_uppercase()
}

/// Writes the overrides found in `env` into `value` (a serialized `ServiceConfig`). Returns the
/// dotted paths that were set, mapped to their variables, or every conversion error.
pub(crate) fn apply_overrides(
    schema: &Schema,
    value: &mut Value,
    env: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigErrors> {
    let mut applied = BTreeMap::new();
    let mut errs = ConfigErrors::new();
    for o in overrides(schema) {
        let Some(raw) = env.get(&o.var) else { continue };
        if !get_at(value, &o.section).is_some_and(Value::is_object) {
            tracing::warn!(var = %o.var, section = %o.section, "ignoring environment override: section not configured");
            continue;
        }
        match convert(raw, o.kind) {
            Ok(v) => {
                // Values are not logged: some of them (secret, credentials) are sensitive.
                tracing::debug!(var = %o.var, key = %o.path, "applying environment override");
                set_at(value, &o.path, v);
                applied.insert(o.path, o.var);
            }
            Err(e) => errs.push(&o.var, e),
        }
    }
    errs.into_result().map(|()| applied)
}

/// Turns an environment string into the JSON value a field of `kind` expects.
fn convert(raw: &str, kind: Kind) -> Result<Value, String> {
    let trimmed = raw.trim();
    match kind {
        Kind::Str => Ok(Value::String(raw.to_string())),
        Kind::Int => trimmed
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{raw}' is not an integer")),
        Kind::UInt => trimmed
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("'{raw}' is not a non-negative integer")),
        Kind::Float => trimmed
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("'{raw}' is not a number")),
        Kind::Bool => parse_go_bool(trimmed).map(Value::Bool).ok_or_else(|| format!("'{raw}' is not a boolean")),
        Kind::List if trimmed.starts_with('[') => parse_json(trimmed, Value::is_array, "a JSON array"),
        Kind::List => Ok(comma_list(trimmed)),
        Kind::Map => parse_json(trimmed, |v| v.is_object() || v.is_null(), "a JSON object"),
        // String-or-list fields: JSON when it looks like JSON, a list when comma-separated.
        Kind::Any if trimmed.starts_with('[') || trimmed.starts_with('{') => {
            parse_json(trimmed, |_| true, "valid JSON")
        }
        Kind::Any if trimmed.contains(',') => Ok(comma_list(trimmed)),
        Kind::Any => Ok(Value::String(trimmed.to_string())),
    }
}

fn parse_json(text: &str, accept: impl Fn(&Value) -> bool, what: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if accept(&v) => Ok(v),
        Ok(_) => Err(format!("expected {what}")),
        Err(e) => Err(format!("expected {what}: {e}")),
    }
}

fn comma_list(text: &str) -> Value {
    Value::Array(
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()))
            .collect(),
    )
}

/// The spellings Go's `strconv.ParseBool` accepts, so existing deployments keep working.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(convert("3", Kind::UInt).unwrap(), Value::from(3u64));
        assert_eq!(convert("-1", Kind::Int).unwrap(), Value::from(-1i64));
        assert!(convert("-1", Kind::UInt).is_err());
        assert_eq!(convert("T", Kind::Bool).unwrap(), Value::Bool(true));
        assert!(convert("yes", Kind::Bool).is_err());
        assert_eq!(convert("a, b,", Kind::List).unwrap(), serde_json::json!(["a", "b"]));
        assert_eq!(convert("[\"a,b\"]", Kind::List).unwrap(), serde_json::json!(["a,b"]));
        assert_eq!(convert("{\"k\":\"v\"}", Kind::Map).unwrap(), serde_json::json!({"k": "v"}));
        assert!(convert("k=v", Kind::Map).is_err());
        assert_eq!(convert("/ip4/1.2.3.4/tcp/1", Kind::Any).unwrap(), serde_json::json!("/ip4/1.2.3.4/tcp/1"));
        assert_eq!(convert("/a,/b", Kind::Any).unwrap(), serde_json::json!(["/a", "/b"]));
        assert_eq!(convert("0.5", Kind::Float).unwrap(), serde_json::json!(0.5));
        assert!(convert("NaN", Kind::Float).is_err());
    }

    #[test]
    fn names_follow_the_original() {
        assert_eq!(env_name("http_listen_multiaddress"), "HTTPLISTENMULTIADDRESS");
        assert_eq!(env_name("repogc_timeout"), "REPOGCTIMEOUT");
    }
}

//! The definitions known to one process: every version of every event
//! type, and a compiled validator of each type's latest version.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use weir_core::{EventSchemas, SchemaViolation};

use crate::compat::backward_incompatibilities;
use crate::definition::{valid_event_type, EventDefinition, NewDefinition};
use crate::SchemaError;

/// Whether a new version must accept what the previous one accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compatibility {
    /// Any valid schema may follow (the default).
    #[default]
    None,
    /// Every payload valid under the latest version must stay valid under
    /// the new one (consumers validating with the new version still accept
    /// old events). Checked structurally — see [`crate::compat`] — and on
    /// the examples of every earlier version.
    Backward,
}

struct Versions {
    defs: BTreeMap<u32, EventDefinition>,
    latest: Arc<jsonschema::Validator>,
}

/// Every version of every registered event type, in memory.
///
/// The broker-backed [`crate::SchemaRegistry`] keeps one up to date from
/// the definitions topic; tests of topologies can use one directly.
///
/// # Examples
/// ```
/// use serde_json::json;
/// use weir_core::EventSchemas;
/// use weir_schema::{Catalog, Compatibility, NewDefinition};
///
/// let mut c = Catalog::default();
/// let schema = json!({"type": "object", "required": ["amount"],
///                     "properties": {"amount": {"type": "number", "minimum": 0}}});
/// let d = c.register(NewDefinition::new("refund.requested", schema), Compatibility::None).unwrap();
/// assert_eq!(d.version, 1);
/// assert!(c.check("refund.requested", &json!({"amount": 5})).is_ok());
/// let v = c.check("refund.requested", &json!({"amount": -5})).unwrap_err();
/// assert_eq!(v.field, "amount");
/// ```
#[derive(Default)]
pub struct Catalog {
    types: BTreeMap<String, Versions>,
}

impl Catalog {
    /// Checks `new` against this catalog and returns it as the next
    /// version of its type (not yet added: see [`Catalog::apply`]).
    ///
    /// # Errors
    /// [`SchemaError::InvalidEventType`], [`SchemaError::InvalidSchema`]
    /// (not a JSON Schema, or one that does not compile: a bad pattern, an
    /// unresolvable `$ref`), [`SchemaError::InvalidExample`],
    /// [`SchemaError::Incompatible`].
    pub fn prepare(
        &self,
        new: NewDefinition,
        compatibility: Compatibility,
    ) -> Result<EventDefinition, SchemaError> {
        if !valid_event_type(&new.event_type) {
            return Err(SchemaError::InvalidEventType {
                event_type: new.event_type,
            });
        }
        let validator = compile(&new.event_type, &new.schema)?;
        for (i, ex) in new.examples.iter().enumerate() {
            if let Some(v) = first_violation(&new.event_type, None, &validator, ex) {
                return Err(SchemaError::InvalidExample {
                    event_type: new.event_type,
                    index: i,
                    field: v.field,
                    error: v.error,
                });
            }
        }
        let previous = self.types.get(&new.event_type);
        if let (Compatibility::Backward, Some(prev)) = (compatibility, previous) {
            let (&version, last) = prev.defs.iter().next_back().expect("non-empty");
            let mut problems = backward_incompatibilities(&last.schema, &new.schema);
            for d in prev.defs.values() {
                for ex in &d.examples {
                    if let Some(v) = first_violation(&new.event_type, None, &validator, ex) {
                        problems.push(format!(
                            "an example of version {} is refused: {}: {}",
                            d.version,
                            if v.field.is_empty() {
                                "(payload)"
                            } else {
                                &v.field
                            },
                            v.error
                        ));
                    }
                }
            }
            if !problems.is_empty() {
                return Err(SchemaError::Incompatible {
                    event_type: new.event_type,
                    version,
                    problems,
                });
            }
        }
        let version = previous
            .and_then(|p| p.defs.keys().next_back().copied())
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| SchemaError::VersionsExhausted {
                event_type: new.event_type.clone(),
            })?;
        Ok(EventDefinition {
            event_type: new.event_type,
            version,
            schema: new.schema,
            description: new.description,
            examples: new.examples,
            owner: new.owner,
            registered_at: now_ms(),
            registration_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Adds `def` unless its version is taken (the first one stays).
    /// Returns whether it was added. A definition whose schema does not
    /// compile (written by something other than Weir) is skipped with a
    /// warning.
    pub fn apply(&mut self, def: EventDefinition) -> bool {
        if let Some(v) = self.types.get(&def.event_type) {
            if v.defs.contains_key(&def.version) {
                return false;
            }
        }
        let validator = match compile(&def.event_type, &def.schema) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                tracing::warn!(event_type = %def.event_type, version = def.version, error = %e, "skipping a definition whose schema does not compile");
                return false;
            }
        };
        let entry = self
            .types
            .entry(def.event_type.clone())
            .or_insert_with(|| Versions {
                defs: BTreeMap::new(),
                latest: validator.clone(),
            });
        let newest = entry
            .defs
            .keys()
            .next_back()
            .is_none_or(|&v| def.version > v);
        if newest {
            entry.latest = validator;
        }
        entry.defs.insert(def.version, def);
        true
    }

    /// [`Catalog::prepare`] then [`Catalog::apply`].
    ///
    /// # Errors
    /// As [`Catalog::prepare`].
    pub fn register(
        &mut self,
        new: NewDefinition,
        compatibility: Compatibility,
    ) -> Result<EventDefinition, SchemaError> {
        let def = self.prepare(new, compatibility)?;
        self.apply(def.clone());
        Ok(def)
    }

    /// Version `version` of `event_type`, or its latest when `None`.
    pub fn get(&self, event_type: &str, version: Option<u32>) -> Option<&EventDefinition> {
        let defs = &self.types.get(event_type)?.defs;
        match version {
            Some(v) => defs.get(&v),
            None => defs.values().next_back(),
        }
    }

    /// Every version of `event_type`, oldest first.
    pub fn versions(&self, event_type: &str) -> Vec<&EventDefinition> {
        self.types
            .get(event_type)
            .map(|v| v.defs.values().collect())
            .unwrap_or_default()
    }

    /// The latest version of every event type, by type.
    pub fn list(&self) -> Vec<&EventDefinition> {
        self.types
            .values()
            .filter_map(|v| v.defs.values().next_back())
            .collect()
    }
}

impl EventSchemas for Catalog {
    fn check(&self, event_type: &str, payload: &Value) -> Result<(), SchemaViolation> {
        let Some(v) = self.types.get(event_type) else {
            return Err(SchemaViolation {
                event_type: event_type.to_string(),
                version: None,
                field: String::new(),
                error: format!("no definition of event type {event_type:?} is registered"),
            });
        };
        let version = v.defs.keys().next_back().copied();
        match first_violation(event_type, version, &v.latest, payload) {
            None => Ok(()),
            Some(violation) => Err(violation),
        }
    }
}

fn compile(event_type: &str, schema: &Value) -> Result<jsonschema::Validator, SchemaError> {
    let invalid = |e: &jsonschema::ValidationError<'_>| SchemaError::InvalidSchema {
        event_type: event_type.to_string(),
        path: e.instance_path().as_str().to_string(),
        message: e.to_string(),
    };
    jsonschema::meta::validate(schema).map_err(|e| invalid(&e))?;
    // `format` (email, date-time, uuid, ...) is checked, not only noted, in
    // every draft.
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| invalid(&e))
}

/// The first error of `payload` under `validator`, with its field as a
/// dotted path.
fn first_violation(
    event_type: &str,
    version: Option<u32>,
    validator: &jsonschema::Validator,
    payload: &Value,
) -> Option<SchemaViolation> {
    let e = validator.iter_errors(payload).next()?;
    let mut field = dotted_path(payload, e.instance_path().as_str());
    let mut error = e.to_string();
    match e.kind() {
        jsonschema::error::ValidationErrorKind::Required { property } => {
            if let Some(p) = property.as_str() {
                field = join_field(&field, p);
            }
        }
        jsonschema::error::ValidationErrorKind::Format { format } => {
            let what = match format.as_str() {
                "email" | "idn-email" => "email address",
                other => other,
            };
            error = format!("must be a valid {what}");
        }
        _ => {}
    }
    Some(SchemaViolation {
        event_type: event_type.to_string(),
        version,
        field,
        error,
    })
}

/// A JSON pointer into `doc` as a dotted path: `/data/items/0/price` →
/// `data.items[0].price` (an index where the value is an array).
pub(crate) fn dotted_path(doc: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut at = Some(doc);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{seg}]"));
                at = seg.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                out = join_field(&out, &seg);
                at = other.and_then(|v| v.get(&seg));
            }
        }
    }
    out
}

fn join_field(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refund_schema() -> Value {
        json!({
            "type": "object",
            "required": ["refundId", "amount"],
            "properties": {
                "refundId": {"type": "string"},
                "amount": {"type": "number", "minimum": 0},
                "items": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
                }}
            }
        })
    }

    #[test]
    fn versions_count_up_and_the_latest_validates() {
        let mut c = Catalog::default();
        let v1 = c
            .register(
                NewDefinition::new("r", refund_schema()),
                Compatibility::None,
            )
            .unwrap();
        let v2 = c
            .register(
                NewDefinition::new("r", json!({"type": "object"})),
                Compatibility::None,
            )
            .unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert!(
            c.check("r", &json!({})).is_ok(),
            "version 2 accepts anything"
        );
        assert_eq!(c.get("r", Some(1)).unwrap().schema, refund_schema());
        assert_eq!(c.versions("r").len(), 2);
        assert_eq!(c.list().len(), 1);
    }

    #[test]
    fn the_first_definition_of_a_version_stays() {
        let mut c = Catalog::default();
        let a = c
            .prepare(
                NewDefinition::new("r", refund_schema()),
                Compatibility::None,
            )
            .unwrap();
        let b = c
            .prepare(NewDefinition::new("r", json!(true)), Compatibility::None)
            .unwrap();
        assert_eq!(a.version, b.version);
        assert!(c.apply(a.clone()));
        assert!(!c.apply(b));
        assert_eq!(c.get("r", None).unwrap(), &a);
    }

    #[test]
    fn violations_name_the_field_as_a_dotted_path() {
        let mut c = Catalog::default();
        c.register(
            NewDefinition::new("r", refund_schema()),
            Compatibility::None,
        )
        .unwrap();
        let v = c
            .check(
                "r",
                &json!({"refundId": "x", "amount": 1, "items": [{"qty": 1}, {"qty": 0}]}),
            )
            .unwrap_err();
        assert_eq!(v.field, "items[1].qty");
        assert!(v.error.contains("minimum"), "{}", v.error);
        assert_eq!(v.version, Some(1));
        let v = c.check("r", &json!({"amount": 1})).unwrap_err();
        assert_eq!(v.field, "refundId");
        assert!(v.error.contains("required"), "{}", v.error);
        let v = c.check("other", &json!({})).unwrap_err();
        assert_eq!(v.version, None);
    }

    #[test]
    fn formats_are_checked_whatever_the_draft() {
        let mut c = Catalog::default();
        let user = |draft: Option<&str>| {
            let mut s = json!({
                "type": "object",
                "properties": {"email": {"type": "string", "format": "email"}}
            });
            if let Some(d) = draft {
                s["$schema"] = json!(d);
            }
            s
        };
        for (name, draft) in [
            ("default", None),
            ("2020", Some("https://json-schema.org/draft/2020-12/schema")),
            ("7", Some("http://json-schema.org/draft-07/schema#")),
        ] {
            c.register(NewDefinition::new(name, user(draft)), Compatibility::None)
                .unwrap();
            let v = c
                .check(name, &json!({"email": "not-an-email"}))
                .unwrap_err();
            assert_eq!(v.field, "email", "{name}");
            assert_eq!(v.error, "must be a valid email address", "{name}");
            assert!(c.check(name, &json!({"email": "a@example.com"})).is_ok());
            assert!(c.check(name, &json!({"email": "a@b"})).is_ok(), "a@b");
        }
    }

    #[test]
    fn invalid_schemas_and_examples_are_refused() {
        let c = Catalog::default();
        let e = c
            .prepare(
                NewDefinition::new("r", json!({"type": "objekt"})),
                Compatibility::None,
            )
            .unwrap_err();
        assert!(matches!(e, SchemaError::InvalidSchema { .. }), "{e}");
        let e = c
            .prepare(
                NewDefinition::new("r", json!({"type": "string", "pattern": "(["})),
                Compatibility::None,
            )
            .unwrap_err();
        assert!(matches!(e, SchemaError::InvalidSchema { .. }), "{e}");
        let e = c
            .prepare(
                NewDefinition::new("r", refund_schema())
                    .example(json!({"refundId": 1, "amount": 1})),
                Compatibility::None,
            )
            .unwrap_err();
        assert!(
            matches!(e, SchemaError::InvalidExample { ref field, .. } if field == "refundId"),
            "{e}"
        );
        let e = c
            .prepare(NewDefinition::new("a b", json!(true)), Compatibility::None)
            .unwrap_err();
        assert!(matches!(e, SchemaError::InvalidEventType { .. }), "{e}");
    }

    #[test]
    fn backward_compatibility_is_enforced_only_when_asked() {
        let mut c = Catalog::default();
        c.register(
            NewDefinition::new("r", refund_schema())
                .example(json!({"refundId": "a", "amount": 0.5})),
            Compatibility::None,
        )
        .unwrap();
        let mut stricter = refund_schema();
        stricter["required"] = json!(["refundId", "amount", "reason"]);
        let e = c
            .prepare(
                NewDefinition::new("r", stricter.clone()),
                Compatibility::Backward,
            )
            .unwrap_err();
        assert!(e.to_string().contains("reason"), "{e}");
        assert!(c
            .prepare(NewDefinition::new("r", stricter), Compatibility::None)
            .is_ok());
        let mut integer = refund_schema();
        integer["properties"]["amount"]["type"] = json!("integer");
        let e = c
            .prepare(NewDefinition::new("r", integer), Compatibility::Backward)
            .unwrap_err();
        assert!(e.to_string().contains("amount"), "{e}");
        let mut constrained = refund_schema();
        constrained["properties"]["reason"] = json!({"type": "string"});
        let e = c
            .prepare(
                NewDefinition::new("r", constrained),
                Compatibility::Backward,
            )
            .unwrap_err();
        assert!(e.to_string().contains("reason"), "{e}");
        let mut looser = refund_schema();
        looser["properties"]["note"] = json!({"description": "free text"});
        looser["properties"]["amount"]["minimum"] = json!(-100);
        assert_eq!(
            c.prepare(NewDefinition::new("r", looser), Compatibility::Backward)
                .unwrap()
                .version,
            2
        );
    }

    #[test]
    fn dotted_paths_follow_the_document() {
        let doc = json!({"a": [{"b/c": 1}], "0": {"x": 1}});
        assert_eq!(dotted_path(&doc, "/a/0/b~1c"), "a[0].b/c");
        assert_eq!(dotted_path(&doc, "/0/x"), "0.x");
        assert_eq!(dotted_path(&doc, ""), "");
    }
}

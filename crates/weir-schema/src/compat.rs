//! Backward compatibility of two JSON Schemas: does the new one accept
//! every payload the old one accepted?
//!
//! Deciding that in general is hard, so the check is structural and
//! conservative over the keywords event schemas use — `type`, `enum`,
//! `const`, `properties`, `required`, `additionalProperties`, `items`,
//! numeric bounds, length and size bounds, `pattern`, `format` — and any
//! other keyword (`patternProperties`, `prefixItems`, `allOf`, `$ref`, …)
//! must be the same in both. Each rule only lets through a change that
//! cannot refuse an old payload:
//! - a type may widen (`integer` → `number`, another type added), never narrow;
//! - `enum` may gain values; `const` must stay;
//! - no property may become required;
//! - a property may be added where the old schema closed the object
//!   (`additionalProperties: false`) or where the new property accepts
//!   whatever the old schema let through under that name (as Confluent's
//!   registry: adding a constrained property to an open object could refuse
//!   old payloads that used the name);
//! - a property may be removed only where additional properties stay allowed;
//! - bounds may loosen (`minimum` down, `maxLength` up, …), never tighten;
//! - `additionalProperties: false` may not be introduced.
//!
//! Property tests check soundness: whenever the check passes, every
//! generated payload valid under the old schema is valid under the new.

use serde_json::{Map, Value};

/// What makes `new` refuse payloads `old` accepted; empty when none was
/// found.
pub fn backward_incompatibilities(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(old, new, "", &mut out);
    out
}

const IGNORED: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Lower bounds: the new one must not be above the old one.
const LOWER: &[&str] = &[
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
/// Upper bounds: the new one must not be below the old one.
const UPPER: &[&str] = &[
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];
/// Keywords that must not change (or appear) at all.
const FIXED: &[&str] = &["pattern", "format", "multipleOf", "uniqueItems"];

fn check(old: &Value, new: &Value, at: &str, out: &mut Vec<String>) {
    if old == new || accepts_everything(new) || old == &Value::Bool(false) {
        return;
    }
    let (Some(o), Some(n)) = (as_object(old), as_object(new)) else {
        // `new` is `false`, or one of them is not a schema object.
        out.push(format!(
            "{}: the new schema refuses what the old one accepted",
            place(at)
        ));
        return;
    };
    let empty = Map::new();
    let o = o.unwrap_or(&empty);
    let n = n.unwrap_or(&empty);

    types(o, n, at, out);
    if let Some(ne) = n.get("enum").and_then(Value::as_array) {
        let old_values: Option<Vec<&Value>> = match (o.get("enum"), o.get("const")) {
            (Some(Value::Array(v)), _) => Some(v.iter().collect()),
            (_, Some(c)) => Some(vec![c]),
            _ => None,
        };
        match old_values {
            Some(vals) if vals.iter().all(|v| ne.contains(v)) => {}
            _ => out.push(format!("{}: enum lost values or was added", place(at))),
        }
    }
    if let Some(nc) = n.get("const") {
        if o.get("const") != Some(nc) {
            out.push(format!("{}: const added or changed", place(at)));
        }
    }
    for k in LOWER {
        bound(o, n, k, at, out, |old, new| new <= old);
    }
    for k in UPPER {
        bound(o, n, k, at, out, |old, new| new >= old);
    }
    for k in FIXED {
        if n.get(*k).is_some() && o.get(*k) != n.get(*k) {
            out.push(format!("{}: {k} added or changed", place(at)));
        }
    }
    objects(o, n, at, out);
    if let Some(ni) = n.get("items") {
        let oi = o.get("items").unwrap_or(&Value::Bool(true));
        check(oi, ni, &format!("{at}[]"), out);
    }
    let handled = |k: &str| {
        IGNORED.contains(&k)
            || LOWER.contains(&k)
            || UPPER.contains(&k)
            || FIXED.contains(&k)
            || matches!(
                k,
                "type"
                    | "enum"
                    | "const"
                    | "properties"
                    | "required"
                    | "additionalProperties"
                    | "items"
            )
    };
    // Any other keyword must be the same in both: added, removed or
    // changed, its effect cannot be checked (removing `prefixItems`
    // changes what `items` applies to, for instance).
    for k in o.keys().chain(n.keys()) {
        if !handled(k) && o.get(k) != n.get(k) {
            out.push(format!(
                "{}: keyword {k} added, removed or changed (its compatibility cannot be checked)",
                place(at)
            ));
            break;
        }
    }
}

fn objects(o: &Map<String, Value>, n: &Map<String, Value>, at: &str, out: &mut Vec<String>) {
    let strs = |m: &Map<String, Value>| -> Vec<String> {
        m.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_required = strs(o);
    for r in strs(n) {
        if !old_required.contains(&r) {
            out.push(format!(
                "{}: field {r} became required",
                place(&field(at, &r))
            ));
        }
    }
    let empty = Map::new();
    let op = o
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let np = n
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let true_schema = Value::Bool(true);
    let old_extra = o.get("additionalProperties").unwrap_or(&true_schema);
    let new_extra = n.get("additionalProperties").unwrap_or(&true_schema);
    // With `patternProperties` (kept the same: see the other keywords), a
    // property name may fall under a pattern: adding or removing a
    // declared property cannot be checked here.
    let patterns = |m: &Map<String, Value>| {
        m.get("patternProperties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty())
    };
    if patterns(o) || patterns(n) {
        let (ok, nk): (Vec<&String>, Vec<&String>) = (op.keys().collect(), np.keys().collect());
        if ok != nk {
            out.push(format!(
                "{}: properties added or removed beside patternProperties (cannot be checked)",
                place(at)
            ));
        }
    }
    for (name, ns) in np {
        match op.get(name) {
            Some(os) => check(os, ns, &field(at, name), out),
            // A new property must accept what the old schema let through
            // under its name: anything when the old object was open,
            // nothing when it was closed.
            None => check(old_extra, ns, &field(at, name), out),
        }
    }
    for (name, os) in op {
        if !np.contains_key(name) {
            check(os, new_extra, &field(at, name), out);
        }
    }
    if new_extra != &true_schema && old_extra != new_extra {
        check(old_extra, new_extra, &format!("{at}.*"), out);
    }
}

fn types(o: &Map<String, Value>, n: &Map<String, Value>, at: &str, out: &mut Vec<String>) {
    let list = |m: &Map<String, Value>| -> Option<Vec<String>> {
        match m.get("type")? {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => Some(
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
            ),
            _ => Some(Vec::new()),
        }
    };
    let Some(nt) = list(n) else { return };
    let Some(ot) = list(o) else {
        out.push(format!("{}: a type was added", place(at)));
        return;
    };
    for t in ot {
        let kept = nt.contains(&t) || (t == "integer" && nt.iter().any(|x| x == "number"));
        if !kept {
            out.push(format!("{}: type {t} is no longer accepted", place(at)));
        }
    }
}

fn bound(
    o: &Map<String, Value>,
    n: &Map<String, Value>,
    key: &str,
    at: &str,
    out: &mut Vec<String>,
    loose_enough: impl Fn(f64, f64) -> bool,
) {
    let Some(nv) = n.get(key) else {
        return;
    };
    // A bound that is not a number (draft 4's boolean `exclusiveMinimum`)
    // must stay as it was.
    let Some(nb) = nv.as_f64() else {
        if o.get(key) != Some(nv) {
            out.push(format!("{}: {key} added or changed", place(at)));
        }
        return;
    };
    match o.get(key).and_then(Value::as_f64) {
        Some(ob) if loose_enough(ob, nb) => {}
        Some(ob) => out.push(format!("{}: {key} tightened from {ob} to {nb}", place(at))),
        None => out.push(format!("{}: {key} {nb} added", place(at))),
    }
}

fn accepts_everything(s: &Value) -> bool {
    match s {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| IGNORED.contains(&k.as_str())),
        _ => false,
    }
}

/// `Some(None)` for `true`, `Some(Some(map))` for an object, `None` otherwise.
fn as_object(s: &Value) -> Option<Option<&Map<String, Value>>> {
    match s {
        Value::Bool(true) => Some(None),
        Value::Object(m) => Some(Some(m)),
        _ => None,
    }
}

fn field(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

fn place(at: &str) -> String {
    if at.is_empty() {
        "(payload)".to_string()
    } else {
        at.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn loosening_passes_and_tightening_is_named() {
        let old = json!({"type": "object", "required": ["a"], "additionalProperties": false,
            "properties": {"a": {"type": "integer", "maximum": 10}, "b": {"type": "string"}}});
        let new = json!({"type": "object", "required": ["a"],
            "properties": {"a": {"type": "number", "maximum": 20}, "c": {"enum": [1, 2]}}});
        assert_eq!(backward_incompatibilities(&old, &new), Vec::<String>::new());
        let open = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let p = backward_incompatibilities(&open, &new);
        assert!(p.iter().any(|m| m.starts_with("c:")), "{p:?}");
        let new = json!({"type": "object", "required": ["a", "b"], "additionalProperties": false,
            "properties": {"a": {"type": "integer", "maximum": 5}, "b": {"type": "string", "pattern": "x"}}});
        let p = backward_incompatibilities(&old, &new);
        assert!(p.iter().any(|m| m.contains("b became required")), "{p:?}");
        assert!(
            p.iter().any(|m| m.starts_with("a: maximum tightened")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.starts_with("b: pattern")), "{p:?}");
        // Keywords it does not model must stay as they were.
        let pp = json!({"patternProperties": {"^a": {}}, "additionalProperties": false});
        let pp_new = json!({"patternProperties": {"^a": {}}, "additionalProperties": false,
            "properties": {"ab": {"type": "integer"}}});
        assert!(!backward_incompatibilities(&pp, &pp_new).is_empty());
        let tuple = json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}});
        let no_prefix = json!({"type": "array", "items": {"type": "integer"}});
        assert!(!backward_incompatibilities(&tuple, &no_prefix).is_empty());
        let draft4 = json!({"minimum": 0});
        let exclusive = json!({"minimum": 0, "exclusiveMinimum": true});
        assert!(!backward_incompatibilities(&draft4, &exclusive).is_empty());
        let removed = json!({"type": "object", "additionalProperties": false,
            "properties": {"a": {"type": "integer", "maximum": 10}}});
        let p = backward_incompatibilities(&old, &removed);
        assert!(p.iter().any(|m| m.starts_with("b:")), "{p:?}");
    }

    // Schemas from a small grammar, payloads from a small domain: whenever
    // the check finds nothing, no payload valid under the old schema may be
    // refused by the new one.
    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!(true)),
            Just(json!({"type": "integer"})),
            Just(json!({"type": "number"})),
            Just(json!({"type": "string"})),
            Just(json!({"type": ["string", "integer"]})),
            (0i64..4).prop_map(|m| json!({"type": "integer", "minimum": m})),
            (0i64..4).prop_map(|m| json!({"maximum": m})),
            (0usize..3).prop_map(|m| json!({"type": "string", "maxLength": m})),
            prop::collection::vec(0i64..3, 1..3).prop_map(|v| json!({"enum": v})),
        ]
    }

    fn schema() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(2, 12, 3, |inner| {
            (
                prop::collection::btree_map(
                    prop_oneof![Just("a"), Just("b"), Just("c")],
                    inner.clone(),
                    0..3,
                ),
                prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 0..2),
                prop_oneof![
                    Just(None),
                    Just(Some(json!(false))),
                    inner.clone().prop_map(Some)
                ],
                prop::option::of(inner),
            )
                .prop_map(|(props, required, extra, items)| {
                    let mut m = Map::new();
                    if let (Some(items), true) = (items, props.is_empty()) {
                        m.insert("type".into(), json!("array"));
                        m.insert("items".into(), items);
                        return Value::Object(m);
                    }
                    m.insert("type".into(), json!("object"));
                    m.insert("properties".into(), json!(props));
                    m.insert("required".into(), json!(required));
                    if let Some(e) = extra {
                        m.insert("additionalProperties".into(), e);
                    }
                    Value::Object(m)
                })
        })
    }

    fn payload() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            (-1i64..5).prop_map(|i| json!(i)),
            Just(json!(1.5)),
            prop_oneof![Just(""), Just("x"), Just("xyz")].prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                prop::collection::btree_map(
                    prop_oneof![Just("a"), Just("b"), Just("c")],
                    inner.clone(),
                    0..3
                )
                .prop_map(|m| json!(m)),
                prop::collection::vec(inner, 0..3).prop_map(Value::Array),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn a_compatible_new_schema_accepts_every_old_payload(
            old in schema(), new in schema(), payloads in prop::collection::vec(payload(), 1..12)
        ) {
            if backward_incompatibilities(&old, &new).is_empty() {
                let (vo, vn) = (jsonschema::validator_for(&old).unwrap(), jsonschema::validator_for(&new).unwrap());
                for p in payloads {
                    prop_assert!(
                        !vo.is_valid(&p) || vn.is_valid(&p),
                        "old {old} accepts {p}, new {new} refuses it"
                    );
                }
            }
        }

        #[test]
        fn a_schema_is_compatible_with_itself_and_with_true(s in schema()) {
            prop_assert!(backward_incompatibilities(&s, &s).is_empty());
            prop_assert!(backward_incompatibilities(&s, &json!(true)).is_empty());
        }
    }
}

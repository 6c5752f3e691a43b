//! Evaluating expressions against what is known: at plan time some values
//! are unknown until apply; at apply time everything must be known.

use std::collections::BTreeSet;

use crate::config::{Expr, Part, Reference, Resource};
use crate::provider::{self, AttrSchema, AttrType, KindDef};
use crate::{Attrs, Value};

/// The value of a referenced attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The value is known now.
    Known(Value),
    /// Known only after apply.
    Unknown,
    /// The resource or attribute has no value.
    Missing,
}

/// Where references get their values.
pub trait Scope {
    /// The value of attribute `attr` (`id` included) of the resource at address
    /// `resource`.
    fn attr(&self, resource: &str, attr: &str) -> Lookup;
    /// The region's availability zones, sorted by name.
    fn azs(&self) -> &[String];
}

/// A reference that cannot be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// `${az[index]}` past the end of the region's availability zones.
    #[error("`${{az[{index}]}}`: the region has only {count} available availability zones")]
    AzOutOfRange {
        /// The index written in `${az[index]}`.
        index: usize,
        /// How many availability zones the region has available.
        count: usize,
    },
    /// A referenced resource or attribute has no value.
    #[error("`${{{reference}}}` has no value")]
    Missing {
        /// The reference as written inside `${...}`, such as `vpc.id`.
        reference: String,
    },
    /// A list or table interpolated into a string.
    #[error("`${{{reference}}}` is a list or table and cannot be interpolated into a string")]
    NotScalar {
        /// The reference as written inside `${...}`, such as `vpc.tags`.
        reference: String,
    },
    /// A reference to a sensitive value, which state keeps only as a hash.
    #[error(
        "`${{{reference}}}` is sensitive and state keeps only its hash: refer to the variable it comes from instead"
    )]
    Sealed {
        /// The reference as written inside `${...}`.
        reference: String,
    },
}

/// Whether `value` holds a sealed sensitive value anywhere.
fn holds_marker(value: &Value) -> bool {
    match value {
        Value::String(s) => crate::sensitive::is_marker(s),
        Value::Array(items) => items.iter().any(holds_marker),
        Value::Object(m) => m.values().any(holds_marker),
        _ => false,
    }
}

/// Evaluates an expression: `Ok(None)` when its value is unknown until apply.
pub fn eval(expr: &Expr, scope: &dyn Scope) -> Result<Option<Value>, EvalError> {
    eval_filling(expr, scope, None)
}

/// Evaluates an expression, writing `fill` (a text) in place of every
/// reference unknown until apply; without `fill`, `Ok(None)` as soon as one
/// is unknown. With a fill the result is always `Some`: that is how
/// `partial.rs` shows the known parts of an unknown value.
pub(super) fn eval_filling(
    expr: &Expr,
    scope: &dyn Scope,
    fill: Option<&str>,
) -> Result<Option<Value>, EvalError> {
    // The value an unknown reference stands for, or none to give up.
    let unknown = || fill.map(|f| Value::String(f.to_string()));
    Ok(match expr {
        Expr::Value(v) => Some(v.clone()),
        Expr::Ref(r) => match lookup(&r.reference, scope)? {
            Lookup::Known(v) => Some(v),
            _ => unknown(),
        },
        Expr::Template(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Text(t) => out.push_str(t),
                    Part::Ref(r) => match lookup(&r.reference, scope)? {
                        Lookup::Known(v) => match crate::config::expr::interpolate(&v) {
                            Some(s) => out.push_str(&s),
                            None => {
                                return Err(EvalError::NotScalar {
                                    reference: r.reference.to_string(),
                                });
                            }
                        },
                        _ => match fill {
                            Some(f) => out.push_str(f),
                            None => return Ok(None),
                        },
                    },
                }
            }
            Some(Value::String(out))
        }
        Expr::List(items) => {
            let mut out = Vec::new();
            for item in items {
                match eval_filling(item, scope, fill)? {
                    Some(v) => out.push(v),
                    None => return Ok(None),
                }
            }
            Some(Value::Array(out))
        }
        Expr::Table(map) => {
            let mut out = Attrs::new();
            for (k, item) in map {
                match eval_filling(item, scope, fill)? {
                    Some(v) => {
                        out.insert(k.clone(), v);
                    }
                    None => return Ok(None),
                }
            }
            Some(Value::Object(out))
        }
    })
}

fn lookup(reference: &Reference, scope: &dyn Scope) -> Result<Lookup, EvalError> {
    match reference {
        Reference::Az(index) => match scope.azs().get(*index) {
            Some(az) => Ok(Lookup::Known(Value::String(az.clone()))),
            None => Err(EvalError::AzOutOfRange {
                index: *index,
                count: scope.azs().len(),
            }),
        },
        Reference::Resource { name, attr } => match scope.attr(name, attr) {
            Lookup::Missing => Err(EvalError::Missing {
                reference: reference.to_string(),
            }),
            Lookup::Known(v) if holds_marker(&v) => Err(EvalError::Sealed {
                reference: reference.to_string(),
            }),
            other => Ok(other),
        },
    }
}

/// A resource's desired attributes: configured values evaluated, defaults
/// filled in, JSON documents parsed, and (for taggable kinds) the ownership
/// tags added. Attributes whose value is unknown until apply are listed in
/// the second part.
pub fn desired_attrs(
    resource: &Resource,
    stack_name: &str,
    scope: &dyn Scope,
) -> Result<(Attrs, BTreeSet<String>), EvalError> {
    let mut known = Attrs::new();
    let mut unknown = BTreeSet::new();
    for (name, attr) in &resource.attrs {
        match eval(&attr.expr, scope)? {
            Some(v) => {
                if resource.kind.attr(name).is_some_and(|a| a.sensitive) {
                    // Only what output hides changes (see `crate::sensitive`).
                    crate::sensitive::register(&v);
                }
                known.insert(name.clone(), normalize_attr(resource.kind, name, v));
            }
            None => {
                unknown.insert(name.clone());
            }
        }
    }
    for a in resource.kind.attrs {
        if let Some(d) = a.default
            && !resource.attrs.contains_key(a.name)
        {
            known.insert(a.name.to_string(), d.to_value());
        }
    }
    if resource.kind.taggable && !unknown.contains("tags") {
        let mut tags = match known.remove("tags") {
            Some(Value::Object(m)) => m,
            _ => Attrs::new(),
        };
        for (k, v) in provider::ownership_tags(stack_name, &resource.name) {
            tags.insert(k, Value::String(v));
        }
        known.insert("tags".to_string(), Value::Object(tags));
    }
    Ok((known, unknown))
}

/// Canonical form of attribute `name` of `kind`: by its type, then by the
/// kind's own rule if it has one. Desired and live values both go through
/// this before they are compared.
pub fn normalize_attr(kind: &KindDef, name: &str, value: Value) -> Value {
    let value = normalize(kind.attr(name).map(|a| a.ty), value);
    match kind.normalize {
        Some(f) => f(name, value),
        None => value,
    }
}

/// Brings a value into the canonical form used for comparison: JSON
/// strings parsed, list-of-table items completed with their defaults and
/// sorted (such lists are sets: rule order means nothing).
pub fn normalize(ty: Option<AttrType>, value: Value) -> Value {
    match (ty, value) {
        (Some(AttrType::Json), Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        (Some(AttrType::ObjectList(fields)), Value::Array(items)) => {
            let mut items: Vec<Value> = items.into_iter().map(|i| complete_object(fields, i)).collect();
            items.sort_by_key(|v| v.to_string());
            items.dedup();
            Value::Array(items)
        }
        (_, v) => v,
    }
}

fn complete_object(fields: &[AttrSchema], item: Value) -> Value {
    let Value::Object(mut map) = item else { return item };
    for f in fields {
        if !map.contains_key(f.name) {
            let fill = match (f.default, f.ty) {
                (Some(d), _) => d.to_value(),
                (None, AttrType::StringList) => Value::Array(Vec::new()),
                _ => continue,
            };
            map.insert(f.name.to_string(), fill);
        }
        if let (AttrType::StringList, Some(Value::Array(list))) = (f.ty, map.get_mut(f.name)) {
            list.sort_by_key(|v| v.to_string());
        }
    }
    Value::Object(map)
}

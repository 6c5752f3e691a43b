//! Checks a loaded stack against the kinds' schemas: required attributes,
//! value types, CIDR syntax, references and dependency cycles. Every
//! problem is recorded; nothing stops at the first.

use std::collections::BTreeSet;

use super::diagnostics::{Diagnostics, Span, suggest};
use super::expr::{Expr, Part, RefAt, Reference};
use super::model::Stack;
use crate::Value;
use crate::provider::{AttrSchema, AttrType, Mode};

/// Validates `stack`, recording problems in `diags`. `broken` names
/// resources whose tables were already reported as unusable.
pub fn validate(stack: &Stack, broken: &BTreeSet<String>, diags: &mut Diagnostics) {
    let v = Validator { stack, broken, diags };
    v.run();
}

struct Validator<'a> {
    stack: &'a Stack,
    broken: &'a BTreeSet<String>,
    diags: &'a mut Diagnostics,
}

impl Validator<'_> {
    fn run(mut self) {
        for resource in self.stack.resources.values() {
            for attr in resource.kind.attrs.iter().filter(|a| a.mode == Mode::Required) {
                if !resource.attrs.contains_key(attr.name) {
                    self.diags.at(
                        &resource.span,
                        format!(
                            "resource `{}` ({}) is missing required attribute `{}`",
                            resource.name, resource.kind.type_name, attr.name
                        ),
                    );
                }
            }
            for (name, attr) in &resource.attrs {
                let Some(schema) = resource.kind.attr(name) else {
                    continue;
                };
                if schema.mode == Mode::Computed {
                    continue;
                }
                self.check_type(&attr.expr, schema.ty, name, &attr.span);
                for r in attr.expr.references() {
                    self.check_reference(r, Some(&resource.name));
                }
            }
            for (dep, span) in &resource.depends_on {
                if self.stack.disabled.contains(dep) {
                    // Ordering after a resource that is switched off: nothing to wait for.
                    continue;
                }
                if dep == &resource.name {
                    self.diags
                        .at(span, format!("resource `{dep}` cannot depend on itself"));
                } else if !self.stack.resources.contains_key(dep) && !self.broken.contains(dep) {
                    self.unknown_resource(dep, span);
                }
            }
        }
        // What the machine must have for the kinds in use (for example the
        // helm program), checked once per kind before anything is applied.
        let mut checked = std::collections::BTreeSet::new();
        for resource in self.stack.resources.values() {
            if let Some(check) = resource.kind.preflight
                && checked.insert(resource.kind.type_name)
                && let Err(message) = check()
            {
                self.diags.at(
                    &resource.span,
                    format!("{} ({}): {message}", resource.name, resource.kind.type_name),
                );
            }
        }
        for output in self.stack.outputs.values() {
            for r in output.expr.references() {
                self.check_reference(r, None);
            }
        }
        // Self-references and self-dependencies are reported above: leave
        // them out here, so that they are not reported twice and do not hide
        // a cycle through other resources.
        let edges = self.stack.resources.values().flat_map(|r| {
            r.dependencies()
                .into_iter()
                .filter(|d| *d != r.name)
                .map(|d| (d, r.name.clone()))
        });
        if let Err(cycle) =
            crate::graph::ResourceGraph::from_edges(self.stack.resources.keys().cloned(), edges)
        {
            let first = cycle.members.first().and_then(|n| self.stack.resources.get(n));
            let message = format!("dependency cycle: {}", cycle.path());
            match first {
                Some(r) => self.diags.at(&r.span, message),
                None => self.diags.push(
                    0,
                    super::diagnostics::Located::in_file(&self.stack.sources[0], message),
                ),
            }
        }
    }

    fn unknown_resource(&mut self, name: &str, span: &Span) {
        let help = suggest(name, self.stack.resources.keys().map(String::as_str)).map_or_else(
            || "no resource by that name is declared".to_string(),
            |s| format!("did you mean `{s}`?"),
        );
        self.diags
            .at_with_help(span, format!("reference to unknown resource `{name}`"), help);
    }

    fn check_reference(&mut self, r: &RefAt, from: Option<&str>) {
        let Reference::Resource { name, attr } = &r.reference else {
            return;
        };
        if Some(name.as_str()) == from {
            self.diags.at(
                &r.span,
                format!("dependency cycle: `{name}` refers to itself (`${{{name}.{attr}}}`)"),
            );
            return;
        }
        let Some(target) = self.stack.resources.get(name) else {
            if self.stack.disabled.contains(name) {
                self.diags.at(
                    &r.span,
                    format!("`{name}` is disabled (`enabled = false`), so `${{{name}.{attr}}}` has no value"),
                );
            } else if !self.broken.contains(name) {
                self.unknown_resource(name, &r.span);
            }
            return;
        };
        if target.kind.attr(attr).is_none() {
            let help = suggest(attr, target.kind.attr_names()).map_or_else(
                || {
                    format!(
                        "`{}` has: {}",
                        target.kind.type_name,
                        target.kind.attr_names().join(", ")
                    )
                },
                |s| format!("did you mean `{name}.{s}`?"),
            );
            self.diags.at_with_help(
                &r.span,
                format!("`{name}` ({}) has no attribute `{attr}`", target.kind.type_name),
                help,
            );
        }
    }

    /// The type of the value a reference yields, if it can be known.
    fn ref_type(&self, r: &RefAt) -> Option<AttrType> {
        match &r.reference {
            Reference::Az(_) => Some(AttrType::String),
            Reference::Resource { name, attr } => {
                self.stack.resources.get(name)?.kind.attr(attr).map(|a| a.ty)
            }
        }
    }

    fn wrong_type(&mut self, span: &Span, name: &str, ty: AttrType, found: &str) {
        self.diags.at(
            span,
            format!(
                "wrong type for `{name}`: expected {}, found {found}",
                ty.describe()
            ),
        );
    }

    fn check_type(&mut self, expr: &Expr, ty: AttrType, name: &str, span: &Span) {
        match expr {
            Expr::Value(v) => self.check_value(v, ty, name, span),
            Expr::Ref(r) => {
                let Some(found) = self.ref_type(r) else { return };
                let compatible = match (ty, found) {
                    (AttrType::String | AttrType::Cidr, AttrType::String | AttrType::Cidr) => true,
                    (AttrType::Json, _) => true,
                    (a, b) => std::mem::discriminant(&a) == std::mem::discriminant(&b),
                };
                if !compatible {
                    self.wrong_type(
                        &r.span,
                        name,
                        ty,
                        &format!("`{}`, which is {}", r.reference, found.describe()),
                    );
                }
            }
            Expr::Template(parts) => {
                for part in parts {
                    if let Part::Ref(r) = part
                        && let Some(found) = self.ref_type(r)
                        && !matches!(
                            found,
                            AttrType::String | AttrType::Cidr | AttrType::Int | AttrType::Bool
                        )
                    {
                        self.diags.at(
                            &r.span,
                            format!(
                                "`{}` is {} and cannot be interpolated into a string",
                                r.reference,
                                found.describe()
                            ),
                        );
                    }
                }
                if !matches!(ty, AttrType::String | AttrType::Cidr | AttrType::Json) {
                    self.wrong_type(span, name, ty, "a string");
                }
            }
            Expr::List(items) => match ty {
                AttrType::StringList => items
                    .iter()
                    .for_each(|i| self.check_type(i, AttrType::String, name, span)),
                AttrType::ObjectList(_) => items.iter().for_each(|i| match i {
                    // A literal item (one with no references) is one table of the list.
                    Expr::Value(v) => self.check_value(&Value::Array(vec![v.clone()]), ty, name, span),
                    _ => self.check_type(i, ty, name, span),
                }),
                AttrType::Json => {}
                _ => self.wrong_type(span, name, ty, "a list"),
            },
            Expr::Table(map) => match ty {
                AttrType::StringMap => map
                    .values()
                    .for_each(|e| self.check_type(e, AttrType::String, name, span)),
                AttrType::Json => {}
                AttrType::ObjectList(fields) => {
                    let keys: Vec<&String> = map.keys().collect();
                    self.check_object_keys(&keys, fields, name, span);
                    for (k, e) in map {
                        if let Some(f) = fields.iter().find(|f| f.name == k) {
                            self.check_type(e, f.ty, &format!("{name}.{k}"), span);
                        }
                    }
                }
                _ => self.wrong_type(span, name, ty, "a table"),
            },
        }
    }

    fn check_object_keys(&mut self, keys: &[&String], fields: &[AttrSchema], name: &str, span: &Span) {
        for k in keys {
            if !fields.iter().any(|f| f.name == k.as_str()) {
                let help = suggest(k, fields.iter().map(|f| f.name)).map_or_else(
                    || {
                        format!(
                            "accepted: {}",
                            fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                        )
                    },
                    |s| format!("did you mean `{s}`?"),
                );
                self.diags
                    .at_with_help(span, format!("unknown attribute `{k}` in `{name}`"), help);
            }
        }
        for f in fields.iter().filter(|f| f.mode == Mode::Required) {
            if !keys.iter().any(|k| k.as_str() == f.name) {
                self.diags.at(
                    span,
                    format!("an item of `{name}` is missing required attribute `{}`", f.name),
                );
            }
        }
    }

    fn check_value(&mut self, v: &Value, ty: AttrType, name: &str, span: &Span) {
        let found = describe_value(v);
        match ty {
            AttrType::String if v.is_string() => {}
            AttrType::Bool if v.is_boolean() => {}
            AttrType::Int if v.is_i64() => {}
            AttrType::Cidr => match v.as_str() {
                Some(s) => {
                    if let Err(e) = parse_cidr(s) {
                        self.diags
                            .at(span, format!("invalid CIDR block `{s}` for `{name}`: {e}"));
                    }
                }
                None => self.wrong_type(span, name, ty, found),
            },
            AttrType::StringList => match v.as_array() {
                Some(items) if items.iter().all(Value::is_string) => {}
                Some(_) => self.wrong_type(span, name, ty, "a list with non-string items"),
                None => self.wrong_type(span, name, ty, found),
            },
            AttrType::StringMap => match v.as_object() {
                Some(map) if map.values().all(Value::is_string) => {}
                Some(_) => self.wrong_type(span, name, ty, "a table with non-string values"),
                None => self.wrong_type(span, name, ty, found),
            },
            AttrType::Json => match v {
                Value::Object(_) | Value::Array(_) => {}
                Value::String(s) => {
                    if let Err(e) = serde_json::from_str::<Value>(s) {
                        self.diags.at(span, format!("`{name}` is not valid JSON: {e}"));
                    }
                }
                _ => self.wrong_type(span, name, ty, found),
            },
            AttrType::ObjectList(fields) => match v {
                Value::Array(items) => {
                    for item in items {
                        match item.as_object() {
                            Some(map) => {
                                let keys: Vec<&String> = map.keys().collect();
                                self.check_object_keys(&keys, fields, name, span);
                                for (k, val) in map {
                                    if let Some(f) = fields.iter().find(|f| f.name == k) {
                                        self.check_value(val, f.ty, &format!("{name}.{k}"), span);
                                    }
                                }
                            }
                            None => self.wrong_type(span, name, ty, "a list with non-table items"),
                        }
                    }
                }
                _ => self.wrong_type(span, name, ty, found),
            },
            _ => self.wrong_type(span, name, ty, found),
        }
    }
}

fn describe_value(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// Parses an IPv4 CIDR block, requiring the host bits to be zero (AWS
/// rejects a block like `10.0.0.1/16`).
pub fn parse_cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or("expected address/prefix-length, like 10.0.0.0/16")?;
    let addr: std::net::Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("`{len}` is not a prefix length"))?;
    if len > 32 {
        return Err(format!("prefix length {len} is more than 32"));
    }
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    if u32::from(addr) & !mask != 0 {
        let network = std::net::Ipv4Addr::from(u32::from(addr) & mask);
        return Err(format!("host bits are set; the network is {network}/{len}"));
    }
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use super::parse_cidr;

    #[test]
    fn cidr_parsing() {
        assert!(parse_cidr("10.192.0.0/16").is_ok());
        assert!(parse_cidr("0.0.0.0/0").is_ok());
        assert!(parse_cidr("10.192.10.0/33").is_err());
        assert!(parse_cidr("10.192.300.0/24").is_err());
        assert!(
            parse_cidr("10.192.10.1/24")
                .unwrap_err()
                .contains("10.192.10.0/24")
        );
        assert!(parse_cidr("10.192.10.0").is_err());
    }
}

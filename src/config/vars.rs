//! Variable declarations and the checks of every value a variable gets.
//!
//! A `[vars]` entry is either a plain default (`name = value`: the type is
//! the default's) or a declaration table:
//!
//! ```toml
//! [vars.v2_weight]
//! default = 0
//! type = "integer"          # string, integer (or number), bool, list(string), ...
//! min = 0                   # integers only (each item of a list(integer))
//! max = 100
//! allowed = [0, 50, 100]    # the only values it may take (each item of a list)
//! description = "Percent of the traffic for v2"
//! ```
//!
//! A declaration without a default makes the variable required: it must be
//! given with `--var`. A later file (an includer) may declare a variable
//! again: the fields it gives replace the earlier ones, the others stay. The
//! checks here are pure; the loader records their messages at the right
//! place (the declaration, the default, or the `type`).

use std::sync::Arc;

use toml::Spanned;
use toml::de::DeValue;

use super::diagnostics::{Diagnostics, SourceFile, Span, suggest};
use crate::Value;

/// Keys of a declaration table.
const DECL_KEYS: &[&str] = &[
    "default",
    "type",
    "min",
    "max",
    "allowed",
    "description",
    "sensitive",
];

/// The type of a variable's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarType {
    /// Text.
    String,
    /// A whole number (`integer`, or its alias `number`).
    Integer,
    /// `true` or `false`.
    Bool,
    /// A list whose items all have the inner (scalar) type.
    List(Box<VarType>),
}

impl VarType {
    /// The type named `s`: `string`, `integer` (or `number`), `bool` (or
    /// `boolean`), `list(<scalar>)`, `list` (a list of strings).
    pub fn parse(s: &str) -> Option<VarType> {
        let s = s.trim();
        let scalar = |s: &str| match s.trim() {
            "string" => Some(VarType::String),
            "integer" | "number" => Some(VarType::Integer),
            "bool" | "boolean" => Some(VarType::Bool),
            _ => None,
        };
        if s == "list" {
            return Some(VarType::List(Box::new(VarType::String)));
        }
        if let Some(inner) = s.strip_prefix("list(").and_then(|r| r.strip_suffix(')')) {
            return scalar(inner).map(|t| VarType::List(Box::new(t)));
        }
        scalar(s)
    }

    /// The type of a default given without a declared type; `None` for a
    /// value no variable can hold (a table, a list of lists, a mixed list).
    pub fn of(value: &Value) -> Option<VarType> {
        match value {
            Value::String(_) => Some(VarType::String),
            Value::Number(n) if n.is_i64() => Some(VarType::Integer),
            Value::Bool(_) => Some(VarType::Bool),
            Value::Array(items) => {
                let Some(first) = items.first() else {
                    return Some(VarType::List(Box::new(VarType::String)));
                };
                let inner = VarType::of(first).filter(|t| !matches!(t, VarType::List(_)))?;
                items
                    .iter()
                    .all(|i| inner.holds(i))
                    .then(|| VarType::List(Box::new(inner)))
            }
            _ => None,
        }
    }

    /// Whether `value` has this type (items of a list included).
    pub fn holds(&self, value: &Value) -> bool {
        match (self, value) {
            (VarType::String, Value::String(_)) | (VarType::Bool, Value::Bool(_)) => true,
            (VarType::Integer, Value::Number(n)) => n.is_i64(),
            (VarType::List(inner), Value::Array(items)) => items.iter().all(|i| inner.holds(i)),
            _ => false,
        }
    }

    /// "a string", "an integer", "true or false", "a list of strings".
    fn expected(&self) -> String {
        match self {
            VarType::String => "a string".to_string(),
            VarType::Integer => "an integer".to_string(),
            VarType::Bool => "true or false".to_string(),
            VarType::List(inner) => format!("a list of {}", inner.plural()),
        }
    }

    fn plural(&self) -> &'static str {
        match self {
            VarType::String => "strings",
            VarType::Integer => "integers",
            VarType::Bool => "booleans",
            VarType::List(_) => "lists",
        }
    }

    /// Reads a `--var` value as this type: booleans and integers as
    /// written, strings verbatim, lists as a TOML array (`["a", "b"]`).
    pub fn parse_cli(&self, raw: &str) -> Result<Value, String> {
        match self {
            VarType::String => Ok(Value::String(raw.to_string())),
            VarType::Bool => raw.parse::<bool>().map(Value::Bool).map_err(|_| self.expected()),
            VarType::Integer => raw.parse::<i64>().map(Value::from).map_err(|_| self.expected()),
            VarType::List(_) => {
                let wanted = || format!("{}, written as a TOML array like [\"a\", \"b\"]", self.expected());
                let parsed = DeValue::parse(raw).map_err(|_| wanted())?;
                let value = de_value(parsed.get_ref()).map_err(|_| wanted())?;
                if self.holds(&value) {
                    Ok(value)
                } else {
                    Err(wanted())
                }
            }
        }
    }
}

impl std::fmt::Display for VarType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarType::String => f.write_str("string"),
            VarType::Integer => f.write_str("integer"),
            VarType::Bool => f.write_str("bool"),
            VarType::List(inner) => write!(f, "list({inner})"),
        }
    }
}

/// A variable as declared (after every file that declares it).
#[derive(Debug, Clone)]
pub struct VarDecl {
    /// The variable's name, as in `${var.<name>}`.
    pub name: String,
    /// The type of its values.
    pub ty: VarType,
    /// Whether the type was written (`type = ...`) rather than taken from
    /// the default.
    pub ty_declared: bool,
    /// Where the type was decided: the `type` value, or the default it was
    /// taken from.
    pub ty_span: Span,
    /// The default; `None` makes the variable required.
    pub default: Option<Value>,
    /// Where the default is written.
    pub default_span: Option<Span>,
    /// Smallest value allowed (integers, or each item of a list of integers).
    pub min: Option<i64>,
    /// Largest value allowed.
    pub max: Option<i64>,
    /// The only values allowed (each item, for a list); empty for any.
    pub allowed: Vec<Value>,
    /// What the variable is for.
    pub description: Option<String>,
    /// Its value is a secret (`sensitive = true`): never shown in plans,
    /// progress, logs or errors, and kept out of state (see
    /// [`crate::sensitive`]).
    pub sensitive: bool,
    /// Where the variable is declared: its name in the declaration that
    /// last set its type or constraints (or its first plain default).
    pub span: Span,
}

impl VarDecl {
    /// What a value must be, in words: "an integer from 0 to 100",
    /// "one of \"a\", \"b\"", "a list of integers of at least 1".
    pub fn describe(&self) -> String {
        let base = self.ty.expected();
        let mut out = base;
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => out.push_str(&format!(" from {lo} to {hi}")),
            (Some(lo), None) => out.push_str(&format!(" of at least {lo}")),
            (None, Some(hi)) => out.push_str(&format!(" of at most {hi}")),
            (None, None) => {}
        }
        if !self.allowed.is_empty() {
            let list = self
                .allowed
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            match self.ty {
                VarType::List(_) => out.push_str(&format!(" each one of {list}")),
                _ => out = format!("one of {list}"),
            }
        }
        out
    }

    /// Whether the declaration restricts values beyond their type.
    pub fn constrained(&self) -> bool {
        self.min.is_some() || self.max.is_some() || !self.allowed.is_empty()
    }

    /// Checks `value` against the type and the constraints: `Err` says
    /// what is wrong with it and what the variable accepts.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        if !self.ty.holds(value) {
            return Err(format!("`{}` must be {}", self.name, self.describe()));
        }
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for item in items {
            let out_of_range = item
                .as_i64()
                .is_some_and(|n| self.min.is_some_and(|lo| n < lo) || self.max.is_some_and(|hi| n > hi));
            let not_allowed = !self.allowed.is_empty() && !self.allowed.contains(item);
            if out_of_range || not_allowed {
                let what = if out_of_range {
                    "out of range"
                } else {
                    "not allowed"
                };
                return Err(format!(
                    "{item} is {what}: `{}` must be {}",
                    self.name,
                    self.describe()
                ));
            }
        }
        Ok(())
    }
}

/// Converts a TOML value a variable may hold: a string, integer, boolean
/// or a list of those.
pub fn de_value(v: &DeValue<'_>) -> Result<Value, String> {
    match v {
        DeValue::String(s) => Ok(Value::String(s.to_string())),
        DeValue::Boolean(b) => Ok(Value::Bool(*b)),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(Value::from)
            .map_err(|_| "integer out of range".to_string()),
        DeValue::Array(items) => items
            .iter()
            .map(|i| match i.get_ref() {
                DeValue::Array(_) | DeValue::Table(_) => {
                    Err("a list may hold only strings, integers or booleans".to_string())
                }
                other => de_value(other),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Err(format!(
            "a variable holds a string, integer, boolean or a list of them, not a {}",
            other.type_str()
        )),
    }
}

/// Reads one `[vars]` entry of `file` (`key = value`), merging it into the
/// declaration an earlier file made (`prior`). `None` after recording
/// errors that leave no usable declaration.
pub fn declare(
    file: &Arc<SourceFile>,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    prior: Option<VarDecl>,
    diags: &mut Diagnostics,
) -> Option<VarDecl> {
    let name = key.get_ref().to_string();
    let name_span = Span::new(file, key.span());
    let value_span = Span::new(file, value.span());
    let Some(table) = value.get_ref().as_table() else {
        // The plain form: a default only.
        let default = match de_value(value.get_ref()) {
            Ok(v) => v,
            Err(m) => {
                diags.at(&value_span, format!("variable `{name}`: {m}"));
                return None;
            }
        };
        let decl = match prior {
            Some(mut d) => {
                d.default = Some(default);
                d.default_span = Some(value_span);
                d
            }
            None => {
                let Some(ty) = VarType::of(&default) else {
                    diags.at(
                        &value_span,
                        format!("variable `{name}`: a list must hold items of one type (strings, integers or booleans)"),
                    );
                    return None;
                };
                VarDecl {
                    name,
                    ty,
                    ty_declared: false,
                    ty_span: value_span.clone(),
                    default: Some(default),
                    default_span: Some(value_span),
                    min: None,
                    max: None,
                    allowed: Vec::new(),
                    description: None,
                    sensitive: false,
                    span: name_span,
                }
            }
        };
        return Some(decl);
    };

    // The table form.
    let mut ok = true;
    let mut default: Option<(Value, Span)> = None;
    let mut ty: Option<(VarType, Span)> = None;
    let mut min: Option<(i64, Span)> = None;
    let mut max: Option<(i64, Span)> = None;
    let mut allowed: Option<(Vec<Value>, Span)> = None;
    let mut description: Option<String> = None;
    let mut sensitive = false;
    for (k, v) in table.iter() {
        let field = k.get_ref().as_ref();
        let vspan = Span::new(file, v.span());
        match field {
            "default" => match de_value(v.get_ref()) {
                Ok(value) => default = Some((value, vspan)),
                Err(m) => {
                    diags.at(&vspan, format!("default of `{name}`: {m}"));
                    ok = false;
                }
            },
            "type" => match v.get_ref().as_str().map(|s| (s, VarType::parse(s))) {
                Some((_, Some(t))) => ty = Some((t, vspan)),
                Some((s, None)) => {
                    diags.at_with_help(
                        &vspan,
                        format!("unknown type `{s}` for variable `{name}`"),
                        "types: string, integer (or number), bool, list(string), list(integer), list(bool)",
                    );
                    ok = false;
                }
                None => {
                    diags.at(
                        &vspan,
                        format!("`type` of `{name}` is written as a string, like \"integer\""),
                    );
                    ok = false;
                }
            },
            "min" | "max" => match v.get_ref() {
                DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) if field == "min" => min = Some((n, vspan)),
                    Ok(n) => max = Some((n, vspan)),
                    Err(_) => {
                        diags.at(&vspan, "integer out of range");
                        ok = false;
                    }
                },
                other => {
                    diags.at(
                        &vspan,
                        format!(
                            "`{field}` of `{name}` must be an integer, found {}",
                            other.type_str()
                        ),
                    );
                    ok = false;
                }
            },
            "allowed" => match v.get_ref() {
                DeValue::Array(_) => match de_value(v.get_ref()) {
                    Ok(Value::Array(items)) if !items.is_empty() => allowed = Some((items, vspan)),
                    Ok(_) => {
                        diags.at(
                            &vspan,
                            format!("`allowed` of `{name}` is empty: no value could be given"),
                        );
                        ok = false;
                    }
                    Err(m) => {
                        diags.at(&vspan, format!("`allowed` of `{name}`: {m}"));
                        ok = false;
                    }
                },
                other => {
                    diags.at(
                        &vspan,
                        format!(
                            "`allowed` of `{name}` must be a list of values, found {}",
                            other.type_str()
                        ),
                    );
                    ok = false;
                }
            },
            "sensitive" => match v.get_ref() {
                DeValue::Boolean(b) => sensitive = *b,
                other => {
                    diags.at(
                        &vspan,
                        format!(
                            "`sensitive` of `{name}` must be true or false, found {}",
                            other.type_str()
                        ),
                    );
                    ok = false;
                }
            },
            "description" => match v.get_ref().as_str() {
                Some(s) => description = Some(s.to_string()),
                None => {
                    diags.at(&vspan, format!("`description` of `{name}` must be a string"));
                    ok = false;
                }
            },
            other => {
                let kspan = Span::new(file, k.span());
                let help = suggest(other, DECL_KEYS.iter().copied()).map_or_else(
                    || format!("a variable declaration has {}", DECL_KEYS.join(", ")),
                    |s| format!("did you mean `{s}`?"),
                );
                diags.at_with_help(
                    &kspan,
                    format!("unknown key `{other}` in variable `{name}`"),
                    help,
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let constrains = ty.is_some() || min.is_some() || max.is_some() || allowed.is_some();
    let mut decl = match prior {
        Some(d) => d,
        None => {
            let (t, tspan, declared) = match (&ty, &default) {
                (Some((t, s)), _) => (t.clone(), s.clone(), true),
                (None, Some((v, s))) => match VarType::of(v) {
                    Some(t) => (t, s.clone(), false),
                    None => {
                        diags.at(
                            s,
                            format!("default of `{name}`: a list must hold items of one type"),
                        );
                        return None;
                    }
                },
                (None, None) => {
                    diags.at_with_help(
                        &name_span,
                        format!("variable `{name}` has neither a `type` nor a `default`"),
                        "declare `type = \"string\"` (or another type) to make it required, or give a `default`",
                    );
                    return None;
                }
            };
            VarDecl {
                name: name.clone(),
                ty: t,
                ty_declared: declared,
                ty_span: tspan,
                default: None,
                default_span: None,
                min: None,
                max: None,
                allowed: Vec::new(),
                description: None,
                sensitive: false,
                span: name_span.clone(),
            }
        }
    };
    if let Some((t, s)) = ty {
        decl.ty = t;
        decl.ty_span = s;
        decl.ty_declared = true;
    }
    if let Some((v, s)) = default {
        decl.default = Some(v);
        decl.default_span = Some(s);
    }
    if let Some((n, _)) = min {
        decl.min = Some(n);
    }
    if let Some((n, _)) = max {
        decl.max = Some(n);
    }
    if let Some((items, _)) = allowed.clone() {
        decl.allowed = items;
    }
    if description.is_some() {
        decl.description = description;
    }
    // Once a file says a variable is secret, no other file makes it less so.
    decl.sensitive |= sensitive;
    if constrains {
        decl.span = name_span;
    }
    // The declaration itself must make sense.
    let integers = matches!(&decl.ty, VarType::Integer)
        || matches!(&decl.ty, VarType::List(inner) if **inner == VarType::Integer);
    for (field, bound) in [("min", &min), ("max", &max)] {
        if let Some((_, s)) = bound
            && !integers
        {
            diags.at(
                s,
                format!("`{field}` applies to integers; `{name}` is {}", decl.ty),
            );
            ok = false;
        }
    }
    if let (Some(lo), Some(hi)) = (decl.min, decl.max)
        && lo > hi
    {
        let at = max.as_ref().or(min.as_ref()).map_or(&decl.span, |(_, s)| s);
        diags.at(
            at,
            format!("`{name}` has min {lo} above max {hi}: no value could be given"),
        );
        ok = false;
    }
    if let Some((items, s)) = &allowed {
        let item_ty = match &decl.ty {
            VarType::List(inner) => (**inner).clone(),
            t => t.clone(),
        };
        if let Some(bad) = items.iter().find(|i| !item_ty.holds(i)) {
            diags.at(
                s,
                format!(
                    "`allowed` of `{name}` holds {bad}, which is not {}",
                    item_ty.expected()
                ),
            );
            ok = false;
        }
    }
    ok.then_some(decl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(path: &str, text: &str) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            path: path.into(),
            text: text.to_string(),
        })
    }

    /// Declares every entry of `text`'s `[vars]` in order; the declarations
    /// and the error messages.
    fn declare_all(texts: &[&str]) -> (Vec<VarDecl>, String) {
        let mut diags = Diagnostics::default();
        let mut decls: std::collections::BTreeMap<String, VarDecl> = Default::default();
        for (i, text) in texts.iter().enumerate() {
            // The first file is v.toml, the ones after it (its includers) w.toml.
            let f = file(if i == 0 { "v.toml" } else { "w.toml" }, text);
            let table = toml::de::DeTable::parse(&f.text).unwrap();
            let vars = table.get_ref().get("vars").unwrap();
            for (k, v) in vars.get_ref().as_table().unwrap().iter() {
                let prior = decls.remove(k.get_ref().as_ref());
                if let Some(d) = declare(&f, k, v, prior, &mut diags) {
                    decls.insert(d.name.clone(), d);
                }
            }
        }
        let messages = match diags.finish(std::path::Path::new("v.toml")) {
            Ok(()) => String::new(),
            Err(e) => e.messages(),
        };
        (decls.into_values().collect(), messages)
    }

    fn weight() -> VarDecl {
        let (mut d, m) = declare_all(&[
            "[vars.w]\ndefault = 0\ntype = \"integer\"\nmin = 0\nmax = 100\ndescription = \"v2 share\"\n",
        ]);
        assert_eq!(m, "");
        d.remove(0)
    }

    #[test]
    fn types_parse_and_hold_their_values() {
        assert_eq!(VarType::parse("number"), Some(VarType::Integer));
        assert_eq!(
            VarType::parse("list(integer)"),
            Some(VarType::List(Box::new(VarType::Integer)))
        );
        assert_eq!(VarType::parse("list(list(string))"), None);
        assert_eq!(VarType::parse("float"), None);
        assert!(VarType::Integer.holds(&json!(3)));
        assert!(!VarType::Integer.holds(&json!(3.5)));
        assert!(!VarType::Integer.holds(&json!("3")));
        assert!(VarType::parse("list").unwrap().holds(&json!(["a"])));
        assert!(!VarType::parse("list").unwrap().holds(&json!(["a", 1])));
        assert_eq!(VarType::of(&json!(["a", 1])), None);
        assert_eq!(VarType::of(&json!(true)), Some(VarType::Bool));
    }

    #[test]
    fn range_checks_name_the_variable_and_its_range() {
        let w = weight();
        assert_eq!(w.describe(), "an integer from 0 to 100");
        assert!(w.check(&json!(0)).is_ok());
        assert!(w.check(&json!(100)).is_ok());
        assert_eq!(
            w.check(&json!(150)).unwrap_err(),
            "150 is out of range: `w` must be an integer from 0 to 100"
        );
        assert_eq!(
            w.check(&json!(-1)).unwrap_err(),
            "-1 is out of range: `w` must be an integer from 0 to 100"
        );
        assert_eq!(
            w.check(&json!(true)).unwrap_err(),
            "`w` must be an integer from 0 to 100"
        );
        assert_eq!(w.description.as_deref(), Some("v2 share"));
    }

    #[test]
    fn one_sided_bounds_and_allowed_values() {
        let (d, m) = declare_all(&[
            "[vars]\nn = { default = 3, min = 1 }\nm = { default = 1, max = 6 }\nmode = { default = \"a\", allowed = [\"a\", \"b\"] }\nports = { default = [80], type = \"list(integer)\", min = 1, max = 65535 }\n",
        ]);
        assert_eq!(m, "");
        let by = |n: &str| d.iter().find(|x| x.name == n).unwrap().clone();
        assert_eq!(by("n").describe(), "an integer of at least 1");
        assert!(by("n").check(&json!(0)).is_err());
        assert_eq!(by("m").describe(), "an integer of at most 6");
        assert!(by("m").check(&json!(7)).is_err());
        assert_eq!(by("mode").describe(), "one of \"a\", \"b\"");
        assert_eq!(
            by("mode").check(&json!("c")).unwrap_err(),
            "\"c\" is not allowed: `mode` must be one of \"a\", \"b\""
        );
        let ports = by("ports");
        assert!(ports.check(&json!([80, 443])).is_ok());
        assert_eq!(
            ports.check(&json!([80, 0])).unwrap_err(),
            "0 is out of range: `ports` must be a list of integers from 1 to 65535"
        );
    }

    #[test]
    fn cli_values_are_read_as_the_declared_type() {
        assert_eq!(VarType::Integer.parse_cli("150").unwrap(), json!(150));
        assert_eq!(VarType::Integer.parse_cli("x").unwrap_err(), "an integer");
        assert_eq!(VarType::Bool.parse_cli("true").unwrap(), json!(true));
        assert_eq!(VarType::Bool.parse_cli("yes").unwrap_err(), "true or false");
        assert_eq!(VarType::String.parse_cli("150").unwrap(), json!("150"));
        let list = VarType::parse("list(string)").unwrap();
        assert_eq!(list.parse_cli("[\"a\", \"b\"]").unwrap(), json!(["a", "b"]));
        assert!(list.parse_cli("a,b").unwrap_err().contains("TOML array"));
        assert!(list.parse_cli("[1]").is_err());
    }

    #[test]
    fn bad_declarations_are_located() {
        let text = "[vars]\na = { type = \"float\" }\nb = { default = \"x\", min = 1 }\nc = { default = 5, min = 9, max = 2 }\nd = { defualt = 1 }\ne = { description = \"no type\" }\nf = { type = \"integer\", allowed = [1, \"two\"] }\n";
        let (d, m) = declare_all(&[text]);
        assert!(d.is_empty(), "{d:?}");
        assert!(
            m.contains("v.toml:2:14: unknown type `float` for variable `a`"),
            "{m}"
        );
        assert!(
            m.contains("v.toml:3:28: `min` applies to integers; `b` is string"),
            "{m}"
        );
        assert!(m.contains("v.toml:4:35: `c` has min 9 above max 2"), "{m}");
        assert!(
            m.contains("v.toml:5:7: unknown key `defualt` in variable `d`"),
            "{m}"
        );
        assert!(
            m.contains("v.toml:6:1: variable `e` has neither a `type` nor a `default`"),
            "{m}"
        );
        assert!(
            m.contains("v.toml:7:35: `allowed` of `f` holds \"two\", which is not an integer"),
            "{m}"
        );
    }

    #[test]
    fn a_later_file_changes_the_fields_it_gives_and_keeps_the_rest() {
        let base = "[vars.w]\ndefault = 0\nmin = 0\nmax = 100\n";
        // A plain redeclaration changes only the default.
        let (d, m) = declare_all(&[base, "[vars]\nw = 50\n"]);
        assert_eq!(m, "");
        assert_eq!(d[0].default, Some(json!(50)));
        assert_eq!((d[0].min, d[0].max), (Some(0), Some(100)));
        assert_eq!(
            d[0].span.location(),
            "v.toml:1:7",
            "still declared where the range is"
        );
        // A table redeclaration replaces what it gives.
        let (d, _) = declare_all(&[base, "[vars.w]\nmax = 10\n"]);
        assert_eq!(
            (d[0].min, d[0].max, d[0].default.clone()),
            (Some(0), Some(10), Some(json!(0)))
        );
        assert_eq!(
            d[0].span.location(),
            "w.toml:1:7",
            "declared where the range was last set"
        );
    }

    #[test]
    fn a_declaration_without_default_is_required_and_typed() {
        let (d, m) = declare_all(&["[vars.tag]\ntype = \"string\"\n"]);
        assert_eq!(m, "");
        assert_eq!(d[0].default, None);
        assert_eq!(d[0].ty, VarType::String);
        assert!(d[0].ty_declared);
    }

    /// Loads `text` as a stack with `--var` values; the error messages.
    fn load_errors(text: &str, vars: &[(&str, &str)]) -> String {
        let options = crate::config::LoadOptions {
            vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        match crate::config::load_str(std::path::Path::new("s.toml"), text.to_string(), &options) {
            Ok(_) => String::new(),
            Err(e) => e.messages(),
        }
    }

    const STACK: &str = "[stack]\nname = \"s\"\nregion = \"r\"\n\n[vars.weight]\ndefault = 0\ntype = \"integer\"\nmin = 0\nmax = 100\n\n[vars]\nflag = false\n\n[resource.vpc]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.0.0.0/16\"\ntags = { w = \"w${var.weight}\", f = \"f${var.flag}\" }\n";

    #[test]
    fn var_values_are_checked_at_load_and_located_at_the_declaration() {
        assert_eq!(load_errors(STACK, &[("weight", "100")]), "");
        assert_eq!(
            load_errors(STACK, &[("weight", "150")]),
            "s.toml:5:7: --var weight=150: 150 is out of range: `weight` must be an integer from 0 to 100"
        );
        assert_eq!(
            load_errors(STACK, &[("weight", "half")]),
            "s.toml:7:8: --var weight=half: expected an integer: `weight` is declared `type = \"integer\"`"
        );
        // A plain default's type is the default's, as before.
        assert_eq!(
            load_errors(STACK, &[("flag", "yes")]),
            "s.toml:12:8: --var flag=yes: expected true or false, like this variable's default"
        );
        // A bad default is located at the default and reported once, not
        // again where the variable is used.
        let bad = STACK.replace("default = 0", "default = -5");
        assert_eq!(
            load_errors(&bad, &[]),
            "s.toml:6:11: default of `weight`: -5 is out of range: `weight` must be an integer from 0 to 100"
        );
    }

    #[test]
    fn a_required_variable_must_be_given() {
        let text = STACK.replace("default = 0\n", "");
        assert_eq!(
            load_errors(&text, &[]),
            "s.toml:5:7: variable `weight` (integer) has no default and was not given"
        );
        assert_eq!(load_errors(&text, &[("weight", "7")]), "");
    }

    #[test]
    fn an_includer_default_meets_the_included_bounds() {
        let dir = std::env::temp_dir().join(format!("meshform-vars-inc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("base.toml"), STACK).unwrap();
        let top =
            "[stack]\nname = \"top\"\nregion = \"r\"\ninclude = [\"base.toml\"]\n\n[vars]\nweight = 101\n";
        std::fs::write(dir.join("top.toml"), top).unwrap();
        let err = crate::config::load(&dir.join("top.toml"), &Default::default())
            .unwrap_err()
            .messages();
        assert!(
            err.contains("top.toml:7:10: default of `weight`: 101 is out of range: `weight` must be an integer from 0 to 100"),
            "{err}"
        );
        std::fs::write(dir.join("top.toml"), top.replace("101", "60")).unwrap();
        let stack = crate::config::load(&dir.join("top.toml"), &Default::default()).unwrap();
        assert_eq!(stack.vars["weight"], json!(60));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

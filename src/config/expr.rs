//! Attribute expressions: literal values, references (`${vpc.id}`), string
//! templates mixing both, and lists and tables of expressions.
//!
//! Variables (`${var.x}`) and stack facts (`${stack.name}`,
//! `${stack.region}`) are known when the stack is loaded and are substituted
//! then; what remains are references to other resources and to the region's
//! availability zones (`${az[0]}`), which need the cloud to resolve.

use std::collections::BTreeMap;

use super::diagnostics::Span;
use crate::Value;

/// What a `${...}` refers to once variables are substituted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    /// An attribute of another resource: `${name.attr}`.
    Resource {
        /// The resource's name in the stack.
        name: String,
        /// The attribute's name: any attribute of the resource's kind, set
        /// in the stack or computed by the cloud.
        attr: String,
    },
    /// The region's n-th available availability zone (sorted by name): `${az[n]}`.
    Az(usize),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Resource { name, attr } => write!(f, "{name}.{attr}"),
            Reference::Az(i) => write!(f, "az[{i}]"),
        }
    }
}

/// A reference with where it was written.
#[derive(Debug, Clone)]
pub struct RefAt {
    /// What is referred to.
    pub reference: Reference,
    /// Where the `${...}` is written, from `$` through `}`; the whole string
    /// value when the TOML text is not the string verbatim (escapes, multi-line
    /// strings).
    pub span: Span,
}

/// One piece of a string template.
#[derive(Debug, Clone)]
pub enum Part {
    /// Literal text, with variables and stack facts already substituted and
    /// `$${` already turned into `${`.
    Text(String),
    /// A reference whose value is written into the text; evaluation fails if
    /// it is a list or table.
    Ref(RefAt),
}

/// An attribute's expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A value known when the stack is loaded.
    Value(Value),
    /// A whole-string reference: keeps the referenced value's type.
    Ref(RefAt),
    /// A string built from text and references.
    Template(Vec<Part>),
    /// A list holding at least one reference; a list of known values is an
    /// [`Expr::Value`].
    List(Vec<Expr>),
    /// A table holding at least one reference; a table of known values is an
    /// [`Expr::Value`].
    Table(BTreeMap<String, Expr>),
}

impl Expr {
    /// Every reference in this expression, in order.
    pub fn references(&self) -> Vec<&RefAt> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    fn collect_refs<'a>(&'a self, out: &mut Vec<&'a RefAt>) {
        match self {
            Expr::Value(_) => {}
            Expr::Ref(r) => out.push(r),
            Expr::Template(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Ref(r) => Some(r),
                Part::Text(_) => None,
            })),
            Expr::List(items) => items.iter().for_each(|e| e.collect_refs(out)),
            Expr::Table(map) => map.values().for_each(|e| e.collect_refs(out)),
        }
    }
}

/// A raw `${...}` found in a string, before it is resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum RawPart {
    /// Text between interpolations, with each `$${` turned into `${`.
    Text(String),
    /// A `${...}`, not yet parsed.
    Interp {
        /// The text between `${` and `}`, trimmed.
        inner: String,
        /// Byte offset of the `$` in the string.
        offset: usize,
        /// Length in bytes, from the `$` through the `}`.
        len: usize,
    },
}

/// Splits a string into text and `${...}` pieces. `$${` is a literal `${`.
pub fn split_template(s: &str) -> Result<Vec<RawPart>, (usize, String)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        let after = &rest[i..];
        if after.starts_with("$${") {
            text.push_str(&rest[..i]);
            text.push_str("${");
            rest = &rest[i + 3..];
            offset += i + 3;
        } else if after.starts_with("${") {
            text.push_str(&rest[..i]);
            let Some(close) = after.find('}') else {
                return Err((offset + i, "unterminated `${`: missing `}`".to_string()));
            };
            if !text.is_empty() {
                parts.push(RawPart::Text(std::mem::take(&mut text)));
            }
            parts.push(RawPart::Interp {
                inner: after[2..close].trim().to_string(),
                offset: offset + i,
                len: close + 1,
            });
            rest = &after[close + 1..];
            offset += i + close + 1;
        } else {
            text.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
            offset += i + 1;
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(RawPart::Text(text));
    }
    Ok(parts)
}

/// One operand of `${a + b - c}` arithmetic: an integer or a variable.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// An integer literal.
    Int(i64),
    /// `var.NAME`, which must hold an integer.
    Var(String),
}

/// What the text inside `${...}` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Interp {
    /// `${file("path")}`: the text of a file (relative to the stack file
    /// that names it), itself a template.
    File(String),
    /// `${if var.x}` / `${if !var.x}`: the text up to the matching
    /// `${end}` is kept only when the boolean variable is true (false).
    If {
        /// The boolean variable.
        var: String,
        /// Whether the condition is negated (`!var.x`).
        negate: bool,
    },
    /// `${end}`: closes the innermost `${if ...}`.
    End,
    /// `${100 - var.weight}`: integer arithmetic over literals and
    /// variables, computed when the stack is loaded.
    Arith(Vec<(i64, Operand)>),
    /// `${var.name}`: a variable, by name.
    Var(String),
    /// `${stack.name}`: the stack's name.
    StackName,
    /// `${stack.region}`: the stack's region.
    StackRegion,
    /// `${az[n]}`: the region's n-th availability zone.
    Az(usize),
    /// `${name.attr}`: any other head names a resource; whether it exists
    /// is checked later, in validation.
    Resource {
        /// The head: a resource's name.
        name: String,
        /// The tail: one of the resource's attributes.
        attr: String,
    },
}

/// Parses the inside of `${...}`.
pub fn parse_interp(inner: &str) -> Result<Interp, String> {
    if inner == "end" {
        return Ok(Interp::End);
    }
    if let Some(cond) = inner.strip_prefix("if ") {
        let cond = cond.trim();
        let (negate, rest) = match cond.strip_prefix('!') {
            Some(r) => (true, r.trim()),
            None => (false, cond),
        };
        return match rest.strip_prefix("var.") {
            Some(var) if !var.is_empty() => Ok(Interp::If {
                var: var.to_string(),
                negate,
            }),
            _ => Err(format!(
                "`${{{inner}}}`: a condition is `var.NAME` or `!var.NAME`"
            )),
        };
    }
    if let Some(arg) = inner.strip_prefix("file(").and_then(|r| r.strip_suffix(')')) {
        let path = arg.trim().trim_matches(|c| c == '"' || c == '\'');
        if path.is_empty() {
            return Err("`${file()}` needs a path, like ${file(\"../manifests/app.yaml\")}".to_string());
        }
        return Ok(Interp::File(path.to_string()));
    }
    if let Some(terms) = parse_arith(inner) {
        return Ok(Interp::Arith(terms));
    }
    if let Some(idx) = inner.strip_prefix("az[").and_then(|r| r.strip_suffix(']')) {
        return idx
            .trim()
            .parse::<usize>()
            .map(Interp::Az)
            .map_err(|_| format!("availability zone index must be a number: `${{{inner}}}`"));
    }
    let Some((head, tail)) = inner.split_once('.') else {
        return Err(format!(
            "`${{{inner}}}` is not a reference: write `${{resource.attribute}}`, `${{var.name}}`, `${{stack.name}}`, `${{stack.region}}` or `${{az[0]}}`"
        ));
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !valid(head) || !valid(tail) {
        return Err(format!("malformed reference `${{{inner}}}`"));
    }
    Ok(match head {
        "var" => Interp::Var(tail.to_string()),
        "stack" => match tail {
            "name" => Interp::StackName,
            "region" => Interp::StackRegion,
            other => {
                return Err(format!(
                    "`stack.{other}` does not exist: the stack has `name` and `region`"
                ));
            }
        },
        name => Interp::Resource {
            name: name.to_string(),
            attr: tail.to_string(),
        },
    })
}

/// Parses `a + b - c` (integers and `var.NAME`, separated by spaces
/// around `+`/`-`); `None` when `inner` is not arithmetic.
fn parse_arith(inner: &str) -> Option<Vec<(i64, Operand)>> {
    let tokens: Vec<&str> = inner.split_whitespace().collect();
    if tokens.len() < 3 || tokens.len().is_multiple_of(2) {
        return None;
    }
    let operand = |t: &str| -> Option<Operand> {
        if let Ok(n) = t.parse::<i64>() {
            return Some(Operand::Int(n));
        }
        let name = t.strip_prefix("var.")?;
        (!name.is_empty()).then(|| Operand::Var(name.to_string()))
    };
    let mut terms = vec![(1, operand(tokens[0])?)];
    for pair in tokens[1..].chunks(2) {
        let sign = match pair[0] {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        terms.push((sign, operand(pair[1])?));
    }
    Some(terms)
}

/// The text form of a scalar value when interpolated into a string.
pub fn interpolate(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_references() {
        let parts = split_template("arn:${a.b}/x-${ var.y }").unwrap();
        assert_eq!(
            parts,
            vec![
                RawPart::Text("arn:".into()),
                RawPart::Interp {
                    inner: "a.b".into(),
                    offset: 4,
                    len: 6
                },
                RawPart::Text("/x-".into()),
                RawPart::Interp {
                    inner: "var.y".into(),
                    offset: 13,
                    len: 10
                },
            ]
        );
    }

    #[test]
    fn dollar_dollar_escapes() {
        assert_eq!(
            split_template("$${a.b} $5").unwrap(),
            vec![RawPart::Text("${a.b} $5".into())]
        );
    }

    #[test]
    fn unterminated_is_an_error() {
        assert_eq!(split_template("x ${a.b").unwrap_err().0, 2);
    }

    #[test]
    fn parses_each_form() {
        assert_eq!(parse_interp("az[1]"), Ok(Interp::Az(1)));
        assert_eq!(parse_interp("var.region"), Ok(Interp::Var("region".into())));
        assert_eq!(parse_interp("stack.name"), Ok(Interp::StackName));
        assert_eq!(
            parse_interp("vpc.id"),
            Ok(Interp::Resource {
                name: "vpc".into(),
                attr: "id".into()
            })
        );
        assert!(parse_interp("vpc").is_err());
        assert!(parse_interp("az[x]").is_err());
        assert!(parse_interp("stack.bogus").is_err());
        assert_eq!(parse_interp("end"), Ok(Interp::End));
        assert_eq!(
            parse_interp("if !var.v2"),
            Ok(Interp::If {
                var: "v2".into(),
                negate: true
            })
        );
        assert!(parse_interp("if v2").is_err());
        assert_eq!(
            parse_interp("file(\"../m/a.yaml\")"),
            Ok(Interp::File("../m/a.yaml".into()))
        );
        assert_eq!(
            parse_interp("100 - var.w"),
            Ok(Interp::Arith(vec![
                (1, Operand::Int(100)),
                (-1, Operand::Var("w".into()))
            ]))
        );
        assert!(parse_interp("100 * var.w").is_err());
    }
}

//! `[shift.<var>]` tables: the steps, pause and gates of `meshform shift`
//! for one variable, declared in the stack.
//!
//! ```toml
//! [shift.v2_weight]
//! steps = [10, 50, 100]
//! pause = "60s"
//!
//! [[shift.v2_weight.gate]]
//! type = "deployment"
//! namespace = "yelb"
//! name = "yelb-appserver-v2"
//! cluster = "cluster"          # optional: the resource whose connection reaches it
//!
//! [[shift.v2_weight.gate]]
//! type = "prometheus"
//! url = "http://prometheus.example:9090"
//! query = "sum(rate(ok[1m])) / sum(rate(all[1m]))"
//! op = ">="
//! threshold = 0.99
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{Diagnostics, SourceFile, Span};
use super::vars::VarDecl;
use crate::shift::spec::{self, GateSpec, ShiftDecl};

type Key<'i> = Spanned<std::borrow::Cow<'i, str>>;
type Range = std::ops::Range<usize>;
/// A gate table's error: the message and, when one key is at fault, its span.
type GateError = (String, Option<Range>);

/// Reads the `[shift]` section of `file` into `out`, reporting problems
/// (with their locations) to `diags`.
pub(super) fn section(
    file: &Arc<SourceFile>,
    value: &Spanned<DeValue<'_>>,
    decls: &BTreeMap<String, VarDecl>,
    diags: &mut Diagnostics,
    out: &mut BTreeMap<String, ShiftDecl>,
) {
    let at = |range: std::ops::Range<usize>| Span::new(file, range);
    let Some(table) = value.get_ref().as_table() else {
        diags.at(
            &at(value.span()),
            "`shift` must be a table: write [shift.<variable>]",
        );
        return;
    };
    for (key, body) in table.iter() {
        let variable = key.get_ref().to_string();
        let span = at(key.span());
        if !decls.contains_key(&variable) {
            diags.at(
                &span,
                format!("[shift.{variable}] names no variable of the stack (declare it in [vars])"),
            );
            continue;
        }
        if let Some(first) = out.get(&variable) {
            diags.at(
                &span,
                format!(
                    "[shift.{variable}] is already declared at {}",
                    first.span.location()
                ),
            );
            continue;
        }
        let Some(body) = body.get_ref().as_table() else {
            diags.at(&span, format!("`shift.{variable}` must be a table"));
            continue;
        };
        if let Some(decl) = one(file, &variable, span, body, diags) {
            out.insert(variable, decl);
        }
    }
}

fn one(
    file: &Arc<SourceFile>,
    variable: &str,
    span: Span,
    body: &DeTable<'_>,
    diags: &mut Diagnostics,
) -> Option<ShiftDecl> {
    let at = |range: std::ops::Range<usize>| Span::new(file, range);
    let before = diags_len(diags);
    let mut steps = Vec::new();
    let mut pause = None;
    let mut gates = Vec::new();
    for (k, v) in body.iter() {
        let here = at(v.span());
        match k.get_ref().as_ref() {
            "steps" => match v.get_ref().as_array() {
                Some(items) if !items.is_empty() => {
                    for item in items.iter() {
                        match scalar_text(item.get_ref()) {
                            Some(s) => steps.push(s),
                            None => diags.at(
                                &at(item.span()),
                                "a step is a value of the variable: a string, integer or boolean",
                            ),
                        }
                    }
                }
                _ => diags.at(&here, "`steps` is a non-empty list of values, like [10, 50, 100]"),
            },
            "pause" => {
                let parsed = match v.get_ref() {
                    DeValue::String(s) => spec::parse_pause(s).map_err(|e| e.0),
                    DeValue::Integer(i) => spec::parse_pause(i.as_str()).map_err(|e| e.0),
                    other => Err(format!(
                        "`pause` is a duration like \"60s\", not a {}",
                        other.type_str()
                    )),
                };
                match parsed {
                    Ok(d) => pause = Some(d),
                    Err(e) => diags.at(&here, e),
                }
            }
            "gate" => match v.get_ref().as_array() {
                Some(items) => {
                    for item in items.iter() {
                        let span = at(item.span());
                        match item.get_ref().as_table() {
                            Some(t) => match gate(t) {
                                Ok(g) => gates.push(g),
                                Err((e, key)) => {
                                    let span = key.map_or(span, &at);
                                    diags.at(&span, e)
                                }
                            },
                            None => diags.at(&span, "a gate is a table: write [[shift.<var>.gate]]"),
                        }
                    }
                }
                None => diags.at(&here, "`gate` is a list of tables: write [[shift.<var>.gate]]"),
            },
            other => diags.at_with_help(
                &at(k.span()),
                format!("unknown key `{other}` in [shift.{variable}]"),
                "a shift table has `steps`, `pause` and [[gate]] tables",
            ),
        }
    }
    if steps.is_empty() && diags_len(diags) == before {
        diags.at(&span, format!("[shift.{variable}] needs `steps`"));
    }
    (diags_len(diags) == before).then(|| ShiftDecl {
        variable: variable.to_string(),
        steps,
        pause,
        gates,
        span,
    })
}

fn diags_len(diags: &Diagnostics) -> usize {
    diags.len()
}

fn scalar_text(v: &DeValue<'_>) -> Option<String> {
    match v {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n.to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One `[[shift.<var>.gate]]` table; an error names the key at fault when
/// there is one.
fn gate(t: &DeTable<'_>) -> Result<GateSpec, GateError> {
    let find = |name: &str| -> Option<(&Key<'_>, &Spanned<DeValue<'_>>)> {
        t.iter().find(|(k, _)| k.get_ref().as_ref() == name)
    };
    let text = |name: &str| -> Result<Option<(String, Range)>, GateError> {
        match find(name) {
            None => Ok(None),
            Some((_, v)) => match v.get_ref().as_str() {
                Some(s) => Ok(Some((s.to_string(), v.span()))),
                None => Err((format!("`{name}` must be a string"), Some(v.span()))),
            },
        }
    };
    let required = |name: &str, kind: &str| -> Result<(String, Range), GateError> {
        text(name)?.ok_or_else(|| (format!("a {kind} gate needs `{name}`"), None))
    };
    let (kind, kind_span) = required("type", "shift")?;
    let allowed: &[&str] = match kind.as_str() {
        "deployment" => &["type", "namespace", "name", "cluster"],
        "prometheus" => &["type", "url", "query", "op", "threshold"],
        other => {
            return Err((
                format!("unknown gate type `{other}` (known: deployment, prometheus)"),
                Some(kind_span),
            ));
        }
    };
    if let Some((k, _)) = t.iter().find(|(k, _)| !allowed.contains(&k.get_ref().as_ref())) {
        return Err((
            format!(
                "unknown key `{}` in a {kind} gate (it has {})",
                k.get_ref(),
                allowed.join(", ")
            ),
            Some(k.span()),
        ));
    }
    if kind == "deployment" {
        return Ok(GateSpec::Deployment {
            namespace: required("namespace", "deployment")?.0,
            name: required("name", "deployment")?.0,
            cluster: text("cluster")?.map(|(c, _)| c),
        });
    }
    let (url, url_span) = required("url", "prometheus")?;
    let (query, query_span) = required("query", "prometheus")?;
    let (op, op_span) = required("op", "prometheus")?;
    let (threshold, threshold_text, threshold_span) = match find("threshold") {
        None => return Err(("a prometheus gate needs `threshold`".to_string(), None)),
        Some((_, v)) => match v.get_ref() {
            DeValue::Float(f) => (f.as_str().parse().ok(), f.as_str().to_string(), v.span()),
            DeValue::Integer(i) => (i.as_str().parse().ok(), i.as_str().to_string(), v.span()),
            other => (None, other.type_str().to_string(), v.span()),
        },
    };
    spec::prometheus(&url, &query, &op, threshold, &threshold_text).map_err(|e| {
        // Point at the field the message is about.
        let span = if e.0.contains("URL") {
            url_span
        } else if e.0.contains("query") {
            query_span
        } else if e.0.contains("operator") {
            op_span
        } else {
            threshold_span
        };
        (e.0, Some(span))
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{LoadOptions, load_str};
    use crate::shift::{Comparison, GateSpec};

    const HEAD: &str = "[stack]\nname = \"s\"\nregion = \"us-west-2\"\n\n[vars]\nw = 0\n\n";

    fn load(body: &str) -> Result<crate::config::Stack, String> {
        load_str(
            Path::new("shift.toml"),
            format!("{HEAD}{body}"),
            &LoadOptions::default(),
        )
        .map_err(|e| e.messages())
    }

    #[test]
    fn a_shift_table_declares_steps_pause_and_gates() {
        let stack = load(
            r#"[shift.w]
steps = [10, 50, 100]
pause = "2s"

[[shift.w.gate]]
type = "deployment"
namespace = "yelb"
name = "v2"

[[shift.w.gate]]
type = "prometheus"
url = "http://127.0.0.1:9090"
query = "up"
op = ">="
threshold = 1
"#,
        )
        .expect("loads");
        let decl = &stack.shifts["w"];
        assert_eq!(decl.steps, ["10", "50", "100"]);
        assert_eq!(decl.pause, Some(std::time::Duration::from_secs(2)));
        assert!(matches!(
            &decl.gates[0],
            GateSpec::Deployment { cluster: None, .. }
        ));
        let GateSpec::Prometheus(p) = &decl.gates[1] else {
            panic!("{:?}", decl.gates);
        };
        assert_eq!((p.op, p.threshold), (Comparison::Ge, 1.0));
    }

    #[test]
    fn errors_are_located() {
        for (body, says) in [
            (
                "[shift.x]\nsteps = [1]\n",
                "shift.toml:8:8: [shift.x] names no variable",
            ),
            (
                "[shift.w]\nsteps = []\n",
                "shift.toml:9:9: `steps` is a non-empty list",
            ),
            (
                "[shift.w]\nsteps = [1]\npause = \"1d\"\n",
                "shift.toml:10:9: pause `1d`: unknown unit",
            ),
            (
                "[shift.w]\nsteps = [1]\nspeed = 1\n",
                "shift.toml:10:1: unknown key `speed`",
            ),
            (
                "[shift.w]\nsteps = [1]\n[[shift.w.gate]]\ntype = \"prometheus\"\nurl = \"http://x\"\nquery = \"up\"\nop = \"=>\"\nthreshold = 1\n",
                "shift.toml:14:6: `=>` is not an operator",
            ),
            (
                "[shift.w]\nsteps = [1]\n[[shift.w.gate]]\ntype = \"http\"\n",
                "shift.toml:11:8: unknown gate type `http`",
            ),
            (
                "[shift.w]\npause = \"1s\"\n",
                "shift.toml:8:8: [shift.w] needs `steps`",
            ),
        ] {
            let e = load(body).expect_err(body);
            assert!(e.contains(says), "{body}\n---\n{e}");
        }
    }
}

//! Reading a stack file: TOML with spans into the stack model, substituting
//! variables, and collecting every problem rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{ConfigError, Diagnostics, Located, SourceFile, Span, suggest};
use super::expr::{
    Expr, Interp, Operand, Part, RawPart, RefAt, Reference, interpolate, parse_interp, split_template,
};
use super::model::{Attr, Output, Resource, Stack};
use super::validate;
use super::vars::{self, VarDecl};
use crate::Value;
use crate::provider::{self, KindDef};

/// Keys of a resource table that are not attributes of its kind.
const META_KEYS: &[&str] = &["type", "depends_on", "enabled", "create_before_destroy"];

/// Options for loading a stack.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--var name=value` overrides, in command-line order.
    pub vars: Vec<(String, String)>,
}

const TOP_LEVEL: &[&str] = &["stack", "vars", "resource", "output", "shift"];
const RESERVED_NAMES: &[&str] = &["var", "stack", "az", "self"];

/// Reads, parses and validates a stack file.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Stack, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        errors: vec![Located::unreadable(path, format!("cannot read stack file: {e}"))],
    })?;
    load_str(path, text, options)
}

/// Parses and validates stack text; `path` names it in messages. Files the
/// stack includes are read from disk, relative to `path`.
pub fn load_str(path: &Path, text: String, options: &LoadOptions) -> Result<Stack, ConfigError> {
    let root = Arc::new(SourceFile {
        path: path.to_path_buf(),
        text,
    });
    let mut diags = Diagnostics::default();
    let mut files = Vec::new();
    collect_files(&root, &mut Vec::new(), &mut files, &mut diags);
    if !diags.is_empty() {
        return Err(finish_err(diags, path));
    }
    // Every file parsed cleanly above; parse again, now keeping the tables
    // (they borrow from the texts in `files`).
    let tables: Vec<DeTable<'_>> = files
        .iter()
        .map(|f| DeTable::parse_recoverable(&f.text).0.into_inner())
        .collect();
    let loaded = Loader {
        file: root.clone(),
        diags: &mut diags,
        vars: BTreeMap::new(),
        decls: BTreeMap::new(),
        stack_name: String::new(),
        region: String::new(),
        state: None,
        extra_sources: Vec::new(),
        disabled: BTreeSet::new(),
    }
    .stack(&files, &tables, options);
    let Some((stack, broken)) = loaded else {
        return Err(finish_err(diags, path));
    };
    validate::validate(&stack, &broken, &mut diags);
    diags.finish(path)?;
    Ok(stack)
}

/// Reads `file` and, depth first, every file it includes (`[stack] include`),
/// appending each to `out` after the files it includes, so the root comes
/// last. A file included twice is read once; an include cycle is an error.
fn collect_files(
    file: &Arc<SourceFile>,
    chain: &mut Vec<PathBuf>,
    out: &mut Vec<Arc<SourceFile>>,
    diags: &mut Diagnostics,
) {
    let (table, errors) = DeTable::parse_recoverable(&file.text);
    for e in &errors {
        let span = Span::new(file, e.span().unwrap_or(0..0));
        diags.at(&span, format!("invalid TOML: {}", e.message()));
    }
    if !errors.is_empty() {
        return;
    }
    let identity = canonical(&file.path);
    chain.push(identity.clone());
    let includes = table
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == "stack")
        .and_then(|(_, v)| v.get_ref().as_table())
        .and_then(|t| t.iter().find(|(k, _)| k.get_ref().as_ref() == "include"))
        .map(|(_, v)| v);
    if let Some(includes) = includes {
        let at = Span::new(file, includes.span());
        match includes.get_ref().as_array() {
            None => diags.at(
                &at,
                "`include` must be a list of stack files, like [\"baseline.toml\"]",
            ),
            Some(items) => {
                for item in items.iter() {
                    let span = Span::new(file, item.span());
                    let Some(rel) = item.get_ref().as_str() else {
                        diags.at(&span, "`include` holds paths as strings");
                        continue;
                    };
                    let path = file.path.parent().unwrap_or(Path::new("")).join(rel);
                    let id = canonical(&path);
                    if chain.contains(&id) {
                        diags.at(
                            &span,
                            format!("include cycle: {} includes itself", path.display()),
                        );
                        continue;
                    }
                    if out.iter().any(|f| canonical(&f.path) == id) {
                        continue;
                    }
                    match std::fs::read_to_string(&path) {
                        Ok(text) => {
                            let included = Arc::new(SourceFile { path, text });
                            collect_files(&included, chain, out, diags);
                        }
                        Err(e) => diags.at(
                            &span,
                            format!("cannot read included stack {}: {e}", path.display()),
                        ),
                    }
                }
            }
        }
    }
    chain.pop();
    out.push(file.clone());
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn finish_err(diags: Diagnostics, path: &Path) -> ConfigError {
    match diags.finish(path) {
        Err(e) => e,
        Ok(()) => ConfigError {
            file: path.display().to_string(),
            errors: Vec::new(),
        },
    }
}

struct Loader<'d> {
    /// The file being read now.
    file: Arc<SourceFile>,
    diags: &'d mut Diagnostics,
    /// Each variable's value: its default, or what `--var` gave it.
    vars: BTreeMap<String, Value>,
    /// Each variable's declaration, merged over the files that declare it.
    decls: BTreeMap<String, VarDecl>,
    stack_name: String,
    region: String,
    /// The root's `[stack] state`, if set.
    state: Option<crate::state::StateLocation>,
    /// Files read through `${file(...)}`, kept for error rendering.
    extra_sources: Vec<Arc<SourceFile>>,
    /// Resources left out with `enabled = false`.
    disabled: BTreeSet<String>,
}

type Entry<'a, 'i> = (&'a Spanned<std::borrow::Cow<'i, str>>, &'a Spanned<DeValue<'i>>);

impl Loader<'_> {
    fn span(&self, range: std::ops::Range<usize>) -> Span {
        Span::new(&self.file, range)
    }

    /// The top-level sections of one file, reporting unknown ones.
    fn sections<'a, 'i>(&mut self, table: &'a DeTable<'i>) -> BTreeMap<&'static str, Entry<'a, 'i>> {
        let mut sections = BTreeMap::new();
        for entry @ (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if let Some(section) = TOP_LEVEL.iter().copied().find(|t| *t == name) {
                sections.insert(section, entry);
            } else {
                let span = self.span(key.span());
                let help = suggest(name, TOP_LEVEL.iter().copied()).map_or_else(
                    || {
                        "a stack has [stack], [vars], [resource.<name>], [output.<name>] and [shift.<var>]"
                            .to_string()
                    },
                    |s| format!("did you mean `{s}`?"),
                );
                self.diags
                    .at_with_help(&span, format!("unknown section `{name}`"), help);
            }
        }
        sections
    }

    /// Builds the stack from `files` (included files first, the root last)
    /// and their parsed `tables`; `None` when the root's `[stack]` is
    /// unusable. Also returns the names of resources whose tables were
    /// broken, so that references to them do not produce a second,
    /// misleading error.
    fn stack(
        mut self,
        files: &[Arc<SourceFile>],
        tables: &[DeTable<'_>],
        options: &LoadOptions,
    ) -> Option<(Stack, BTreeSet<String>)> {
        let root = files.len() - 1;
        let mut all_sections = Vec::new();
        for (i, (file, table)) in files.iter().zip(tables).enumerate() {
            self.file = file.clone();
            let sections = self.sections(table);
            // The root's [stack] names the stack; an included file's [stack]
            // (it may be a stack of its own) only contributes its includes.
            if i == root {
                let stack_ok = match sections.get("stack") {
                    Some((key, value)) => self.stack_section(key, value, true),
                    None => {
                        self.diags.push(
                            0,
                            Located::in_file(file, "missing [stack] table with `name` and `region`"),
                        );
                        false
                    }
                };
                if !stack_ok {
                    return None;
                }
            } else if let Some((key, value)) = sections.get("stack") {
                self.stack_section(key, value, false);
            }
            all_sections.push(sections);
        }
        // Variables: included files' defaults first; a later file may
        // redeclare a variable to change its default; then --var.
        for (file, sections) in files.iter().zip(&all_sections) {
            self.file = file.clone();
            if let Some((_, value)) = sections.get("vars") {
                self.vars_section(value);
            }
        }
        self.file = files[root].clone();
        self.check_defaults();
        self.apply_overrides(options);
        self.check_required(options);

        // `meshform shift` declarations (src/config/shift_decl.rs).
        let mut shifts = BTreeMap::new();
        for (file, sections) in files.iter().zip(&all_sections) {
            if let Some((_, value)) = sections.get("shift") {
                super::shift_decl::section(file, value, &self.decls, self.diags, &mut shifts);
            }
        }
        let mut resources: BTreeMap<String, Resource> = BTreeMap::new();
        let mut outputs: BTreeMap<String, Output> = BTreeMap::new();
        let mut broken = BTreeSet::new();
        for (file, sections) in files.iter().zip(&all_sections) {
            self.file = file.clone();
            if let Some((key, value)) = sections.get("resource") {
                match value.get_ref().as_table() {
                    Some(table) => {
                        for (name, body) in table.iter() {
                            match self.resource(name, body) {
                                Some(r) => match resources.get(&r.name) {
                                    Some(first) => self.diags.at(
                                        &r.span,
                                        format!(
                                            "resource `{}` is already defined at {}",
                                            r.name,
                                            first.span.location()
                                        ),
                                    ),
                                    None => {
                                        resources.insert(r.name.clone(), r);
                                    }
                                },
                                None => {
                                    if !self.disabled.contains(name.get_ref().as_ref()) {
                                        broken.insert(name.get_ref().to_string());
                                    }
                                }
                            }
                        }
                    }
                    None => {
                        let span = self.span(key.span());
                        self.diags.at(
                            &span,
                            "`resource` must be a table of resources: write [resource.<name>]",
                        );
                    }
                }
            }
            if let Some((key, value)) = sections.get("output") {
                match value.get_ref().as_table() {
                    Some(table) => {
                        for (name, body) in table.iter() {
                            if let Some(o) = self.output(name, body) {
                                match outputs.get(&o.name) {
                                    Some(first) => self.diags.at(
                                        &o.span,
                                        format!(
                                            "output `{}` is already defined at {}",
                                            o.name,
                                            first.span.location()
                                        ),
                                    ),
                                    None => {
                                        outputs.insert(o.name.clone(), o);
                                    }
                                }
                            }
                        }
                    }
                    None => {
                        let span = self.span(key.span());
                        self.diags.at(
                            &span,
                            "`output` must be a table of outputs: write [output.<name>]",
                        );
                    }
                }
            }
        }
        let sensitive_vars: std::collections::BTreeSet<String> = self
            .decls
            .values()
            .filter(|d| d.sensitive)
            .map(|d| d.name.clone())
            .collect();
        for name in &sensitive_vars {
            if let Some(value) = self.vars.get(name) {
                crate::sensitive::register(value);
            }
        }
        Some((
            Stack {
                name: self.stack_name.clone(),
                region: self.region.clone(),
                state: self.state.clone(),
                vars: self.vars.clone(),
                sensitive_vars,
                resources,
                outputs,
                disabled: self.disabled.clone(),
                shifts,
                sources: files
                    .iter()
                    .rev()
                    .cloned()
                    .chain(self.extra_sources.iter().cloned())
                    .collect(),
            },
            broken,
        ))
    }

    /// Reads `[stack]`. For the root file (`is_root`) `name` and `region`
    /// are required and kept; an included file's are checked but ignored,
    /// since the including stack names the whole.
    fn stack_section(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
        is_root: bool,
    ) -> bool {
        let Some(table) = value.get_ref().as_table() else {
            let span = self.span(key.span());
            self.diags
                .at(&span, "`stack` must be a table with `name` and `region`");
            return false;
        };
        let mut ok = true;
        let (mut name, mut region, mut state) = (None, None, None);
        for (k, v) in table.iter() {
            let span = self.span(v.span());
            match k.get_ref().as_ref() {
                "name" => match v.get_ref().as_str() {
                    Some(s) if valid_name(s) => name = Some(s.to_string()),
                    Some(_) => {
                        self.diags
                            .at(&span, "stack name may hold only letters, digits, `-` and `_`");
                        ok = false;
                    }
                    None => {
                        self.diags.at(
                            &span,
                            format!(
                                "wrong type for `name`: expected a string, found {}",
                                v.get_ref().type_str()
                            ),
                        );
                        ok = false;
                    }
                },
                "region" => match v.get_ref().as_str() {
                    Some(s) if !s.is_empty() => region = Some(s.to_string()),
                    _ => {
                        self.diags
                            .at(&span, "`region` must be a non-empty string such as \"us-west-2\"");
                        ok = false;
                    }
                },
                "state" => match v.get_ref().as_str().map(crate::state::StateLocation::parse) {
                    Some(Ok(location)) => state = Some(self.relative_to_file(location)),
                    Some(Err(e)) => {
                        self.diags.at(&span, format!("invalid `state`: {e}"));
                        ok = false;
                    }
                    None => {
                        self.diags.at(
                            &span,
                            format!(
                                "wrong type for `state`: expected a string (a file path or \"s3://bucket/key\"), found {}",
                                v.get_ref().type_str()
                            ),
                        );
                        ok = false;
                    }
                },
                // Read (and checked) when the files were collected.
                "include" => {}
                other => {
                    let kspan = self.span(k.span());
                    let help = suggest(other, ["name", "region", "include", "state"]).map_or_else(
                        || "[stack] has `name`, `region`, `include` and `state`".to_string(),
                        |s| format!("did you mean `{s}`?"),
                    );
                    self.diags
                        .at_with_help(&kspan, format!("unknown attribute `{other}` in [stack]"), help);
                }
            }
        }
        if !is_root {
            return ok;
        }
        let header = self.span(key.span());
        for (field, set) in [("name", name.is_some()), ("region", region.is_some())] {
            if !set && table.iter().all(|(k, _)| k.get_ref().as_ref() != field) {
                self.diags.at(
                    &header,
                    format!("missing required attribute `{field}` in [stack]"),
                );
                ok = false;
            }
        }
        self.stack_name = name.unwrap_or_default();
        self.region = region.unwrap_or_default();
        self.state = state;
        ok
    }

    /// A relative state file path in a stack file is relative to that
    /// file's directory (as includes are), so the stack finds its state
    /// from any working directory.
    fn relative_to_file(&self, location: crate::state::StateLocation) -> crate::state::StateLocation {
        match location {
            crate::state::StateLocation::File(path) if path.is_relative() => {
                let dir = self
                    .file
                    .path
                    .parent()
                    .unwrap_or_else(|| std::path::Path::new(""));
                crate::state::StateLocation::File(dir.join(path))
            }
            other => other,
        }
    }

    /// Declares the variables of one file's `[vars]` (see [`vars`]): plain
    /// defaults and declaration tables, merged over earlier files'.
    fn vars_section(&mut self, value: &Spanned<DeValue<'_>>) {
        let Some(table) = value.get_ref().as_table() else {
            let span = self.span(value.span());
            self.diags.at(
                &span,
                "`vars` must be a table of variable defaults and declarations",
            );
            return;
        };
        for (k, v) in table.iter() {
            let name = k.get_ref().to_string();
            // A broken redeclaration keeps the earlier declaration, so that
            // uses of the variable are not reported as unknown as well.
            let prior = self.decls.get(&name).cloned();
            if let Some(decl) = vars::declare(&self.file, k, v, prior, self.diags) {
                self.decls.insert(name, decl);
            }
        }
    }

    /// Checks each default against its declaration (after every file, so an
    /// includer's new default meets the included file's constraints) and
    /// makes the defaults the variables' values.
    fn check_defaults(&mut self) {
        for decl in self.decls.values() {
            let (Some(default), Some(at)) = (&decl.default, &decl.default_span) else {
                continue;
            };
            match decl.check(default) {
                Ok(()) => {
                    self.vars.insert(decl.name.clone(), default.clone());
                }
                Err(why) => {
                    let mut error = Located::at(at, format!("default of `{}`: {why}", decl.name));
                    if at.range != decl.span.range || !Arc::ptr_eq(&at.file, &decl.span.file) {
                        error = error.with_help(format!(
                            "`{}` is declared at {}",
                            decl.name,
                            decl.span.location()
                        ));
                    }
                    self.diags.push(at.range.start, error);
                }
            }
        }
    }

    /// Applies `--var` overrides: each read as its variable's type and
    /// checked against its declaration. An error is located at the
    /// declaration and changes nothing.
    fn apply_overrides(&mut self, options: &LoadOptions) {
        for (name, raw) in &options.vars {
            let Some(decl) = self.decls.get(name) else {
                if self.decls.is_empty() {
                    let message = format!("--var {name}: the stack declares no variables");
                    self.diags.push(0, Located::in_file(&self.file, message));
                    continue;
                }
                let help = suggest(name, self.decls.keys().map(String::as_str)).map_or_else(
                    || {
                        format!(
                            "declared variables: {}",
                            self.decls.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                    |s| format!("did you mean `{s}`?"),
                );
                self.diags.push(
                    0,
                    Located::in_file(&self.file, format!("--var {name}: no such variable in [vars]"))
                        .with_help(help),
                );
                continue;
            };
            let value = match decl.ty.parse_cli(raw) {
                Ok(v) => v,
                Err(expected) => {
                    let message = if decl.ty_declared {
                        format!(
                            "--var {name}={raw}: expected {expected}: `{name}` is declared `type = \"{}\"`",
                            decl.ty
                        )
                    } else {
                        format!("--var {name}={raw}: expected {expected}, like this variable's default")
                    };
                    let mut error = Located::at(&decl.ty_span, message);
                    if let Some(d) = &decl.description {
                        error = error.with_help(format!("{name}: {d}"));
                    }
                    self.diags.push(decl.ty_span.range.start, error);
                    continue;
                }
            };
            match decl.check(&value) {
                Ok(()) => {
                    self.vars.insert(name.clone(), value);
                }
                Err(why) => {
                    let mut error = Located::at(&decl.span, format!("--var {name}={raw}: {why}"))
                        .with_label(format!("`{name}` is declared here"));
                    if let Some(d) = &decl.description {
                        error = error.with_help(format!("{name}: {d}"));
                    }
                    self.diags.push(decl.span.range.start, error);
                }
            }
        }
    }

    /// Every variable declared without a default must be given with `--var`.
    fn check_required(&mut self, options: &LoadOptions) {
        for decl in self.decls.values() {
            if decl.default.is_none() && !options.vars.iter().any(|(n, _)| n == &decl.name) {
                self.diags.at_with_help(
                    &decl.span,
                    format!(
                        "variable `{}` ({}) has no default and was not given",
                        decl.name, decl.ty
                    ),
                    format!("give it with --var {}=VALUE", decl.name),
                );
            }
        }
    }

    fn resource(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        body: &Spanned<DeValue<'_>>,
    ) -> Option<Resource> {
        let name_span = self.span(name.span());
        let name_str = name.get_ref().to_string();
        if !valid_name(&name_str) {
            self.diags.at(
                &name_span,
                format!("resource name `{name_str}` may hold only letters, digits, `-` and `_`"),
            );
            return None;
        }
        if RESERVED_NAMES.contains(&name_str.as_str()) {
            self.diags.at(
                &name_span,
                format!("`{name_str}` is reserved and cannot name a resource"),
            );
            return None;
        }
        let Some(table) = body.get_ref().as_table() else {
            self.diags
                .at(&name_span, format!("resource `{name_str}` must be a table"));
            return None;
        };
        // `enabled = false` (usually `enabled = "${var.flag}"`) leaves the
        // resource out of the stack altogether.
        if let Some((_, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == "enabled") {
            let vspan = self.span(v.span());
            match self.expr(v) {
                Some(Expr::Value(Value::Bool(true))) => {}
                Some(Expr::Value(Value::Bool(false))) => {
                    self.disabled.insert(name_str);
                    return None;
                }
                Some(_) => {
                    self.diags.at(&vspan, "`enabled` must be a boolean known when the stack is loaded (a literal or a variable)");
                    return None;
                }
                None => return None,
            }
        }
        let mut kind: Option<&'static KindDef> = None;
        let mut type_seen = false;
        let mut attrs = BTreeMap::new();
        let mut depends_on = Vec::new();
        let mut create_before_destroy = false;
        for (k, v) in table.iter() {
            let key = k.get_ref().as_ref();
            let vspan = self.span(v.span());
            match key {
                "enabled" => {}
                "create_before_destroy" => match self.expr(v) {
                    Some(Expr::Value(Value::Bool(b))) => create_before_destroy = b,
                    Some(_) => self.diags.at(
                        &vspan,
                        "`create_before_destroy` must be a boolean known when the stack is loaded (a literal or a variable)",
                    ),
                    None => {}
                },
                "type" => {
                    type_seen = true;
                    match v.get_ref().as_str() {
                        Some(t) => {
                            kind = provider::kind_def(t);
                            if kind.is_none() {
                                let names = provider::kind_defs().map(|k| k.type_name);
                                let help = suggest(t, names).map_or_else(
                                    || "run `meshform types` to list the known types".to_string(),
                                    |s| format!("did you mean `{s}`?"),
                                );
                                self.diags
                                    .at_with_help(&vspan, format!("unknown resource type `{t}`"), help);
                            }
                        }
                        None => self.diags.at(
                            &vspan,
                            format!(
                                "wrong type for `type`: expected a string, found {}",
                                v.get_ref().type_str()
                            ),
                        ),
                    }
                }
                "depends_on" => match v.get_ref().as_array() {
                    Some(items) => {
                        for item in items.iter() {
                            let ispan = self.span(item.span());
                            match item.get_ref().as_str() {
                                Some(s) => depends_on.push((s.to_string(), ispan)),
                                None => self
                                    .diags
                                    .at(&ispan, "`depends_on` holds resource names as strings"),
                            }
                        }
                    }
                    None => self
                        .diags
                        .at(&vspan, "`depends_on` must be a list of resource names"),
                },
                _ => {
                    if let Some(expr) = self.expr(v) {
                        attrs.insert(key.to_string(), Attr { expr, span: vspan });
                    }
                }
            }
        }
        if !type_seen {
            self.diags.at(
                &name_span,
                format!("resource `{name_str}` is missing `type`, such as \"aws.ec2.vpc\""),
            );
        }
        // Key spans are needed for "unknown attribute" errors: keep them by
        // re-walking the table once the kind is known.
        let kind = kind?;
        let resource = Resource {
            name: name_str,
            kind,
            attrs,
            depends_on,
            create_before_destroy,
            span: name_span,
        };
        self.check_attr_names(&resource, table);
        Some(resource)
    }

    /// Unknown, misspelled and computed attribute names, pointing at the key.
    fn check_attr_names(&mut self, resource: &Resource, table: &DeTable<'_>) {
        for (k, _) in table.iter() {
            let key = k.get_ref().as_ref();
            if META_KEYS.contains(&key) {
                continue;
            }
            let kspan = self.span(k.span());
            match resource.kind.attr(key) {
                None => {
                    let names = resource.kind.attr_names().into_iter().filter(|n| {
                        resource
                            .kind
                            .attr(n)
                            .is_some_and(|a| a.mode != provider::Mode::Computed)
                    });
                    let help = suggest(key, names).map_or_else(
                        || {
                            format!(
                                "`{}` accepts: {}",
                                resource.kind.type_name,
                                settable_names(resource.kind).join(", ")
                            )
                        },
                        |s| format!("did you mean `{s}`?"),
                    );
                    self.diags.at_with_help(
                        &kspan,
                        format!("unknown attribute `{key}` for type `{}`", resource.kind.type_name),
                        help,
                    );
                }
                Some(a) if a.mode == provider::Mode::Computed => {
                    self.diags.at(
                        &kspan,
                        format!(
                            "attribute `{key}` of `{}` is computed by the cloud and cannot be set",
                            resource.kind.type_name
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }

    fn output(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        body: &Spanned<DeValue<'_>>,
    ) -> Option<Output> {
        let span = self.span(name.span());
        let name = name.get_ref().to_string();
        let Some(table) = body.get_ref().as_table() else {
            self.diags
                .at(&span, format!("output `{name}` must be a table with `value`"));
            return None;
        };
        let mut expr = None;
        let mut description = None;
        for (k, v) in table.iter() {
            match k.get_ref().as_ref() {
                "value" => expr = self.expr(v),
                "description" => description = v.get_ref().as_str().map(str::to_string),
                other => {
                    let kspan = self.span(k.span());
                    self.diags.at_with_help(
                        &kspan,
                        format!("unknown attribute `{other}` in output `{name}`"),
                        "an output has `value` and `description`",
                    );
                }
            }
        }
        if expr.is_none() && table.iter().all(|(k, _)| k.get_ref().as_ref() != "value") {
            self.diags
                .at(&span, format!("output `{name}` is missing `value`"));
        }
        Some(Output {
            name,
            expr: expr?,
            description,
            span,
        })
    }

    /// Converts a TOML value into an expression, substituting variables and
    /// stack facts. `None` after recording an error.
    fn expr(&mut self, v: &Spanned<DeValue<'_>>) -> Option<Expr> {
        let span = self.span(v.span());
        let expr = match v.get_ref() {
            DeValue::String(s) => return self.string_expr(s, &span),
            DeValue::Boolean(b) => Expr::Value(Value::Bool(*b)),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Expr::Value(Value::from(n)),
                Err(_) => {
                    self.diags.at(&span, "integer out of range");
                    return None;
                }
            },
            DeValue::Float(_) => {
                self.diags
                    .at(&span, "floating-point values are not accepted by any attribute");
                return None;
            }
            DeValue::Datetime(_) => {
                self.diags
                    .at(&span, "dates and times are not accepted by any attribute");
                return None;
            }
            DeValue::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in items.iter() {
                    match self.expr(item) {
                        Some(e) => out.push(e),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                collapse_list(out)
            }
            DeValue::Table(table) => {
                let mut out = BTreeMap::new();
                let mut ok = true;
                for (k, item) in table.iter() {
                    match self.expr(item) {
                        Some(e) => {
                            out.insert(k.get_ref().to_string(), e);
                        }
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                collapse_table(out)
            }
        };
        Some(expr)
    }

    fn string_expr(&mut self, s: &str, span: &Span) -> Option<Expr> {
        let t = self.template(s, span, false, 0)?;
        if let Some(value) = t.whole_value {
            return Some(Expr::Value(value));
        }
        Some(match t.parts.as_slice() {
            [] => Expr::Value(Value::String(String::new())),
            [Part::Text(text)] => Expr::Value(Value::String(text.clone())),
            [Part::Ref(r)] if t.whole => Expr::Ref(r.clone()),
            _ => Expr::Template(t.parts),
        })
    }

    /// Expands the template `s` (written at `span`; `verbatim` when `s` is
    /// the whole text of a file rather than a TOML string): variables,
    /// stack facts, arithmetic, `${if}` blocks and included files are
    /// resolved now; references to resources and AZs remain as parts.
    /// `None` after recording errors.
    fn template(&mut self, s: &str, span: &Span, verbatim: bool, depth: usize) -> Option<Template> {
        let locate = |this: &Self, offset: usize, len: usize| {
            if verbatim {
                span.sub(offset, len)
            } else {
                this.inner_span(span, s, offset, len)
            }
        };
        let parts = match split_template(s) {
            Ok(p) => p,
            Err((offset, message)) => {
                let at = locate(self, offset, 2);
                self.diags.at(&at, message);
                return None;
            }
        };
        let whole = parts.len() == 1 && matches!(parts[0], RawPart::Interp { .. });
        let mut out: Vec<Part> = Vec::new();
        let mut ok = true;
        // Open `${if}` blocks: where each was opened, and whether its text is kept.
        let mut blocks: Vec<(Span, bool)> = Vec::new();
        for part in parts {
            let active = blocks.iter().all(|(_, keep)| *keep);
            match part {
                RawPart::Text(t) => {
                    if active {
                        push_text(&mut out, &t);
                    }
                }
                RawPart::Interp { inner, offset, len } => {
                    let at = locate(self, offset, len);
                    let interp = match parse_interp(&inner) {
                        Ok(i) => i,
                        Err(message) => {
                            self.diags.at(&at, message);
                            ok = false;
                            continue;
                        }
                    };
                    match interp {
                        Interp::If { var, negate } => {
                            let keep = match self.vars.get(&var) {
                                Some(Value::Bool(b)) => *b != negate,
                                Some(_) => {
                                    self.diags.at(
                                        &at,
                                        format!("`${{if}}` needs a boolean variable; `{var}` is not"),
                                    );
                                    ok = false;
                                    false
                                }
                                None => {
                                    self.unknown_var(&var, &at);
                                    ok = false;
                                    false
                                }
                            };
                            blocks.push((at, keep));
                        }
                        Interp::End => {
                            if blocks.pop().is_none() {
                                self.diags.at(&at, "`${end}` without an open `${if ...}`");
                                ok = false;
                            }
                        }
                        _ if !active => {}
                        Interp::File(rel) => {
                            if depth >= 8 {
                                self.diags.at(&at, "files include each other more than 8 deep");
                                ok = false;
                                continue;
                            }
                            let path = self.file.path.parent().unwrap_or(Path::new("")).join(&rel);
                            let text = match std::fs::read_to_string(&path) {
                                Ok(t) => t,
                                Err(e) => {
                                    self.diags.at(&at, format!("cannot read {}: {e}", path.display()));
                                    ok = false;
                                    continue;
                                }
                            };
                            let included = Arc::new(SourceFile { path, text });
                            self.extra_sources.push(included.clone());
                            let outer = std::mem::replace(&mut self.file, included.clone());
                            let whole_file = Span::new(&included, 0..included.text.len());
                            let inner = self.template(&included.text, &whole_file, true, depth + 1);
                            self.file = outer;
                            match inner {
                                Some(t) => {
                                    for p in t.parts {
                                        match p {
                                            Part::Text(text) => push_text(&mut out, &text),
                                            r => out.push(r),
                                        }
                                    }
                                }
                                None => ok = false,
                            }
                        }
                        Interp::Arith(terms) => {
                            let mut total: i64 = 0;
                            for (sign, operand) in terms {
                                let n = match operand {
                                    Operand::Int(n) => Some(n),
                                    Operand::Var(name) => match self.vars.get(&name) {
                                        Some(v) => v.as_i64().or_else(|| {
                                            self.diags
                                                .at(&at, format!("variable `{name}` is not an integer"));
                                            None
                                        }),
                                        None => {
                                            self.unknown_var(&name, &at);
                                            None
                                        }
                                    },
                                };
                                match n {
                                    Some(n) => total = total.saturating_add(sign * n),
                                    None => ok = false,
                                }
                            }
                            if whole {
                                return Some(Template {
                                    parts: Vec::new(),
                                    whole,
                                    whole_value: Some(Value::from(total)),
                                });
                            }
                            push_text(&mut out, &total.to_string());
                        }
                        Interp::Var(name) => match self.vars.get(&name) {
                            Some(value) if whole => {
                                return Some(Template {
                                    parts: Vec::new(),
                                    whole,
                                    whole_value: Some(value.clone()),
                                });
                            }
                            Some(value) => match interpolate(value) {
                                Some(text) => push_text(&mut out, &text),
                                None => {
                                    self.diags.at(
                                        &at,
                                        format!("variable `{name}` cannot be interpolated into a string"),
                                    );
                                    ok = false;
                                }
                            },
                            None => {
                                self.unknown_var(&name, &at);
                                ok = false;
                            }
                        },
                        Interp::StackName => push_text(&mut out, &self.stack_name.clone()),
                        Interp::StackRegion => push_text(&mut out, &self.region.clone()),
                        Interp::Az(i) => out.push(Part::Ref(RefAt {
                            reference: Reference::Az(i),
                            span: at,
                        })),
                        Interp::Resource { name, attr } => out.push(Part::Ref(RefAt {
                            reference: Reference::Resource { name, attr },
                            span: at,
                        })),
                    }
                }
            }
        }
        for (at, _) in blocks {
            self.diags.at(&at, "`${if ...}` is never closed with `${end}`");
            ok = false;
        }
        ok.then_some(Template {
            parts: out,
            whole,
            whole_value: None,
        })
    }

    fn unknown_var(&mut self, name: &str, at: &Span) {
        if self.decls.contains_key(name) {
            // Declared, but without a usable value: its default or `--var`
            // was reported where it is wrong.
            return;
        }
        let help = suggest(name, self.decls.keys().map(String::as_str)).map_or_else(
            || "declare it in [vars]".to_string(),
            |s| format!("did you mean `var.{s}`?"),
        );
        self.diags
            .at_with_help(at, format!("unknown variable `{name}`"), help);
    }

    /// The span of `s[offset..offset+len]` when the TOML source holds the
    /// string verbatim between quotes; the whole value's span otherwise.
    fn inner_span(&self, span: &Span, s: &str, offset: usize, len: usize) -> Span {
        let raw = self.file.text.get(span.range.clone()).unwrap_or("");
        let quote = raw.chars().next().map_or(0, |c| c.len_utf8());
        let body = raw.get(quote..raw.len().saturating_sub(quote)).unwrap_or("");
        if body == s {
            span.sub(quote + offset, len)
        } else {
            span.clone()
        }
    }
}

/// A template with everything known at load time resolved.
struct Template {
    parts: Vec<Part>,
    /// The string was exactly one `${...}`.
    whole: bool,
    /// For a whole-string variable or arithmetic: its value, with its type.
    whole_value: Option<Value>,
}

fn push_text(out: &mut Vec<Part>, text: &str) {
    if let Some(Part::Text(prev)) = out.last_mut() {
        prev.push_str(text);
    } else if !text.is_empty() {
        out.push(Part::Text(text.to_string()));
    }
}

/// A list whose items are all known values becomes one value.
fn collapse_list(items: Vec<Expr>) -> Expr {
    if items.iter().all(|e| matches!(e, Expr::Value(_))) {
        Expr::Value(Value::Array(
            items
                .into_iter()
                .filter_map(|e| if let Expr::Value(v) = e { Some(v) } else { None })
                .collect(),
        ))
    } else {
        Expr::List(items)
    }
}

fn collapse_table(items: BTreeMap<String, Expr>) -> Expr {
    if items.values().all(|e| matches!(e, Expr::Value(_))) {
        Expr::Value(Value::Object(
            items
                .into_iter()
                .filter_map(|(k, e)| {
                    if let Expr::Value(v) = e {
                        Some((k, v))
                    } else {
                        None
                    }
                })
                .collect(),
        ))
    } else {
        Expr::Table(items)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn settable_names(kind: &KindDef) -> Vec<&'static str> {
    kind.attr_names()
        .into_iter()
        .filter(|n| kind.attr(n).is_some_and(|a| a.mode != provider::Mode::Computed))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("meshform-load-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const BASE: &str = r#"
[stack]
name = "base"
region = "eu-west-1"

[vars]
prefix = "Base"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.0.0.0/16"
tags = { Name = "${var.prefix} in ${stack.name}" }

[output.vpc_id]
value = "${vpc.id}"
"#;

    #[test]
    fn include_merges_resources_outputs_and_vars_with_the_includer_in_charge() {
        let dir = Dir::new("merge");
        dir.write("base.toml", BASE);
        let top = dir.write(
            "top.toml",
            r#"
[stack]
name = "full"
region = "us-west-2"
include = ["base.toml"]

[vars]
prefix = "Full"

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "10.0.1.0/24"
availability_zone = "${az[0]}"
"#,
        );
        let stack = load(&top, &LoadOptions::default()).unwrap();
        assert_eq!(stack.name, "full");
        assert_eq!(stack.region, "us-west-2");
        assert_eq!(stack.resources.keys().collect::<Vec<_>>(), ["subnet", "vpc"]);
        assert!(stack.outputs.contains_key("vpc_id"));
        assert_eq!(stack.sources.len(), 2);
        assert_eq!(stack.sources[0].path, top);
        // The includer's default and its stack name reach the included file.
        let tags = &stack.resources["vpc"].attrs["tags"].expr;
        match tags {
            Expr::Value(v) => assert_eq!(v["Name"], "Full in full"),
            other => panic!("{other:?}"),
        }
        // --var overrides reach every file.
        let opts = LoadOptions {
            vars: vec![("prefix".into(), "Cli".into())],
        };
        let stack = load(&top, &opts).unwrap();
        match &stack.resources["vpc"].attrs["tags"].expr {
            Expr::Value(v) => assert_eq!(v["Name"], "Cli in full"),
            other => panic!("{other:?}"),
        }
        // The included file still works on its own.
        let base = load(&dir.0.join("base.toml"), &LoadOptions::default()).unwrap();
        assert_eq!(base.name, "base");
    }

    #[test]
    fn duplicate_across_files_names_both_places() {
        let dir = Dir::new("dup");
        dir.write("base.toml", BASE);
        let top = dir.write(
            "top.toml",
            "[stack]\nname = \"full\"\nregion = \"us-west-2\"\ninclude = [\"base.toml\"]\n\n[resource.vpc]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.1.0.0/16\"\n",
        );
        let err = load(&top, &LoadOptions::default()).unwrap_err();
        let msg = err.messages();
        assert!(
            msg.contains("top.toml:6:11: resource `vpc` is already defined at"),
            "{msg}"
        );
        assert!(msg.contains("base.toml:9:11"), "{msg}");
    }

    #[test]
    fn include_cycles_and_missing_files_are_located() {
        let dir = Dir::new("cycle");
        dir.write(
            "a.toml",
            "[stack]\nname = \"a\"\nregion = \"r\"\ninclude = [\"b.toml\"]\n",
        );
        dir.write(
            "b.toml",
            "[stack]\nname = \"b\"\nregion = \"r\"\ninclude = [\"a.toml\", \"missing.toml\"]\n",
        );
        let err = load(&dir.0.join("a.toml"), &LoadOptions::default()).unwrap_err();
        let msg = err.messages();
        assert!(msg.contains("b.toml:4:12: include cycle"), "{msg}");
        assert!(msg.contains("b.toml:4:22: cannot read included stack"), "{msg}");
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;

    fn load_text(dir: &std::path::Path, text: &str, vars: &[(&str, &str)]) -> Result<Stack, ConfigError> {
        let path = dir.join("s.toml");
        std::fs::write(&path, text).unwrap();
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load(&path, &LoadOptions { vars })
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshform-tpl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const HEAD: &str = "[stack]\nname = \"t\"\nregion = \"r\"\n\n[vars]\nv2 = false\nweight = 0\n\n";

    #[test]
    fn files_conditionals_and_arithmetic_expand_at_load_time() {
        let dir = tmp("expand");
        std::fs::write(
            dir.join("router.yaml"),
            "targets:\n- v1: ${100 - var.weight}\n${if var.v2}- v2: ${var.weight}\n${end}${if !var.v2}# v1 only\n${end}vpc: ${vpc.id}\n",
        )
        .unwrap();
        let text = format!(
            "{HEAD}[resource.vpc]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.0.0.0/16\"\n\n[resource.m]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.1.0.0/16\"\ntags = {{ doc = '${{file(\"router.yaml\")}}' }}\n"
        );
        let stack = load_text(&dir, &text, &[]).unwrap();
        let tags = &stack.resources["m"].attrs["tags"].expr;
        let Expr::Table(map) = tags else {
            panic!("{tags:?}")
        };
        let Expr::Template(parts) = &map["doc"] else {
            panic!()
        };
        let rendered: String = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Ref(r) => format!("<{}>", r.reference),
            })
            .collect();
        assert_eq!(rendered, "targets:\n- v1: 100\n# v1 only\nvpc: <vpc.id>\n");
        // The reference inside the file is a dependency like any other.
        assert_eq!(stack.resources["m"].dependencies(), vec!["vpc"]);
        let stack = load_text(&dir, &text, &[("v2", "true"), ("weight", "50")]).unwrap();
        let Expr::Table(map) = &stack.resources["m"].attrs["tags"].expr else {
            panic!()
        };
        let Expr::Template(parts) = &map["doc"] else {
            panic!()
        };
        let first = match &parts[0] {
            Part::Text(t) => t.clone(),
            _ => panic!(),
        };
        assert_eq!(first, "targets:\n- v1: 50\n- v2: 50\nvpc: ");
    }

    #[test]
    fn enabled_false_leaves_a_resource_out() {
        let dir = tmp("enabled");
        let text = format!(
            "{HEAD}[resource.a]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.0.0.0/16\"\nenabled = \"${{var.v2}}\"\n\n[resource.b]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.1.0.0/16\"\ndepends_on = [\"a\"]\n"
        );
        let stack = load_text(&dir, &text, &[]).unwrap();
        assert!(!stack.resources.contains_key("a"));
        assert!(stack.disabled.contains("a"));
        let stack = load_text(&dir, &text, &[("v2", "true")]).unwrap();
        assert!(stack.resources.contains_key("a"));
        // A value reference to a disabled resource is an error naming why.
        let bad = format!(
            "{HEAD}[resource.a]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.0.0.0/16\"\nenabled = false\n\n[resource.s]\ntype = \"aws.ec2.subnet\"\nvpc_id = \"${{a.id}}\"\ncidr_block = \"10.0.1.0/24\"\navailability_zone = \"x\"\n"
        );
        let err = load_text(&dir, &bad, &[]).unwrap_err().messages();
        assert!(err.contains("`a` is disabled"), "{err}");
    }

    #[test]
    fn template_errors_are_located_in_the_included_file() {
        let dir = tmp("errors");
        std::fs::write(dir.join("m.yaml"), "a: ${var.nope}\n${if var.v2}\nb: 2\n").unwrap();
        let text = format!(
            "{HEAD}[resource.m]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.0.0.0/16\"\ntags = {{ doc = '${{file(\"m.yaml\")}}' }}\n"
        );
        let err = load_text(&dir, &text, &[]).unwrap_err().messages();
        assert!(err.contains("m.yaml:2:1: `${if ...}` is never closed"), "{err}");
        assert!(err.contains("m.yaml:1:4: unknown variable `nope`"), "{err}");
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::state::StateLocation;

    fn load_in(name: &str, stack: &str) -> (PathBuf, Result<Stack, ConfigError>) {
        let dir = std::env::temp_dir().join(format!("meshform-state-key-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.toml");
        std::fs::write(&path, format!("[stack]\nname = \"t\"\nregion = \"r\"\n{stack}\n")).unwrap();
        let loaded = load(&path, &LoadOptions::default());
        (dir, loaded)
    }

    #[test]
    fn stack_state_is_a_location() {
        let (dir, s3) = load_in("s3", "state = \"s3://team/stacks/t.json\"");
        assert_eq!(
            s3.unwrap().state,
            Some(StateLocation::S3 {
                bucket: "team".to_string(),
                key: "stacks/t.json".to_string()
            })
        );
        let _ = std::fs::remove_dir_all(dir);
        // A relative path is relative to the stack file, not the working
        // directory.
        let (dir, file) = load_in("file", "state = \"state/t.json\"");
        assert_eq!(
            file.unwrap().state,
            Some(StateLocation::File(dir.join("state/t.json")))
        );
        let _ = std::fs::remove_dir_all(dir);
        let (dir, none) = load_in("none", "");
        assert_eq!(none.unwrap().state, None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_stack_state_is_a_located_error() {
        for (name, value, says) in [
            (
                "nokey",
                "state = \"s3://team\"",
                "s.toml:4:9: invalid `state`: `s3://team` names no object key",
            ),
            (
                "nobucket",
                "state = \"s3:///k.json\"",
                "s.toml:4:9: invalid `state`",
            ),
            (
                "empty",
                "state = \"\"",
                "s.toml:4:9: invalid `state`: the state location is empty",
            ),
            ("type", "state = 3", "s.toml:4:9: wrong type for `state`"),
        ] {
            let (dir, loaded) = load_in(name, value);
            let err = loaded.unwrap_err().messages();
            assert!(err.contains(says), "{name}: {err}");
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

//! The harness's model of a generated stack: resources over the fake kinds
//! forming a DAG (a resource refers only to resources of lower rank),
//! written out as stack TOML, and the random edits between runs.

use std::collections::{BTreeMap, BTreeSet};

use super::ScenarioConfig;
use crate::provider::ownership_tags;
use crate::testing::SplitMix;
use crate::{Attrs, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Named,
    Anon,
    Keyed,
}

impl Kind {
    pub(super) fn type_name(self) -> &'static str {
        match self {
            Kind::Named => "test.named",
            Kind::Anon => "test.anon",
            Kind::Keyed => "test.keyed",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Named => "n",
            Kind::Anon => "a",
            Kind::Keyed => "k",
        }
    }

    /// Optional attributes a stack may leave out.
    fn optional_attrs(self) -> &'static [&'static str] {
        match self {
            Kind::Named => &["size", "refs", "parent", "tags"],
            Kind::Anon => &["label", "parent", "refs", "tags"],
            Kind::Keyed => &["target"],
        }
    }
}

/// A string attribute's value: a literal, or a reference to another
/// resource's `id` or `arn` (by address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Val {
    Lit(String),
    Id(String),
    Arn(String),
}

impl Val {
    pub(super) fn target(&self) -> Option<&str> {
        match self {
            Val::Lit(_) => None,
            Val::Id(a) | Val::Arn(a) => Some(a),
        }
    }

    fn retarget(&mut self, from: &str, to: &str) {
        match self {
            Val::Id(a) | Val::Arn(a) if a == from => *a = to.to_string(),
            _ => {}
        }
    }

    fn toml(&self) -> String {
        match self {
            Val::Lit(s) => format!("\"{s}\""),
            Val::Id(a) => format!("\"${{{a}.id}}\""),
            Val::Arn(a) => format!("\"${{{a}.arn}}\""),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Res {
    pub(super) addr: String,
    pub(super) kind: Kind,
    /// Position in the DAG: references and `depends_on` go to lower ranks.
    pub(super) rank: u64,
    /// `name` of a named resource, `key` of a keyed one.
    pub(super) ident: String,
    pub(super) size: i64,
    pub(super) label: String,
    pub(super) refs: Vec<Val>,
    pub(super) parent: Val,
    pub(super) target: Val,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) depends_on: BTreeSet<String>,
    /// Optional attributes left out of the stack.
    pub(super) omitted: BTreeSet<&'static str>,
}

impl Res {
    /// Every value that may refer to another resource, with the attribute.
    fn vals(&self) -> Vec<(&'static str, &Val)> {
        let mut out = Vec::new();
        let has = |a: &str| !self.omitted.contains(a);
        match self.kind {
            Kind::Named | Kind::Anon => {
                if has("refs") {
                    out.extend(self.refs.iter().map(|v| ("refs", v)));
                }
                if has("parent") {
                    out.push(("parent", &self.parent));
                }
            }
            Kind::Keyed => {
                if has("target") {
                    out.push(("target", &self.target));
                }
            }
        }
        out
    }

    /// Addresses this resource refers to through attributes that change in
    /// place (`refs`, `target`).
    pub(super) fn inplace_targets(&self) -> BTreeSet<&str> {
        self.vals()
            .into_iter()
            .filter(|(a, _)| *a != "parent")
            .filter_map(|(_, v)| v.target())
            .collect()
    }

    /// Every address it depends on: references and `depends_on`.
    pub(super) fn dependencies(&self) -> BTreeSet<&str> {
        self.vals()
            .into_iter()
            .filter_map(|(_, v)| v.target())
            .chain(self.depends_on.iter().map(String::as_str))
            .collect()
    }

    /// The address its `parent` (a force-new attribute) refers to.
    pub(super) fn parent_target(&self) -> Option<&str> {
        self.vals()
            .into_iter()
            .find(|(a, _)| *a == "parent")
            .and_then(|(_, v)| v.target())
    }

    fn vals_mut(&mut self) -> Vec<&mut Val> {
        let mut out: Vec<&mut Val> = self.refs.iter_mut().collect();
        out.push(&mut self.parent);
        out.push(&mut self.target);
        out
    }
}

/// The stack as the harness means it; `to_toml` writes it.
#[derive(Debug, Clone)]
pub(super) struct Model {
    pub(super) stack: String,
    pub(super) res: BTreeMap<String, Res>,
    pub(super) outputs: BTreeMap<String, Val>,
    /// Renames so far: (old address, new address).
    pub(super) renames: Vec<(String, String)>,
    counter: u64,
}

const LABELS: &[&str] = &["blue", "green", "${az[0]}", "${az[1]} side", "plain"];
const TEAMS: &[&str] = &["core", "edge", "data"];
const NAMED_IN_PLACE: &[&str] = &["size", "refs", "tags"];
const ANON_IN_PLACE: &[&str] = &["label", "refs", "tags"];

/// An edit of the model: what it did, or `None` when it did not apply.
type Edit = fn(&mut Model, &mut SplitMix) -> Option<String>;

impl Model {
    pub(super) fn generate(rng: &mut SplitMix, stack: &str, n: usize) -> Model {
        let mut m = Model {
            stack: stack.to_string(),
            res: BTreeMap::new(),
            outputs: BTreeMap::new(),
            renames: Vec::new(),
            counter: 0,
        };
        for i in 0..n {
            let r = m.new_res(rng, (i as u64 + 1) << 20);
            m.res.insert(r.addr.clone(), r);
        }
        for _ in 0..rng.below(3) {
            m.add_output(rng);
        }
        m
    }

    fn fresh(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn random_kind(rng: &mut SplitMix) -> Kind {
        match rng.below(20) {
            0..=7 => Kind::Named,
            8..=14 => Kind::Anon,
            _ => Kind::Keyed,
        }
    }

    /// Resources below `rank`.
    fn below(&self, rank: u64) -> Vec<&Res> {
        self.res.values().filter(|r| r.rank < rank).collect()
    }

    /// A reference to a random resource below `rank`, or `None` when there
    /// is none.
    fn random_ref(&self, rng: &mut SplitMix, rank: u64) -> Option<Val> {
        let below = self.below(rank);
        if below.is_empty() {
            return None;
        }
        let r = *rng.pick(&below);
        Some(if r.kind == Kind::Named && rng.chance(0.3) {
            Val::Arn(r.addr.clone())
        } else {
            Val::Id(r.addr.clone())
        })
    }

    fn random_val(&mut self, rng: &mut SplitMix, rank: u64, ref_chance: f64) -> Val {
        if rng.chance(ref_chance)
            && let Some(v) = self.random_ref(rng, rank)
        {
            return v;
        }
        if rng.chance(0.5) {
            Val::Lit("root".into())
        } else {
            Val::Lit(format!("lit-{}", self.fresh()))
        }
    }

    fn random_refs(&mut self, rng: &mut SplitMix, rank: u64) -> Vec<Val> {
        let mut refs: Vec<Val> = Vec::new();
        for _ in 0..rng.below(4) {
            if let Some(v) = self.random_ref(rng, rank)
                && !refs.iter().any(|r| r.target() == v.target())
            {
                refs.push(v);
            }
        }
        refs
    }

    fn random_tags(&mut self, rng: &mut SplitMix) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        if rng.chance(0.5) {
            tags.insert("team".to_string(), rng.pick(TEAMS).to_string());
        }
        if rng.chance(0.2) {
            tags.insert("Name".to_string(), format!("t{}", self.fresh()));
        }
        tags
    }

    fn new_res(&mut self, rng: &mut SplitMix, rank: u64) -> Res {
        let kind = Self::random_kind(rng);
        self.new_res_of(rng, rank, kind)
    }

    fn new_res_of(&mut self, rng: &mut SplitMix, rank: u64, kind: Kind) -> Res {
        let n = self.fresh();
        let addr = format!("{}{n}", kind.prefix());
        let ident = match kind {
            Kind::Named => format!("name-{n}"),
            Kind::Keyed => format!("key-{n}"),
            Kind::Anon => String::new(),
        };
        let mut depends_on = BTreeSet::new();
        if rng.chance(0.2)
            && let Some(v) = self.random_ref(rng, rank)
        {
            depends_on.insert(v.target().unwrap_or_default().to_string());
        }
        Res {
            addr,
            kind,
            rank,
            ident,
            size: rng.below(100) as i64,
            label: rng.pick(LABELS).to_string(),
            refs: self.random_refs(rng, rank),
            parent: self.random_val(rng, rank, 0.5),
            target: self.random_val(rng, rank, 0.6),
            tags: self.random_tags(rng),
            depends_on,
            omitted: BTreeSet::new(),
        }
    }

    fn add_output(&mut self, rng: &mut SplitMix) {
        if let Some(v) = self.random_ref(rng, u64::MAX) {
            let name = format!("o{}", self.fresh());
            self.outputs.insert(name, v);
        }
    }

    pub(super) fn to_toml(&self) -> String {
        let mut s = format!("[stack]\nname = \"{}\"\nregion = \"test-1\"\n", self.stack);
        // Resources in rank order, so the text reads top-down.
        let mut res: Vec<&Res> = self.res.values().collect();
        res.sort_by_key(|r| r.rank);
        for r in res {
            s.push_str(&format!(
                "\n[resource.{}]\ntype = \"{}\"\n",
                r.addr,
                r.kind.type_name()
            ));
            let has = |a: &str| !r.omitted.contains(a);
            let refs = || {
                let items: Vec<String> = r.refs.iter().map(Val::toml).collect();
                format!("refs = [{}]\n", items.join(", "))
            };
            let tags = || {
                let items: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k} = \"{v}\"")).collect();
                format!("tags = {{ {} }}\n", items.join(", "))
            };
            match r.kind {
                Kind::Named => {
                    s.push_str(&format!("name = \"{}\"\n", r.ident));
                    if has("size") {
                        s.push_str(&format!("size = {}\n", r.size));
                    }
                    if has("refs") {
                        s.push_str(&refs());
                    }
                    if has("parent") {
                        s.push_str(&format!("parent = {}\n", r.parent.toml()));
                    }
                    if has("tags") {
                        s.push_str(&tags());
                    }
                }
                Kind::Anon => {
                    if has("label") {
                        s.push_str(&format!("label = \"{}\"\n", r.label));
                    }
                    if has("refs") {
                        s.push_str(&refs());
                    }
                    if has("parent") {
                        s.push_str(&format!("parent = {}\n", r.parent.toml()));
                    }
                    if has("tags") {
                        s.push_str(&tags());
                    }
                }
                Kind::Keyed => {
                    s.push_str(&format!("key = \"{}\"\n", r.ident));
                    if has("target") {
                        s.push_str(&format!("target = {}\n", r.target.toml()));
                    }
                }
            }
            if !r.depends_on.is_empty() {
                let deps: Vec<String> = r.depends_on.iter().map(|d| format!("\"{d}\"")).collect();
                s.push_str(&format!("depends_on = [{}]\n", deps.join(", ")));
            }
        }
        for (name, v) in &self.outputs {
            s.push_str(&format!("\n[output.{name}]\nvalue = {}\n", v.toml()));
        }
        s
    }

    /// The attributes the world's object for `r` must have once the stack is
    /// applied (computed ones aside). `resolve` gives a reference's value.
    pub(super) fn expected_attrs(
        &self,
        r: &Res,
        azs: &[String],
        resolve: &dyn Fn(&Val) -> Option<Value>,
    ) -> Attrs {
        let mut out = Attrs::new();
        let has = |a: &str| !r.omitted.contains(a);
        let val = |v: &Val| match v {
            Val::Lit(s) => Value::String(s.replace("${az[0]}", &azs[0]).replace("${az[1]}", &azs[1])),
            other => resolve(other).unwrap_or(Value::Null),
        };
        let refs = || Value::Array(r.refs.iter().map(val).collect());
        let mut tags = Attrs::new();
        if has("tags") {
            for (k, v) in &r.tags {
                tags.insert(k.clone(), Value::String(v.clone()));
            }
        }
        for (k, v) in ownership_tags(&self.stack, &r.addr) {
            tags.insert(k, Value::String(v));
        }
        match r.kind {
            Kind::Named => {
                out.insert("name".into(), Value::String(r.ident.clone()));
                if has("size") {
                    out.insert("size".into(), Value::from(r.size));
                }
                if has("refs") {
                    out.insert("refs".into(), refs());
                }
                if has("parent") {
                    out.insert("parent".into(), val(&r.parent));
                }
                out.insert("tags".into(), Value::Object(tags));
            }
            Kind::Anon => {
                if has("label") {
                    out.insert("label".into(), val(&Val::Lit(r.label.clone())));
                }
                if has("refs") {
                    out.insert("refs".into(), refs());
                }
                if has("parent") {
                    out.insert("parent".into(), val(&r.parent));
                }
                out.insert("tags".into(), Value::Object(tags));
            }
            Kind::Keyed => {
                out.insert("key".into(), Value::String(r.ident.clone()));
                if has("target") {
                    out.insert("target".into(), val(&r.target));
                }
            }
        }
        out
    }

    // ---- edits -----------------------------------------------------------

    /// Applies one random edit allowed by `cfg`; returns what it did, or
    /// `None` when the edit drawn did not apply.
    pub(super) fn edit(&mut self, rng: &mut SplitMix, cfg: &ScenarioConfig) -> Option<String> {
        let mut menu: Vec<(u64, Edit)> = vec![(30, Model::edit_in_place), (8, Model::edit_depends_on)];
        if cfg.force_new {
            menu.push((15, Model::edit_force_new));
        }
        if cfg.type_changes {
            menu.push((4, Model::edit_type));
        }
        if cfg.additions {
            menu.push((15, Model::edit_add));
        }
        if cfg.removals {
            menu.push((10, Model::edit_remove));
        }
        if cfg.renames {
            menu.push((8, Model::edit_rename));
        }
        if cfg.attribute_removals {
            menu.push((6, Model::edit_omit));
        }
        let total: u64 = menu.iter().map(|(w, _)| w).sum();
        let mut x = rng.below(total);
        for (w, f) in menu {
            if x < w {
                return f(self, rng);
            }
            x -= w;
        }
        None
    }

    fn pick_res(&self, rng: &mut SplitMix, filter: impl Fn(&Res) -> bool) -> Option<String> {
        let c: Vec<&String> = self.res.values().filter(|r| filter(r)).map(|r| &r.addr).collect();
        (!c.is_empty()).then(|| rng.pick(&c).to_string())
    }

    fn edit_in_place(&mut self, rng: &mut SplitMix) -> Option<String> {
        if rng.chance(0.1) {
            if !self.outputs.is_empty() && rng.chance(0.5) {
                let names: Vec<String> = self.outputs.keys().cloned().collect();
                let name = rng.pick(&names).clone();
                self.outputs.remove(&name);
                return Some(format!("remove output {name}"));
            }
            self.add_output(rng);
            return Some("add an output".into());
        }
        let addr = self.pick_res(rng, |_| true)?;
        let r = self.res[&addr].clone();
        let what = match r.kind {
            Kind::Named => *rng.pick(NAMED_IN_PLACE),
            Kind::Anon => *rng.pick(ANON_IN_PLACE),
            Kind::Keyed => "target",
        };
        let mut new = r.clone();
        new.omitted.remove(what);
        match what {
            "size" => new.size = (r.size + 1 + rng.below(50) as i64) % 1000,
            "label" => {
                new.label = if rng.chance(0.5) {
                    rng.pick(LABELS).to_string()
                } else {
                    format!("label-{}", self.fresh())
                }
            }
            "tags" => {
                new.tags = self.random_tags(rng);
                new.tags.insert("v".into(), format!("{}", self.fresh()));
            }
            "target" => new.target = self.random_val(rng, r.rank, 0.6),
            _ => {
                // refs: drop one, or add one.
                if !new.refs.is_empty() && rng.chance(0.5) {
                    let i = rng.below(new.refs.len() as u64) as usize;
                    new.refs.remove(i);
                } else if let Some(v) = self.random_ref(rng, r.rank) {
                    if !new.refs.iter().any(|x| x.target() == v.target()) {
                        new.refs.push(v);
                    }
                } else {
                    new.refs.clear();
                }
            }
        }
        self.res.insert(addr.clone(), new);
        Some(format!("change {what} of {addr} in place"))
    }

    fn edit_depends_on(&mut self, rng: &mut SplitMix) -> Option<String> {
        let addr = self.pick_res(rng, |_| true)?;
        let rank = self.res[&addr].rank;
        let below: Vec<String> = self.below(rank).iter().map(|r| r.addr.clone()).collect();
        let r = self.res.get_mut(&addr)?;
        if !r.depends_on.is_empty() && (below.is_empty() || rng.chance(0.5)) {
            let d = r.depends_on.iter().next()?.clone();
            r.depends_on.remove(&d);
            return Some(format!("{addr} no longer depends_on {d}"));
        }
        if below.is_empty() {
            return None;
        }
        let d = rng.pick(&below).clone();
        r.depends_on.insert(d.clone());
        Some(format!("{addr} depends_on {d}"))
    }

    fn edit_force_new(&mut self, rng: &mut SplitMix) -> Option<String> {
        let addr = self.pick_res(rng, |_| true)?;
        let r = self.res[&addr].clone();
        let mut new = r.clone();
        let what = match r.kind {
            Kind::Named if rng.chance(0.5) => {
                new.ident = format!("name-{}", self.fresh());
                "name"
            }
            Kind::Keyed => {
                new.ident = format!("key-{}", self.fresh());
                "key"
            }
            _ => {
                let mut v = self.random_val(rng, r.rank, 0.6);
                if v == r.parent {
                    v = Val::Lit(format!("lit-{}", self.fresh()));
                }
                new.parent = v;
                new.omitted.remove("parent");
                "parent"
            }
        };
        self.res.insert(addr.clone(), new);
        Some(format!("change {what} of {addr} (forces replacement)"))
    }

    fn edit_type(&mut self, rng: &mut SplitMix) -> Option<String> {
        let addr = self.pick_res(rng, |r| r.kind != Kind::Keyed)?;
        let mut new = self.res[&addr].clone();
        let (from, to) = (
            new.kind,
            if new.kind == Kind::Named {
                Kind::Anon
            } else {
                Kind::Named
            },
        );
        new.kind = to;
        if to == Kind::Named {
            new.ident = format!("name-{}", self.fresh());
        } else {
            // Only named objects have an arn: refer to this one by id.
            for r in self.res.values_mut() {
                for v in r.vals_mut() {
                    if *v == Val::Arn(addr.clone()) {
                        *v = Val::Id(addr.clone());
                    }
                }
            }
            for v in self.outputs.values_mut() {
                if *v == Val::Arn(addr.clone()) {
                    *v = Val::Id(addr.clone());
                }
            }
        }
        new.omitted.clear();
        self.res.insert(addr.clone(), new);
        Some(format!(
            "change the type of {addr} from {} to {}",
            from.type_name(),
            to.type_name()
        ))
    }

    fn edit_add(&mut self, rng: &mut SplitMix) -> Option<String> {
        // A rank between two existing ones (or past the last), so that the
        // new resource may refer to some and be referred to by others.
        let mut ranks: Vec<u64> = self.res.values().map(|r| r.rank).collect();
        ranks.sort_unstable();
        let rank = match ranks.len() {
            0 => 1 << 20,
            n => {
                let i = rng.below(n as u64 + 1) as usize;
                let lo = if i == 0 { 0 } else { ranks[i - 1] };
                let hi = if i == n { lo + (2 << 20) } else { ranks[i] };
                if hi - lo < 2 {
                    ranks[n - 1] + (1 << 20)
                } else {
                    lo + 1 + rng.below(hi - lo - 1)
                }
            }
        };
        let r = self.new_res(rng, rank);
        let addr = r.addr.clone();
        self.res.insert(addr.clone(), r);
        // Sometimes a resource above it starts referring to it.
        let mut also = String::new();
        if rng.chance(0.4)
            && let Some(user) = self.pick_res(rng, |x| x.rank > rank && x.kind != Kind::Keyed)
        {
            let u = self.res.get_mut(&user)?;
            u.refs.push(Val::Id(addr.clone()));
            u.omitted.remove("refs");
            also = format!("; {user} refers to it");
        }
        Some(format!("add {addr}{also}"))
    }

    fn edit_remove(&mut self, rng: &mut SplitMix) -> Option<String> {
        if self.res.len() < 2 {
            return None;
        }
        let addr = self.pick_res(rng, |_| true)?;
        self.res.remove(&addr);
        for r in self.res.values_mut() {
            r.refs.retain(|v| v.target() != Some(&addr));
            if r.parent.target() == Some(&addr) {
                r.parent = Val::Lit("root".into());
            }
            if r.target.target() == Some(&addr) {
                r.target = Val::Lit("none".into());
            }
            r.depends_on.remove(&addr);
        }
        self.outputs.retain(|_, v| v.target() != Some(&addr));
        Some(format!("remove {addr}"))
    }

    fn edit_rename(&mut self, rng: &mut SplitMix) -> Option<String> {
        let addr = self.pick_res(rng, |_| true)?;
        let mut r = self.res.remove(&addr)?;
        let new_addr = format!("{}{}", r.kind.prefix(), self.fresh());
        r.addr = new_addr.clone();
        self.res.insert(new_addr.clone(), r);
        for r in self.res.values_mut() {
            for v in r.vals_mut() {
                v.retarget(&addr, &new_addr);
            }
            if r.depends_on.remove(&addr) {
                r.depends_on.insert(new_addr.clone());
            }
        }
        for v in self.outputs.values_mut() {
            v.retarget(&addr, &new_addr);
        }
        self.renames.push((addr.clone(), new_addr.clone()));
        Some(format!("rename {addr} to {new_addr} (same identity)"))
    }

    fn edit_omit(&mut self, rng: &mut SplitMix) -> Option<String> {
        let addr = self.pick_res(rng, |r| {
            r.kind.optional_attrs().iter().any(|a| !r.omitted.contains(a))
        })?;
        let r = self.res.get_mut(&addr)?;
        let present: Vec<&'static str> = r
            .kind
            .optional_attrs()
            .iter()
            .copied()
            .filter(|a| !r.omitted.contains(a))
            .collect();
        let a = *rng.pick(&present);
        r.omitted.insert(a);
        Some(format!("leave {a} of {addr} unset"))
    }
}

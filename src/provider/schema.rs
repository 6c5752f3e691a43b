//! Static description of a resource kind's attributes, used by validation,
//! planning and documentation. Schemas are pure data: no I/O.

/// The type an attribute's value must have.
#[derive(Debug, Clone, Copy)]
pub enum AttrType {
    String,
    Bool,
    Int,
    /// An IPv4 CIDR block such as `10.192.0.0/16`; validated and stored as a string.
    Cidr,
    /// A list of strings.
    StringList,
    /// A table of string values (for example tags).
    StringMap,
    /// A JSON document given as a TOML table or as a JSON string; stored as
    /// the parsed JSON value so that formatting never shows as a change.
    Json,
    /// A list of tables, each with the given attributes.
    ObjectList(&'static [AttrSchema]),
}

impl AttrType {
    /// The name shown in error messages.
    pub fn describe(&self) -> &'static str {
        match self {
            AttrType::String => "a string",
            AttrType::Bool => "a boolean",
            AttrType::Int => "an integer",
            AttrType::Cidr => "a CIDR block string",
            AttrType::StringList => "a list of strings",
            AttrType::StringMap => "a table of strings",
            AttrType::Json => "a table or a JSON string",
            AttrType::ObjectList(_) => "a list of tables",
        }
    }
}

/// Whether the user sets an attribute, may set it, or only reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Required,
    Optional,
    /// Known only after the resource exists (ids, ARNs, addresses).
    Computed,
}

/// A default applied when an optional attribute is not set, so that drift in
/// it is still detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    Bool(bool),
    Int(i64),
    Str(&'static str),
}

impl Default {
    pub fn to_value(self) -> crate::Value {
        match self {
            Default::Bool(b) => crate::Value::Bool(b),
            Default::Int(i) => crate::Value::from(i),
            Default::Str(s) => crate::Value::String(s.to_string()),
        }
    }
}

/// One attribute of a resource kind.
#[derive(Debug, Clone, Copy)]
pub struct AttrSchema {
    pub name: &'static str,
    pub ty: AttrType,
    pub mode: Mode,
    /// Changing this attribute cannot be done in place: the plan replaces
    /// the resource and names this attribute as the reason.
    pub force_new: bool,
    pub default: Option<Default>,
    pub doc: &'static str,
}

impl AttrSchema {
    pub const fn required(name: &'static str, ty: AttrType, doc: &'static str) -> Self {
        AttrSchema {
            name,
            ty,
            mode: Mode::Required,
            force_new: false,
            default: None,
            doc,
        }
    }
    pub const fn optional(name: &'static str, ty: AttrType, doc: &'static str) -> Self {
        AttrSchema {
            name,
            ty,
            mode: Mode::Optional,
            force_new: false,
            default: None,
            doc,
        }
    }
    pub const fn computed(name: &'static str, ty: AttrType, doc: &'static str) -> Self {
        AttrSchema {
            name,
            ty,
            mode: Mode::Computed,
            force_new: false,
            default: None,
            doc,
        }
    }
    /// Marks the attribute as forcing replacement when it changes.
    pub const fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }
    pub const fn default(mut self, d: Default) -> Self {
        self.default = Some(d);
        self
    }
}

/// The static definition of a resource kind: its type name and attributes.
#[derive(Debug)]
pub struct KindDef {
    /// `provider.service.kind`, for example `aws.ec2.vpc`.
    pub type_name: &'static str,
    pub doc: &'static str,
    /// Attributes, including computed ones. `id` is implicit and always computed.
    pub attrs: &'static [AttrSchema],
    /// Whether the kind carries tags: a `tags` attribute is then accepted and
    /// meshform adds `meshform:stack` and `meshform:address` to it.
    pub taggable: bool,
    /// Brings a value of attribute `name` into canonical form before the
    /// planner compares desired and live values, for equivalences the
    /// attribute type alone cannot know (an AWS managed policy given by name
    /// or by ARN, a list whose order means nothing). Pure.
    pub normalize: Option<fn(&str, crate::Value) -> crate::Value>,
}

impl KindDef {
    /// Looks an attribute up by name (`id` and, for taggable kinds, `tags` included).
    pub fn attr(&self, name: &str) -> Option<AttrSchema> {
        if name == "id" {
            return Some(AttrSchema::computed("id", AttrType::String, "The cloud id."));
        }
        if name == "tags" && self.taggable {
            return Some(AttrSchema::optional("tags", AttrType::StringMap, "Tags."));
        }
        self.attrs.iter().find(|a| a.name == name).copied()
    }

    /// Every attribute name, for "did you mean" suggestions.
    pub fn attr_names(&self) -> Vec<&'static str> {
        let mut names = vec!["id"];
        if self.taggable {
            names.push("tags");
        }
        names.extend(self.attrs.iter().map(|a| a.name));
        names
    }
}

//! Static description of a resource kind's attributes, used by validation,
//! planning and documentation. Schemas are pure data: no I/O.

/// The type an attribute's value must have.
#[derive(Debug, Clone, Copy)]
pub enum AttrType {
    /// Any string.
    String,
    /// `true` or `false`.
    Bool,
    /// An integer; 64-bit signed, like TOML's.
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
    /// Must be set in the stack; validation reports it when missing.
    Required,
    /// May be set; when it is not, the attribute's `default` (if any) is the
    /// desired value.
    Optional,
    /// Known only after the resource exists (ids, ARNs, addresses).
    Computed,
}

/// A default applied when an optional attribute is not set, so that drift in
/// it is still detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// For a [`AttrType::Bool`] attribute.
    Bool(bool),
    /// For an [`AttrType::Int`] attribute.
    Int(i64),
    /// For a string-valued attribute ([`AttrType::String`] or [`AttrType::Cidr`]).
    Str(&'static str),
}

impl Default {
    /// The default as an attribute value.
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
    /// The attribute's key, in the stack's resource table and in state.
    pub name: &'static str,
    /// The type its value must have; validation checks configured values
    /// against it.
    pub ty: AttrType,
    /// Whether the user must, may or cannot set it.
    pub mode: Mode,
    /// Changing this attribute cannot be done in place: the plan replaces
    /// the resource and names this attribute as the reason.
    pub force_new: bool,
    /// The value desired when an optional attribute is not set (for a field
    /// of a list of tables, filled into each item that lacks it); `None` when
    /// there is none.
    pub default: Option<Default>,
    /// One sentence saying what the attribute holds, for documentation.
    pub doc: &'static str,
    /// A secret (an AUTH token): never shown, kept in state only as a
    /// salted hash (see [`crate::sensitive`]).
    pub sensitive: bool,
}

impl AttrSchema {
    /// An attribute the stack must set.
    pub const fn required(name: &'static str, ty: AttrType, doc: &'static str) -> Self {
        AttrSchema {
            name,
            ty,
            mode: Mode::Required,
            force_new: false,
            default: None,
            doc,
            sensitive: false,
        }
    }
    /// An attribute the stack may set; chain [`default`](Self::default()) to
    /// give it a default.
    pub const fn optional(name: &'static str, ty: AttrType, doc: &'static str) -> Self {
        AttrSchema {
            name,
            ty,
            mode: Mode::Optional,
            force_new: false,
            default: None,
            doc,
            sensitive: false,
        }
    }
    /// An attribute the cloud sets and the stack cannot.
    pub const fn computed(name: &'static str, ty: AttrType, doc: &'static str) -> Self {
        AttrSchema {
            name,
            ty,
            mode: Mode::Computed,
            force_new: false,
            default: None,
            doc,
            sensitive: false,
        }
    }
    /// Marks the attribute as forcing replacement when it changes.
    pub const fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }
    /// Sets the value desired when the attribute is not set.
    pub const fn default(mut self, d: Default) -> Self {
        self.default = Some(d);
        self
    }
    /// Marks the attribute as a secret.
    pub const fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

/// Declares a kind's attributes: each is its doc comment, then its mode
/// (`required`, `optional` or `computed`), `name: Type` (an [`AttrType`]
/// variant), for an optional one `= Default` (a [`Default`] variant), and
/// `, force_new` when a change replaces the object, `, sensitive` when it
/// holds a secret. For example:
///
/// ```ignore
/// attrs: attrs! {
///     /// Repository name, unique in the registry.
///     required name: String, force_new;
///     /// Scan each image for vulnerabilities when pushed.
///     optional scan_on_push: Bool = Bool(false);
/// },
/// ```
macro_rules! attrs {
    ($(
        $(#[doc = $doc:literal])+
        $mode:ident $name:ident : $ty:ident $(($inner:expr))? $(= $dk:ident($dv:expr))? $(, $flag:ident)*;
    )*) => {
        &[$(
            $crate::provider::schema::AttrSchema::$mode(
                stringify!($name),
                $crate::provider::schema::AttrType::$ty $(($inner))?,
                concat!($($doc),+).trim_ascii_start(),
            )
            $(.default($crate::provider::schema::Default::$dk($dv)))?
            $(.$flag())*
        ),*]
    };
}
pub(crate) use attrs;

/// The static definition of a resource kind: its type name and attributes.
#[derive(Debug)]
pub struct KindDef {
    /// `provider.service.kind`, for example `aws.ec2.vpc`.
    pub type_name: &'static str,
    /// One sentence describing the kind; `meshform types` prints it after the
    /// type name.
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
    /// Checks the machine can run this kind at all (for example that a
    /// program it drives is on PATH), so that `validate`, `plan` and
    /// `apply` say so before anything is changed. `Err` holds the message.
    pub preflight: Option<fn() -> Result<(), String>>,
    /// What makes an object of this kind unique where it lives: each entry
    /// is a set of attributes that no two existing objects may share (an
    /// IAM policy's `name`; a subnet's `vpc_id` and `cidr_block`, CIDRs
    /// clashing when they overlap). An old object and its replacement whose
    /// values all match in one set cannot exist at once, so the old one is
    /// deleted first; otherwise the replacement may be created first. Empty
    /// when any number of objects may exist with the same attributes.
    pub identity: &'static [&'static [&'static str]],
    /// Make-before-break: from the attributes an object has (`prior`) and
    /// those an update gives it (`desired`), the attributes of an interim
    /// object that serves both what used the prior one and what will use
    /// the desired one (a DestinationRule with the old subsets and the new).
    /// When an update removes something and resources that depend on this
    /// one change in the same apply, the engine applies the interim first,
    /// then the dependents, and only then the update. `None` for kinds
    /// whose updates never take away what a dependent may name. Pure.
    pub expand: Option<fn(&crate::Attrs, &crate::Attrs) -> crate::Attrs>,
    /// Objects of other kinds live inside this one and go when it is
    /// deleted (a Kubernetes cluster and what was applied to it): when a
    /// dependent's cloud cannot be reached, it is dropped from state once
    /// this resource is deleted.
    pub hosts_objects: bool,
}

impl KindDef {
    /// The settings most kinds share, for struct update syntax
    /// (`..KindDef::BASE`): not taggable, no normalization, no preflight,
    /// no identity, hosting nothing. A definition states only where it
    /// differs; the empty name, doc and attributes are always overridden.
    pub const BASE: KindDef = KindDef {
        type_name: "",
        doc: "",
        attrs: &[],
        taggable: false,
        normalize: None,
        preflight: None,
        identity: &[],
        expand: None,
        hosts_objects: false,
    };

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

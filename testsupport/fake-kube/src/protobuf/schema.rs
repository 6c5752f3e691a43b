//! The message table `proto/k8s-schema.txt`, generated from Kubernetes'
//! `generated.proto` files and Go struct tags by `proto/gen_schema.py`
//! (whose header describes the format), parsed once.

use super::DecodeError;
use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../../proto/k8s-schema.txt");

/// A field's element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Double,
    Float,
    /// A message, by its table name (`core/v1.Namespace`).
    Message(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cardinality {
    Single,
    Repeated,
    /// A map; the field's `ty` is the value type.
    Map,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub number: u32,
    /// The JSON name; empty for an inlined (embedded) struct.
    pub json: String,
    pub ty: Type,
    /// A map's key type.
    pub key: Option<Type>,
    pub cardinality: Cardinality,
    /// A Go pointer: absent is nil, present zero values are kept.
    pub pointer: bool,
    /// `omitempty`: Go leaves zero scalars, nil slices and maps out.
    pub omitempty: bool,
    /// Go inlines the struct's fields into the parent's JSON object.
    pub inline: bool,
}

#[derive(Debug, Default)]
pub struct Message {
    pub fields: Vec<Field>,
}

#[derive(Debug, Default)]
pub struct Schema {
    /// Alias (`core/v1`) → proto package (`k8s.io.api.core.v1`).
    packages: HashMap<String, String>,
    /// API version (`apps/v1`) → alias (`apps/v1`).
    groups: HashMap<String, String>,
    messages: HashMap<String, Message>,
}

fn parse_type(s: &str) -> Result<Type, String> {
    Ok(match s {
        "string" => Type::String,
        "bytes" => Type::Bytes,
        "bool" => Type::Bool,
        "int32" => Type::Int32,
        "int64" => Type::Int64,
        "uint32" => Type::Uint32,
        "uint64" => Type::Uint64,
        "double" => Type::Double,
        "float" => Type::Float,
        m if m.contains('.') => Type::Message(m.to_string()),
        other => return Err(format!("unknown type {other:?}")),
    })
}

fn parse_field(token: &str) -> Result<Field, String> {
    let parts: Vec<&str> = token.split(':').collect();
    let [number, json, ty, flags] = parts.as_slice() else {
        return Err(format!("field {token:?} is not number:json:type:flags"));
    };
    let number = number
        .parse()
        .map_err(|_| format!("field {token:?}: bad number"))?;
    let (key, ty) = if flags.contains('m') {
        let (k, v) = ty
            .split_once(',')
            .ok_or_else(|| format!("map field {token:?} without key,value"))?;
        (Some(parse_type(k)?), parse_type(v)?)
    } else {
        (None, parse_type(ty)?)
    };
    let cardinality = if flags.contains('m') {
        Cardinality::Map
    } else if flags.contains('r') {
        Cardinality::Repeated
    } else {
        Cardinality::Single
    };
    Ok(Field {
        number,
        json: json.to_string(),
        ty,
        key,
        cardinality,
        pointer: flags.contains('p'),
        omitempty: flags.contains('o'),
        inline: flags.contains('i'),
    })
}

impl Schema {
    pub fn parse(table: &str) -> Result<Schema, String> {
        let mut schema = Schema::default();
        for (n, line) in table.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split(' ');
            let at = |e: String| format!("line {}: {e}", n + 1);
            match (words.next(), words.next()) {
                (Some("P"), Some(alias)) => {
                    let full = words.next().ok_or_else(|| at("P without a package".into()))?;
                    schema.packages.insert(alias.into(), full.into());
                }
                (Some("G"), Some(api_version)) => {
                    let alias = words.next().ok_or_else(|| at("G without an alias".into()))?;
                    schema.groups.insert(api_version.into(), alias.into());
                }
                (Some("M"), Some(name)) => {
                    let fields = words.map(parse_field).collect::<Result<_, _>>().map_err(at)?;
                    schema.messages.insert(name.into(), Message { fields });
                }
                _ => return Err(at(format!("unreadable record {line:?}"))),
            }
        }
        Ok(schema)
    }

    /// The table in `proto/k8s-schema.txt`, parsed on first use.
    pub fn get() -> Result<&'static Schema, DecodeError> {
        static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
        SCHEMA
            .get_or_init(|| Schema::parse(TABLE))
            .as_ref()
            .map_err(|e| DecodeError::Schema(e.clone()))
    }

    pub fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// The message for an API object: `v1`/`Namespace` →
    /// `core/v1.Namespace`. Kinds shared by every group (DeleteOptions and
    /// the other options, Status) live in meta/v1, as the real scheme
    /// registers them in every group version.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<String> {
        let alias = self.groups.get(api_version)?;
        [format!("{alias}.{kind}"), format!("meta/v1.{kind}")]
            .into_iter()
            .find(|name| self.messages.contains_key(name))
    }

    /// `core/v1.Namespace` → `k8s.io.api.core.v1.Namespace`, the name
    /// Kubernetes' .proto files give it (tests check resolution by it).
    #[cfg(test)]
    pub fn proto_name(&self, name: &str) -> String {
        match name.rsplit_once('.') {
            Some((alias, message)) => match self.packages.get(alias) {
                Some(package) => format!("{package}.{message}"),
                None => name.to_string(),
            },
            None => name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_table_parses_and_covers_the_served_groups() {
        let schema = Schema::get().unwrap();
        for (api_version, kind, proto) in [
            ("v1", "Namespace", "k8s.io.api.core.v1.Namespace"),
            ("v1", "Secret", "k8s.io.api.core.v1.Secret"),
            ("apps/v1", "Deployment", "k8s.io.api.apps.v1.Deployment"),
            ("batch/v1", "Job", "k8s.io.api.batch.v1.Job"),
            (
                "policy/v1",
                "PodDisruptionBudget",
                "k8s.io.api.policy.v1.PodDisruptionBudget",
            ),
            (
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                "k8s.io.api.autoscaling.v2.HorizontalPodAutoscaler",
            ),
            ("rbac.authorization.k8s.io/v1", "Role", "k8s.io.api.rbac.v1.Role"),
            (
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "k8s.io.api.admissionregistration.v1.ValidatingWebhookConfiguration",
            ),
            (
                "networking.k8s.io/v1",
                "Ingress",
                "k8s.io.api.networking.v1.Ingress",
            ),
            (
                "coordination.k8s.io/v1",
                "Lease",
                "k8s.io.api.coordination.v1.Lease",
            ),
            (
                "v1",
                "DeleteOptions",
                "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
            (
                "apps/v1",
                "DeleteOptions",
                "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
            (
                "meta.k8s.io/v1",
                "DeleteOptions",
                "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
        ] {
            let name = schema
                .resolve(api_version, kind)
                .unwrap_or_else(|| panic!("{api_version} {kind}"));
            assert_eq!(schema.proto_name(&name), proto);
        }
        assert_eq!(schema.resolve("v1", "NoSuchKind"), None);
        assert_eq!(schema.resolve("example.com/v1", "Widget"), None);
    }

    #[test]
    fn fields_carry_the_go_json_facts() {
        let schema = Schema::get().unwrap();
        let spec = schema.message("apps/v1.DeploymentSpec").unwrap();
        let replicas = spec.fields.iter().find(|f| f.json == "replicas").unwrap();
        assert_eq!(
            (replicas.number, replicas.pointer, replicas.omitempty),
            (1, true, true)
        );
        assert_eq!(replicas.ty, Type::Int32);
        let secret = schema.message("core/v1.Secret").unwrap();
        let data = secret.fields.iter().find(|f| f.json == "data").unwrap();
        assert_eq!(data.cardinality, Cardinality::Map);
        assert_eq!(
            (data.key.clone(), data.ty.clone()),
            (Some(Type::String), Type::Bytes)
        );
        let volume = schema.message("core/v1.Volume").unwrap();
        let source = volume.fields.iter().find(|f| f.number == 2).unwrap();
        assert!(source.inline && source.json.is_empty());
        assert_eq!(source.ty, Type::Message("core/v1.VolumeSource".into()));
    }

    #[test]
    fn a_malformed_table_is_refused_with_its_line() {
        let e = Schema::parse("# c\nM a.B 1:x:string\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(Schema::parse("M a.B 1:x:strung:\n").is_err());
        assert!(Schema::parse("Q x y\n").is_err());
    }
}

//! `aws.ec2.security_group`: a VPC security group and its rules.
//!
//! Rules are compared as "atoms": one (protocol, ports, source, description)
//! each, a source being one CIDR block. Updates revoke the atoms that are no
//! longer wanted and authorize the new ones, so unchanged rules are never
//! interrupted. Ingress is always managed exactly; egress only when the
//! desired attributes carry `egress` (otherwise AWS's default allow-all
//! egress rule is left alone).
//!
//! Read returns one rule object per (protocol, ports, description), which
//! is one per `IpPermission` unless the CIDR blocks of a permission carry
//! different descriptions. AWS merges rules with equal protocol and ports,
//! so two rule objects that differ only in `cidr_blocks` read back as one.
//!
//! EC2 refuses a whole authorize when one rule already exists
//! (`InvalidPermission.Duplicate`) and a whole revoke when one is already
//! gone (`InvalidPermission.NotFound`), which is also what the SDK's retry of
//! a call whose answer was lost gets: the group is then read again and only
//! what is still missing (or still there) is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, UserIdGroupPair};

use super::toolkit::ec2::{
    Ec2Described, Ec2Kind, Recorded, created_id, delete_once_free, ec2_described, filter, normalize_protocol,
    tagged, tags_attr, visible,
};
use super::toolkit::prelude::*;

/// Description given to a group when none is set.
const DEFAULT_DESCRIPTION: &str = "Managed by meshform";

/// Protocols a rule may name.
const PROTOCOLS: &[&str] = &["tcp", "udp", "icmp", "-1"];

/// Schema of one ingress or egress rule.
pub static RULE_ATTRS: &[AttrSchema] = attrs! {
    /// `tcp`, `udp`, `icmp` or `-1` (all protocols).
    required protocol: String;
    /// First port (ICMP type for `icmp`).
    optional from_port: Int = Int(0);
    /// Last port (ICMP code for `icmp`).
    optional to_port: Int = Int(0);
    /// Sources (ingress) or destinations (egress): IPv4 or IPv6 CIDR blocks. Rules added outside
    /// meshform that name a security group or prefix list read back with its id here.
    optional cidr_blocks: StringList;
    /// Description of the rule.
    optional description: String = Str("");
};

/// Schema of `aws.ec2.security_group`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.security_group",
    doc: "A VPC security group. Rules are updated in place. Without `egress`, the group keeps \
          whatever egress rules it has (AWS's default allows all outbound traffic); with it, \
          egress is exactly the rules given.",
    attrs: attrs! {
        /// Group name, unique in the VPC.
        required name: String, force_new;
        /// Group description.
        optional description: String = Str(DEFAULT_DESCRIPTION), force_new;
        /// The VPC of the group.
        required vpc_id: String, force_new;
        /// Inbound rules.
        optional ingress: ObjectList(RULE_ATTRS);
        /// Outbound rules.
        optional egress: ObjectList(RULE_ATTRS);
        /// The group's ARN.
        computed arn: String;
        /// The AWS account owning the group.
        computed owner_id: String;
    },
    taggable: true,
    identity: &[&["vpc_id", "name"]],
    ..KindDef::BASE
};

/// Operations of `aws.ec2.security_group`.
pub struct SecurityGroup(pub Arc<AwsClients>);

ec2_described! {
    SecurityGroup: aws_sdk_ec2::types::SecurityGroup, id group_id, filter "group-id",
    noun "security groups", describe describe_security_groups "DescribeSecurityGroups",
    delete delete_security_group(group_id) "DeleteSecurityGroup"
}

/// One rule for one source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Atom {
    protocol: String,
    from_port: i64,
    to_port: i64,
    source: String,
    description: String,
}

/// Rules grouped as the API takes them: by protocol and ports.
type Grouped = BTreeMap<(String, i64, i64), Vec<(String, String)>>;

fn group(atoms: &BTreeSet<Atom>) -> Grouped {
    let mut grouped = Grouped::new();
    for a in atoms {
        grouped
            .entry((a.protocol.clone(), a.from_port, a.to_port))
            .or_default()
            .push((a.source.clone(), a.description.clone()));
    }
    grouped
}

/// The atoms of an `ingress`/`egress` value (desired or read). Lenient:
/// validation of desired rules is [`validate_rules`].
fn atoms_of(value: Option<&Value>) -> BTreeSet<Atom> {
    let mut atoms = BTreeSet::new();
    for rule in value.and_then(Value::as_array).into_iter().flatten() {
        let Some(obj) = rule.as_object() else { continue };
        let protocol = normalize_protocol(attr_opt_str(obj, "protocol").unwrap_or("-1"));
        let port = |name: &str| {
            if protocol == "-1" {
                0
            } else {
                obj.get(name).and_then(Value::as_i64).unwrap_or(0)
            }
        };
        let (from_port, to_port) = (port("from_port"), port("to_port"));
        let description = attr_opt_str(obj, "description").unwrap_or("").to_string();
        let sources = obj
            .get("cidr_blocks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for source in sources.filter_map(Value::as_str) {
            atoms.insert(Atom {
                protocol: protocol.clone(),
                from_port,
                to_port,
                source: source.to_string(),
                description: description.clone(),
            });
        }
    }
    atoms
}

/// Checks desired rules before any API call.
fn validate_rules(attrs: &Attrs, name: &str) -> Result<(), ProviderError> {
    let Some(value) = attrs.get(name).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let rules = value
        .as_array()
        .ok_or_else(|| ProviderError::invalid(name, "not a list"))?;
    for (i, rule) in rules.iter().enumerate() {
        let at = |msg: String| ProviderError::invalid(&format!("{name}[{i}]"), msg);
        let obj = rule.as_object().ok_or_else(|| at("not a table".into()))?;
        let protocol = attr_opt_str(obj, "protocol").ok_or_else(|| at("protocol is required".into()))?;
        if !PROTOCOLS.contains(&protocol) {
            return Err(at(format!(
                "protocol {protocol:?} is not one of {}",
                PROTOCOLS.join(", ")
            )));
        }
        for port in ["from_port", "to_port"] {
            match obj.get(port) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    let n = v
                        .as_i64()
                        .ok_or_else(|| at(format!("{port} is not an integer")))?;
                    if protocol == "-1" && n != 0 {
                        return Err(at(format!("{port} must be 0 (or unset) for protocol -1")));
                    }
                }
            }
        }
        let blocks = obj.get("cidr_blocks").and_then(Value::as_array);
        if blocks.is_none_or(|b| b.is_empty()) {
            return Err(at("cidr_blocks must name at least one CIDR block".into()));
        }
    }
    Ok(())
}

/// The atoms of an EC2 permission list.
fn atoms_of_permissions(perms: &[IpPermission]) -> BTreeSet<Atom> {
    let mut atoms = BTreeSet::new();
    for p in perms {
        let protocol = normalize_protocol(p.ip_protocol().unwrap_or("-1"));
        let (from_port, to_port) = if protocol == "-1" {
            (0, 0)
        } else {
            (
                i64::from(p.from_port().unwrap_or(0)),
                i64::from(p.to_port().unwrap_or(0)),
            )
        };
        let mut add = |source: Option<&str>, description: Option<&str>| {
            if let Some(source) = source.filter(|s| !s.is_empty()) {
                atoms.insert(Atom {
                    protocol: protocol.clone(),
                    from_port,
                    to_port,
                    source: source.to_string(),
                    description: description.unwrap_or("").to_string(),
                });
            }
        };
        for r in p.ip_ranges() {
            add(r.cidr_ip(), r.description());
        }
        for r in p.ipv6_ranges() {
            add(r.cidr_ipv6(), r.description());
        }
        for g in p.user_id_group_pairs() {
            add(g.group_id(), g.description());
        }
        for l in p.prefix_list_ids() {
            add(l.prefix_list_id(), l.description());
        }
    }
    atoms
}

/// The rule objects read returns: one per (protocol, ports, description),
/// all keys present, CIDR blocks sorted, the list sorted by JSON text.
fn rules_value(atoms: &BTreeSet<Atom>) -> Value {
    let mut by_rule: BTreeMap<(String, i64, i64, String), Vec<String>> = BTreeMap::new();
    for a in atoms {
        by_rule
            .entry((a.protocol.clone(), a.from_port, a.to_port, a.description.clone()))
            .or_default()
            .push(a.source.clone());
    }
    let mut rules: Vec<(String, Value)> = by_rule
        .into_iter()
        .map(|((protocol, from_port, to_port, description), mut sources)| {
            sources.sort();
            let mut obj = serde_json::Map::new();
            obj.insert("protocol".into(), Value::from(protocol));
            obj.insert("from_port".into(), Value::from(from_port));
            obj.insert("to_port".into(), Value::from(to_port));
            obj.insert("cidr_blocks".into(), Value::from(sources));
            obj.insert("description".into(), Value::from(description));
            let obj = Value::Object(obj);
            (obj.to_string(), obj)
        })
        .collect();
    rules.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(rules.into_iter().map(|(_, v)| v).collect())
}

/// API permissions for `atoms`; descriptions are left out when revoking.
fn permissions(atoms: &BTreeSet<Atom>, with_descriptions: bool) -> Vec<IpPermission> {
    group(atoms)
        .into_iter()
        .map(|((protocol, from_port, to_port), sources)| {
            let mut p = IpPermission::builder().ip_protocol(&protocol);
            if protocol != "-1" {
                // Ports are i32 in the API; out-of-range values are refused
                // by AWS, so saturating here only changes the error text.
                let clamp = |n: i64| i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX });
                p = p.from_port(clamp(from_port)).to_port(clamp(to_port));
            }
            for (source, description) in sources {
                let description = Some(description).filter(|d| with_descriptions && !d.is_empty());
                if source.contains(':') {
                    p = p.ipv6_ranges(
                        Ipv6Range::builder()
                            .cidr_ipv6(source)
                            .set_description(description)
                            .build(),
                    );
                } else if source.starts_with("sg-") {
                    p = p.user_id_group_pairs(
                        UserIdGroupPair::builder()
                            .group_id(source)
                            .set_description(description)
                            .build(),
                    );
                } else if source.starts_with("pl-") {
                    p = p.prefix_list_ids(
                        PrefixListId::builder()
                            .prefix_list_id(source)
                            .set_description(description)
                            .build(),
                    );
                } else {
                    p = p.ip_ranges(
                        IpRange::builder()
                            .cidr_ip(source)
                            .set_description(description)
                            .build(),
                    );
                }
            }
            p.build()
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Ingress,
    Egress,
}

/// What a rules call does.
#[derive(Debug, Clone, Copy)]
enum RuleChange {
    Revoke,
    Authorize,
}

impl SecurityGroup {
    /// Makes one direction's rules of group `id` equal to `desired`, given
    /// what it has now: revokes first, then authorizes.
    async fn reconcile(
        &self,
        id: &str,
        direction: Direction,
        actual: &BTreeSet<Atom>,
        desired: &BTreeSet<Atom>,
    ) -> Result<(), ProviderError> {
        let removed: BTreeSet<Atom> = actual.difference(desired).cloned().collect();
        let added: BTreeSet<Atom> = desired.difference(actual).cloned().collect();
        if !removed.is_empty() {
            self.change_rules(id, direction, RuleChange::Revoke, &removed)
                .await?;
        }
        if !added.is_empty() {
            self.change_rules(id, direction, RuleChange::Authorize, &added)
                .await?;
        }
        Ok(())
    }

    /// Revokes or authorizes `atoms`. EC2 refuses the whole call when one
    /// of them is already so (`InvalidPermission.NotFound` for a revoke,
    /// `InvalidPermission.Duplicate` for an authorize): the answer to a
    /// call sent again after its first answer was lost, or to a rule
    /// changed meanwhile. Then the group is read again and only what is
    /// left to do is sent.
    async fn change_rules(
        &self,
        id: &str,
        direction: Direction,
        change: RuleChange,
        atoms: &BTreeSet<Atom>,
    ) -> Result<(), ProviderError> {
        let already = match change {
            RuleChange::Revoke => "InvalidPermission.NotFound",
            RuleChange::Authorize => "InvalidPermission.Duplicate",
        };
        match self.send_rules(id, direction, change, atoms).await {
            Err(e) if e.code() == Some(already) => {
                let current = self.rules_in(id, direction).await?;
                let left: BTreeSet<Atom> = match change {
                    RuleChange::Revoke => atoms.intersection(&current).cloned().collect(),
                    RuleChange::Authorize => atoms.difference(&current).cloned().collect(),
                };
                if left.is_empty() {
                    Ok(())
                } else {
                    self.send_rules(id, direction, change, &left).await
                }
            }
            other => other,
        }
    }

    /// One revoke or authorize call for `atoms` (descriptions are sent
    /// only when authorizing).
    async fn send_rules(
        &self,
        id: &str,
        direction: Direction,
        change: RuleChange,
        atoms: &BTreeSet<Atom>,
    ) -> Result<(), ProviderError> {
        let ec2 = &self.0.ec2;
        let perms = Some(permissions(atoms, matches!(change, RuleChange::Authorize)));
        macro_rules! send {
            ($call:ident, $op:literal) => {
                ec2.$call()
                    .group_id(id)
                    .set_ip_permissions(perms)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| ProviderError::aws($op, e))
            };
        }
        match (change, direction) {
            (RuleChange::Revoke, Direction::Ingress) => {
                send!(revoke_security_group_ingress, "RevokeSecurityGroupIngress")
            }
            (RuleChange::Revoke, Direction::Egress) => {
                send!(revoke_security_group_egress, "RevokeSecurityGroupEgress")
            }
            (RuleChange::Authorize, Direction::Ingress) => {
                send!(authorize_security_group_ingress, "AuthorizeSecurityGroupIngress")
            }
            (RuleChange::Authorize, Direction::Egress) => {
                send!(authorize_security_group_egress, "AuthorizeSecurityGroupEgress")
            }
        }
    }

    /// The group's current rules in one direction.
    async fn rules_in(&self, id: &str, direction: Direction) -> Result<BTreeSet<Atom>, ProviderError> {
        let (ingress, egress) = self.current_rules(id).await?;
        Ok(match direction {
            Direction::Ingress => ingress,
            Direction::Egress => egress,
        })
    }

    /// The group's current rules, straight from EC2.
    async fn current_rules(&self, id: &str) -> Result<(BTreeSet<Atom>, BTreeSet<Atom>), ProviderError> {
        let groups = self.describe(vec![filter("group-id", [id])]).await?;
        let group = groups.iter().find(|g| g.group_id() == Some(id)).ok_or_else(|| {
            ProviderError::unexpected("DescribeSecurityGroups", format!("security group {id} not found"))
        })?;
        Ok((
            atoms_of_permissions(group.ip_permissions()),
            atoms_of_permissions(group.ip_permissions_egress()),
        ))
    }

    /// Brings both directions to `desired` (egress only when it is given).
    async fn apply_rules(&self, id: &str, desired: &Attrs) -> Result<(), ProviderError> {
        let (ingress, egress) = self.current_rules(id).await?;
        self.reconcile(
            id,
            Direction::Ingress,
            &ingress,
            &atoms_of(desired.get("ingress")),
        )
        .await?;
        if let Some(want) = managed_egress(desired) {
            self.reconcile(id, Direction::Egress, &egress, &want).await?;
        }
        Ok(())
    }

    fn to_live(&self, g: &aws_sdk_ec2::types::SecurityGroup) -> Option<Live> {
        let id = g.group_id()?;
        let owner = g.owner_id().unwrap_or_default();
        let arn = match g.security_group_arn() {
            Some(arn) if !arn.is_empty() => arn.to_string(),
            _ => {
                let region = &self.0.region;
                let partition = if region.starts_with("cn-") {
                    "aws-cn"
                } else if region.starts_with("us-gov-") {
                    "aws-us-gov"
                } else {
                    "aws"
                };
                format!("arn:{partition}:ec2:{region}:{owner}:security-group/{id}")
            }
        };
        let mut attrs = Attrs::new();
        attrs.insert("name".into(), Value::from(g.group_name().unwrap_or_default()));
        attrs.insert(
            "description".into(),
            Value::from(g.description().unwrap_or_default()),
        );
        attrs.insert("vpc_id".into(), Value::from(g.vpc_id().unwrap_or_default()));
        attrs.insert(
            "ingress".into(),
            rules_value(&atoms_of_permissions(g.ip_permissions())),
        );
        attrs.insert(
            "egress".into(),
            rules_value(&atoms_of_permissions(g.ip_permissions_egress())),
        );
        attrs.insert("arn".into(), Value::from(arn));
        attrs.insert("owner_id".into(), Value::from(owner));
        attrs.insert("tags".into(), tags_attr(g.tags()));
        Some(Live {
            id: id.to_string(),
            attrs,
        })
    }
}

/// The egress atoms to manage, `None` when `egress` is not given.
fn managed_egress(desired: &Attrs) -> Option<BTreeSet<Atom>> {
    desired
        .get("egress")
        .filter(|v| !v.is_null())
        .map(|v| atoms_of(Some(v)))
}

#[async_trait]
impl Ec2Kind for SecurityGroup {
    fn live(&self, g: &Self::Item, _recorded: Option<&Attrs>) -> Result<Option<Live>, ProviderError> {
        Ok(self.to_live(g))
    }

    async fn make(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let description = attr_opt_str(desired, "description")
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_DESCRIPTION);
        validate_rules(desired, "ingress")?;
        validate_rules(desired, "egress")?;
        let call = self
            .0
            .ec2
            .create_security_group()
            .group_name(attr_str(desired, "name")?)
            .description(description)
            .vpc_id(attr_str(desired, "vpc_id")?)
            .set_tag_specifications(tagged(ResourceType::SecurityGroup, desired));
        let out = send_once!(call, "CreateSecurityGroup")?;
        let id = created_id(out.group_id(), "CreateSecurityGroup")?;
        visible(self, &id, &Recorded::new(), |_| true).await?;
        self.apply_rules(&id, desired).await?;
        visible(self, &id, &Recorded::new(), |live| Self::shows(live, desired)).await
    }

    async fn change(&self, change: InPlace<'_>) -> Result<(), ProviderError> {
        let desired = change.desired;
        validate_rules(desired, "ingress")?;
        validate_rules(desired, "egress")?;
        if change.has_any(&["ingress", "egress"]) {
            self.apply_rules(&change.prior.id, desired).await?;
        }
        Ok(())
    }

    /// Whether `live` shows the rules of `desired`.
    fn shows(live: &Live, desired: &Attrs) -> bool {
        atoms_of(live.attrs.get("ingress")) == atoms_of(desired.get("ingress"))
            && managed_egress(desired).is_none_or(|want| atoms_of(live.attrs.get("egress")) == want)
    }

    /// Network interfaces of deleted load balancers, clusters or NAT
    /// gateways keep a group in use for a few minutes: `DependencyViolation`
    /// is retried.
    async fn remove(&self, id: &str) -> Result<(), ProviderError> {
        delete_once_free(self, "security group", id, Duration::from_secs(300)).await
    }
}

//! `aws.ec2.security_group_rule`: one ingress or egress rule on a security
//! group the stack may not own (the EKS cluster security group, another
//! cluster's node group), from exactly one source: an IPv4 CIDR block,
//! another security group, or the group itself.
//!
//! The id is the rule's id (`sgr-...`). The rule is made by
//! AuthorizeSecurityGroupIngress/Egress with its tags (ownership tags
//! included) in the call itself, so a rule made before a crash is found by
//! them; it is read by DescribeSecurityGroupRules filtered by rule ids
//! (batched, 200 ids a call) and revoked by id. Everything but the
//! description and the tags forces replacement; the description changes
//! with ModifySecurityGroupRules.
//!
//! An `aws.ec2.security_group` that sets `ingress` (or `egress`) manages
//! that direction exactly and would revoke such a rule: put rules on a
//! stack's own group either in the group or as rules, not both.

use std::sync::Arc;

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, ResourceType, SecurityGroupRule as SdkRule, SecurityGroupRuleRequest,
    SecurityGroupRuleUpdate, UserIdGroupPair,
};

use super::toolkit::ec2::{
    Ec2Described, Ec2Kind, Pending, Recorded, describe_one, find_owned, normalize_protocol, read_one, tagged,
    tags_attr, visible,
};
use super::toolkit::prelude::*;

/// Protocols a rule may name.
const PROTOCOLS: &[&str] = &["tcp", "udp", "icmp", "-1"];

/// Schema of `aws.ec2.security_group_rule`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.security_group_rule",
    doc: "One ingress or egress rule of a security group, from exactly one source: `cidr_ipv4`, \
          `source_security_group_id` or `self = true`. The id is the rule id (sgr-...).",
    attrs: attrs! {
        /// The security group the rule belongs to.
        required security_group_id: String, force_new;
        /// `ingress` or `egress`. (Called `direction`, not `type`: a resource's `type` key names
        /// its kind in the stack language.)
        required direction: String, force_new;
        /// `tcp`, `udp`, `icmp` or `-1` (all protocols).
        required protocol: String, force_new;
        /// First port (ICMP type for `icmp`); 0 for protocol `-1`.
        optional from_port: Int = Int(0), force_new;
        /// Last port (ICMP code for `icmp`); 0 for protocol `-1`.
        optional to_port: Int = Int(0), force_new;
        /// The source (ingress) or destination (egress) IPv4 CIDR block.
        optional cidr_ipv4: String = Str(""), force_new;
        /// The source (ingress) or destination (egress) security group.
        optional source_security_group_id: String = Str(""), force_new;
        /// The rule's own group is the source (or destination).
        optional self: Bool = Bool(false), force_new;
        /// Description of the rule; changes in place.
        optional description: String = Str("");
    },
    taggable: true,
    ..KindDef::BASE
};

/// Operations of `aws.ec2.security_group_rule`.
pub struct SecurityGroupRule(pub Arc<AwsClients>);

impl Ec2Described for SecurityGroupRule {
    type Item = SdkRule;
    const DEF: &'static KindDef = &DEF;
    const ID_FILTER: &'static str = "security-group-rule-id";
    const NOUN: &'static str = "security group rules";

    fn ec2(&self) -> &aws_sdk_ec2::Client {
        &self.0.ec2
    }

    fn describe(&self, filters: Vec<Filter>) -> Pending<'_, Vec<SdkRule>> {
        let call = self
            .0
            .ec2
            .describe_security_group_rules()
            .set_filters(Some(filters));
        Box::pin(async move { all_pages!(call, "DescribeSecurityGroupRules") })
    }

    /// A rule is revoked through its group and direction, which its id
    /// alone does not say: it is described first (gone: nothing to do,
    /// answered as EC2's own "not found").
    fn send_delete(&self, id: &str) -> Pending<'_, ()> {
        let id = id.to_string();
        Box::pin(async move {
            let Some(rule) = describe_one(self, &id).await? else {
                return Err(ProviderError::Api {
                    operation: "DescribeSecurityGroupRules".into(),
                    code: Some("InvalidSecurityGroupRuleId.NotFound".into()),
                    message: format!("security group rule {id} does not exist"),
                });
            };
            let group = rule.group_id().unwrap_or_default();
            let ec2 = &self.0.ec2;
            if rule.is_egress() == Some(true) {
                send!(
                    ec2.revoke_security_group_egress()
                        .group_id(group)
                        .security_group_rule_ids(&id),
                    "RevokeSecurityGroupEgress"
                )
                .map(|_| ())
            } else {
                send!(
                    ec2.revoke_security_group_ingress()
                        .group_id(group)
                        .security_group_rule_ids(&id),
                    "RevokeSecurityGroupIngress"
                )
                .map(|_| ())
            }
        })
    }

    fn item_id(item: &SdkRule) -> Option<&str> {
        item.security_group_rule_id()
    }

    fn item_tags(item: &SdkRule) -> &[aws_sdk_ec2::types::Tag] {
        item.tags()
    }
}

/// A rule's one source, checked.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Cidr(String),
    Group(String),
    Itself,
}

/// The checked parts of a desired rule.
struct Rule<'a> {
    group: &'a str,
    egress: bool,
    protocol: String,
    ports: Option<(i32, i32)>,
    source: Source,
    description: Option<&'a str>,
}

/// Checks the desired attributes before any API call.
fn rule_of(desired: &Attrs) -> Result<Rule<'_>, ProviderError> {
    let egress = match attr_str(desired, "direction")? {
        "ingress" => false,
        "egress" => true,
        other => {
            return Err(ProviderError::invalid(
                "direction",
                format!("must be \"ingress\" or \"egress\", not {other:?}"),
            ));
        }
    };
    let protocol = normalize_protocol(attr_str(desired, "protocol")?);
    if !PROTOCOLS.contains(&protocol.as_str()) {
        return Err(ProviderError::invalid(
            "protocol",
            format!("{protocol:?} is not one of {}", PROTOCOLS.join(", ")),
        ));
    }
    let port = |name: &str| -> Result<i32, ProviderError> {
        let n = desired.get(name).and_then(Value::as_i64).unwrap_or(0);
        i32::try_from(n).map_err(|_| ProviderError::invalid(name, format!("{n} is not a port")))
    };
    let (from, to) = (port("from_port")?, port("to_port")?);
    if protocol == "-1" && (from, to) != (0, 0) {
        return Err(ProviderError::invalid(
            "from_port",
            "ports must be 0 (or unset) for protocol -1",
        ));
    }
    let cidr = attr_opt_str(desired, "cidr_ipv4").filter(|s| !s.is_empty());
    let group = attr_opt_str(desired, "source_security_group_id").filter(|s| !s.is_empty());
    let itself = attr_bool(desired, "self");
    let source = match (cidr, group, itself) {
        (Some(c), None, false) => Source::Cidr(c.to_string()),
        (None, Some(g), false) => Source::Group(g.to_string()),
        (None, None, true) => Source::Itself,
        _ => {
            return Err(ProviderError::invalid(
                "cidr_ipv4",
                "exactly one of cidr_ipv4, source_security_group_id and self = true must be given",
            ));
        }
    };
    Ok(Rule {
        group: attr_str(desired, "security_group_id")?,
        egress,
        ports: (protocol != "-1").then_some((from, to)),
        protocol,
        source,
        description: attr_opt_str(desired, "description").filter(|d| !d.is_empty()),
    })
}

impl Rule<'_> {
    /// The one permission AuthorizeSecurityGroupIngress/Egress takes.
    fn permission(&self) -> IpPermission {
        let mut p = IpPermission::builder().ip_protocol(&self.protocol);
        if let Some((from, to)) = self.ports {
            p = p.from_port(from).to_port(to);
        }
        let description = self.description.map(str::to_string);
        match &self.source {
            Source::Cidr(c) => {
                p.ip_ranges(IpRange::builder().cidr_ip(c).set_description(description).build())
            }
            Source::Group(g) => p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(g)
                    .set_description(description)
                    .build(),
            ),
            Source::Itself => p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(self.group)
                    .set_description(description)
                    .build(),
            ),
        }
        .build()
    }
}

/// The live view of a described rule. A rule naming its own group reads
/// back as `self = true` unless state recorded the group as
/// `source_security_group_id` (both say the same to EC2).
fn live(r: &SdkRule, recorded: Option<&Attrs>) -> Option<Live> {
    let id = r.security_group_rule_id()?;
    let group = r.group_id().unwrap_or_default();
    let protocol = normalize_protocol(r.ip_protocol().unwrap_or("-1"));
    let (from, to) = if protocol == "-1" {
        (0, 0)
    } else {
        (r.from_port().unwrap_or(0), r.to_port().unwrap_or(0))
    };
    let referenced = r
        .referenced_group_info()
        .and_then(|g| g.group_id())
        .unwrap_or_default();
    let named_explicitly = recorded
        .and_then(|a| attr_opt_str(a, "source_security_group_id"))
        .is_some_and(|g| !g.is_empty());
    let itself = !referenced.is_empty() && referenced == group && !named_explicitly;
    let mut attrs = Attrs::new();
    attrs.insert("security_group_id".into(), Value::from(group));
    attrs.insert(
        "direction".into(),
        Value::from(if r.is_egress() == Some(true) {
            "egress"
        } else {
            "ingress"
        }),
    );
    attrs.insert("protocol".into(), Value::from(protocol));
    attrs.insert("from_port".into(), Value::from(from));
    attrs.insert("to_port".into(), Value::from(to));
    attrs.insert("cidr_ipv4".into(), Value::from(r.cidr_ipv4().unwrap_or_default()));
    attrs.insert(
        "source_security_group_id".into(),
        Value::from(if itself { "" } else { referenced }),
    );
    attrs.insert("self".into(), Value::Bool(itself));
    attrs.insert(
        "description".into(),
        Value::from(r.description().unwrap_or_default()),
    );
    attrs.insert("tags".into(), tags_attr(r.tags()));
    Some(Live {
        id: id.to_string(),
        attrs,
    })
}

#[async_trait]
impl Ec2Kind for SecurityGroupRule {
    fn live(&self, item: &SdkRule, recorded: Option<&Attrs>) -> Result<Option<Live>, ProviderError> {
        Ok(live(item, recorded))
    }

    async fn make(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let rule = rule_of(desired)?;
        let spec = tagged(ResourceType::SecurityGroupRule, desired);
        let ec2 = &self.0.ec2;
        let operation = if rule.egress {
            "AuthorizeSecurityGroupEgress"
        } else {
            "AuthorizeSecurityGroupIngress"
        };
        let created: Vec<SdkRule> = if rule.egress {
            let call = ec2
                .authorize_security_group_egress()
                .group_id(rule.group)
                .ip_permissions(rule.permission())
                .set_tag_specifications(spec);
            send_once!(call, "AuthorizeSecurityGroupEgress")?
                .security_group_rules()
                .to_vec()
        } else {
            let call = ec2
                .authorize_security_group_ingress()
                .group_id(rule.group)
                .ip_permissions(rule.permission())
                .set_tag_specifications(spec);
            send_once!(call, "AuthorizeSecurityGroupIngress")?
                .security_group_rules()
                .to_vec()
        };
        // One permission with one source makes exactly one rule.
        let id = match created.as_slice() {
            [one] => one.security_group_rule_id().map(str::to_string),
            _ => None,
        }
        .ok_or_else(|| {
            ProviderError::unexpected(
                operation,
                format!("expected one rule in the response, got {}", created.len()),
            )
        })?;
        let recorded = Recorded::from([(id.clone(), desired.clone())]);
        visible(self, &id, &recorded, |_| true).await
    }

    async fn change(&self, change: InPlace<'_>) -> Result<(), ProviderError> {
        if !change.has("description") {
            return Ok(());
        }
        let desired = change.desired;
        let rule = rule_of(desired)?;
        let mut request = SecurityGroupRuleRequest::builder()
            .ip_protocol(&rule.protocol)
            .set_description(Some(rule.description.unwrap_or_default().to_string()));
        if let Some((from, to)) = rule.ports {
            request = request.from_port(from).to_port(to);
        }
        request = match &rule.source {
            Source::Cidr(c) => request.cidr_ipv4(c),
            Source::Group(g) => request.referenced_group_id(g),
            Source::Itself => request.referenced_group_id(rule.group),
        };
        send!(
            self.0
                .ec2
                .modify_security_group_rules()
                .group_id(rule.group)
                .security_group_rules(
                    SecurityGroupRuleUpdate::builder()
                        .security_group_rule_id(&change.prior.id)
                        .security_group_rule(request.build())
                        .build(),
                ),
            "ModifySecurityGroupRules"
        )?;
        Ok(())
    }

    /// The rule carrying the ownership tags, read with `desired` standing
    /// for what state would record: a rule naming its own group reads as
    /// the stack wrote it (`self` or `source_security_group_id`), which EC2
    /// alone cannot tell.
    async fn find(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let Some(found) = find_owned(self, cx, Vec::new(), |_| true).await? else {
            return Ok(None);
        };
        read_one(
            self,
            &found.id,
            &Recorded::from([(found.id.clone(), desired.clone())]),
        )
        .await
    }

    fn shows(live: &Live, desired: &Attrs) -> bool {
        attr_opt_str(&live.attrs, "description").unwrap_or_default()
            == attr_opt_str(desired, "description").unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Attrs {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_rule_needs_exactly_one_source() {
        let base = json!({"security_group_id": "sg-1", "direction": "ingress", "protocol": "tcp",
                          "from_port": 4000, "to_port": 4000});
        let with = |extra: Value| {
            let mut a = attrs(base.clone());
            a.extend(attrs(extra));
            a
        };
        assert!(rule_of(&with(json!({}))).is_err());
        assert!(rule_of(&with(json!({"cidr_ipv4": "10.0.0.0/8", "self": true}))).is_err());
        assert!(
            rule_of(&with(
                json!({"cidr_ipv4": "", "source_security_group_id": "sg-2"})
            ))
            .is_ok()
        );
        let r = with(json!({"self": true}));
        let rule = rule_of(&r).unwrap();
        assert_eq!(rule.source, Source::Itself);
        assert_eq!(rule.ports, Some((4000, 4000)));
        let bad = with(json!({"self": true, "direction": "sideways"}));
        assert!(rule_of(&bad).is_err());
        let all = attrs(
            json!({"security_group_id": "sg-1", "direction": "egress", "protocol": "-1",
                               "from_port": 1, "cidr_ipv4": "0.0.0.0/0"}),
        );
        assert!(rule_of(&all).is_err(), "ports with protocol -1 are refused");
    }
}

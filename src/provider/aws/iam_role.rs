//! `aws.iam.role`: an IAM role, its trust policy and its managed policy
//! attachments.
//!
//! The id is the role name (unique in the account, whatever the path). Name
//! and path cannot change in IAM, so changing them replaces the role. The
//! description and maximum session duration change in place (`UpdateRole`),
//! the trust policy through `UpdateAssumeRolePolicy`, the attachments
//! through `AttachRolePolicy`/`DetachRolePolicy` for the difference, and the
//! tags through `TagRole`/`UntagRole`.
//!
//! `managed_policy_arns` is a set: entries are full ARNs or bare AWS managed
//! policy names (`AmazonEKSClusterPolicy`, `service-role/Name`), which mean
//! `arn:aws:iam::aws:policy/<name>`. [`normalize`] turns every entry into an
//! ARN and sorts the list, for the planner and for the calls made here.
//!
//! Reads are batched: one paginated `ListRoles` under the requested roles'
//! common path tells which roles exist and carries their settings, and one
//! paginated `GetAccountAuthorizationDetails` (roles; shared with
//! `aws.iam.policy` within a refresh) carries every role's attachments and
//! tags. No call is made per role.
//!
//! A create that finds the name taken adopts the role only when its
//! ownership tags name this stack and address; anyone else's role is an
//! error naming the tags it carries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use aws_sdk_iam::types::{AttachedPolicy, EntityType, InstanceProfile, Role, Tag};

use super::SingleAttempt;
use super::toolkit::errors::Service;
use super::toolkit::iam::{attached_arns, document_text, document_value, iam_tags, parse_document, tag_map};
use super::toolkit::iam_details::{AccountDetails, AccountDetailsReads, account_details};
use super::toolkit::ownership::owned_by;
use super::toolkit::prelude::*;
use super::toolkit::tags::sync_with;
use crate::provider::{TAG_ADDRESS, TAG_STACK};

/// Schema of `aws.iam.role`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.iam.role",
    doc: "An IAM role with its trust policy and managed policy attachments. The id is the role name.",
    attrs: attrs! {
        /// Role name, unique in the account.
        required name: String, force_new;
        /// Path the role is created under.
        optional path: String = Str("/"), force_new;
        /// Description; changes in place.
        optional description: String;
        /// The trust policy: who may assume the role. Changes in place.
        required assume_role_policy: Json;
        /// Maximum session duration in seconds (3600 to 43200); changes in place.
        optional max_session_duration: Int = Int(DEFAULT_MAX_SESSION as i64);
        /// Managed policies attached to the role: ARNs, or AWS managed policy names such as
        /// `AmazonEKSClusterPolicy` or `service-role/Name`. A set; changes in place.
        optional managed_policy_arns: StringList;
        /// The role ARN.
        computed arn: String;
        /// The stable role id (AROA...).
        computed unique_id: String;
    },
    taggable: true,
    normalize: Some(normalize),
    identity: &[&["name"]],
    ..KindDef::BASE
};

/// IAM's default and minimum maximum session duration, in seconds.
const DEFAULT_MAX_SESSION: i32 = 3600;
/// IAM's largest maximum session duration, in seconds.
const LONGEST_MAX_SESSION: i32 = 43200;

/// What a bare managed policy name expands to.
const AWS_MANAGED_POLICY_PREFIX: &str = "arn:aws:iam::aws:policy/";

/// Attributes [`IamRole::update`] changes in place.
const IN_PLACE: &[&str] = &[
    "description",
    "max_session_duration",
    "assume_role_policy",
    "managed_policy_arns",
    "tags",
];

/// Canonical form of attribute `attr` of `aws.iam.role`: for
/// `managed_policy_arns`, every entry not starting with `arn:` becomes
/// `arn:aws:iam::aws:policy/<entry>`, and the list is sorted and
/// deduplicated (attachments are a set). Other attributes are returned
/// unchanged.
pub fn normalize(attr: &str, value: Value) -> Value {
    if attr != "managed_policy_arns" {
        return value;
    }
    let Value::Array(items) = value else {
        return value;
    };
    let mut items: Vec<Value> = items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Value::String(policy_arn(&s)),
            other => other,
        })
        .collect();
    items.sort_by_key(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    items.dedup();
    Value::Array(items)
}

/// The ARN a `managed_policy_arns` entry stands for.
fn policy_arn(entry: &str) -> String {
    if entry.starts_with("arn:") {
        entry.to_string()
    } else {
        format!("{AWS_MANAGED_POLICY_PREFIX}{}", entry.trim_start_matches('/'))
    }
}

/// The desired attachments, names expanded to ARNs.
fn desired_policy_arns(desired: &Attrs) -> Result<BTreeSet<String>, ProviderError> {
    let value = desired
        .get("managed_policy_arns")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    match normalize("managed_policy_arns", value) {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(ProviderError::invalid(
                    "managed_policy_arns",
                    format!("entries must be strings, found {other}"),
                )),
            })
            .collect(),
        _ => Err(ProviderError::invalid(
            "managed_policy_arns",
            "must be a list of strings",
        )),
    }
}

/// The attribute holding the trust policy.
const TRUST: &str = "assume_role_policy";

/// The maximum session duration set in `attrs`, checked against IAM's
/// range; `None` when not set.
fn max_session(attrs: &Attrs) -> Result<Option<i32>, ProviderError> {
    let Some(v) = attrs.get("max_session_duration") else {
        return Ok(None);
    };
    let seconds = v
        .as_i64()
        .ok_or_else(|| ProviderError::invalid("max_session_duration", "must be an integer"))?;
    match i32::try_from(seconds) {
        Ok(s) if (DEFAULT_MAX_SESSION..=LONGEST_MAX_SESSION).contains(&s) => Ok(Some(s)),
        _ => Err(ProviderError::invalid(
            "max_session_duration",
            format!("{seconds} is not between {DEFAULT_MAX_SESSION} and {LONGEST_MAX_SESSION} seconds"),
        )),
    }
}

/// `Ok(None)` for an IAM "no such entity" error, the value or other errors
/// unchanged.
fn unless_gone<T>(result: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    super::toolkit::errors::unless_gone(Service::Iam, result)
}

/// The error for a create finding someone else's role under the name.
fn not_ours(name: &str, tags: &BTreeMap<String, String>, cx: &OpContext) -> ProviderError {
    let owner = match (tags.get(TAG_STACK), tags.get(TAG_ADDRESS)) {
        (Some(s), Some(a)) => format!("it belongs to stack {s} address {a}"),
        _ => "it carries no meshform ownership tags".to_string(),
    };
    let listed: Vec<String> = tags
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let carried = if listed.is_empty() {
        "it has no tags".to_string()
    } else {
        format!("its tags: {}", listed.join(", "))
    };
    ProviderError::Api {
        operation: "CreateRole".to_string(),
        code: Some("EntityAlreadyExists".to_string()),
        message: format!(
            "role {name} already exists and belongs to someone else, not to stack {} address {} \
             ({owner}; {carried}); choose another name or remove that role",
            cx.stack, cx.address
        ),
    }
}

/// The longest path that is a prefix of every given role path (always
/// ends with `/`), to narrow the listing.
fn common_path_prefix<'a>(paths: impl IntoIterator<Item = &'a str>) -> String {
    let mut prefix: Option<String> = None;
    for path in paths {
        prefix = Some(match prefix {
            None => path.to_string(),
            Some(p) => p
                .chars()
                .zip(path.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    let prefix = prefix.unwrap_or_default();
    match prefix.rfind('/') {
        Some(i) if prefix.starts_with('/') => prefix[..=i].to_string(),
        _ => "/".to_string(),
    }
}

/// A value of attribute `name` in the form `read` reports it, for
/// comparing desired with live values.
fn canonical(name: &str, value: &Value) -> Value {
    match (name, value) {
        ("assume_role_policy", Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| value.clone()),
        _ => normalize(name, value.clone()),
    }
}

/// The in-place attributes whose desired value differs from `live`.
fn in_place_differences(live: &Attrs, desired: &Attrs) -> Vec<String> {
    IN_PLACE
        .iter()
        .filter(|name| {
            desired.get(**name).is_some_and(|want| {
                live.get(**name).map(|have| canonical(name, have)) != Some(canonical(name, want))
            })
        })
        .map(|name| name.to_string())
        .collect()
}

/// Operations of `aws.iam.role`.
pub struct IamRole(pub Arc<AwsClients>);

impl IamRole {
    fn iam(&self) -> &aws_sdk_iam::Client {
        &self.0.iam
    }

    /// Every role whose path starts with `path_prefix`, by name.
    async fn list_roles(&self, path_prefix: &str) -> Result<HashMap<String, Role>, ProviderError> {
        let roles: Vec<Role> = all_pages!(self.iam().list_roles().path_prefix(path_prefix), "ListRoles")?;
        Ok(roles
            .into_iter()
            .map(|r| (r.role_name().to_string(), r))
            .collect())
    }

    /// The role named `name`, `None` when there is none.
    async fn get_role(&self, name: &str) -> Result<Option<Role>, ProviderError> {
        let out = unless_gone(send!(self.iam().get_role().role_name(name), "GetRole"))?;
        match out {
            Some(out) => out.role().cloned().map(Some).ok_or_else(|| {
                ProviderError::unexpected("GetRole", format!("no role {name} in the response"))
            }),
            None => Ok(None),
        }
    }

    /// ARNs of the managed policies attached to a role.
    async fn attached(&self, name: &str) -> Result<BTreeSet<String>, ProviderError> {
        let call = self.iam().list_attached_role_policies().role_name(name);
        let policies: Vec<AttachedPolicy> = all_pages!(call, "ListAttachedRolePolicies")?;
        Ok(attached_arns(&policies))
    }

    /// All tags of a role.
    async fn tags(&self, name: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        let tags: Vec<Tag> = all_pages!(self.iam().list_role_tags().role_name(name), "ListRoleTags")?;
        Ok(tag_map(&tags))
    }

    /// Names of a role's inline policies.
    async fn inline_policies(&self, name: &str) -> Result<Vec<String>, ProviderError> {
        all_pages!(
            self.iam().list_role_policies().role_name(name),
            "ListRolePolicies"
        )
    }

    /// Names of the instance profiles holding a role.
    async fn instance_profiles(&self, name: &str) -> Result<Vec<String>, ProviderError> {
        let call = self.iam().list_instance_profiles_for_role().role_name(name);
        let profiles: Vec<InstanceProfile> = all_pages!(call, "ListInstanceProfilesForRole")?;
        Ok(profiles
            .iter()
            .map(|p| p.instance_profile_name().to_string())
            .collect())
    }

    /// The live view of a listed role: its settings from `role`, plus its
    /// attachments and tags (`tags` when already known). `None` when the
    /// role disappeared meanwhile.
    async fn live_of(
        &self,
        role: &Role,
        tags: Option<BTreeMap<String, String>>,
    ) -> Result<Option<Live>, ProviderError> {
        let name = role.role_name();
        let Some(attached) = unless_gone(self.attached(name).await)? else {
            return Ok(None);
        };
        let tags = match tags {
            Some(t) => t,
            None => match unless_gone(self.tags(name).await)? {
                Some(t) => t,
                None => return Ok(None),
            },
        };
        live_from(role, attached, tags, None).map(Some)
    }

    /// Attaches the policies in `desired` missing from `current` and
    /// detaches those no longer desired.
    async fn sync_attachments(
        &self,
        name: &str,
        current: &BTreeSet<String>,
        desired: &BTreeSet<String>,
    ) -> Result<(), ProviderError> {
        for arn in desired.difference(current) {
            send!(
                self.iam().attach_role_policy().role_name(name).policy_arn(arn),
                "AttachRolePolicy"
            )?;
        }
        for arn in current.difference(desired) {
            // Already detached (or the policy is gone): nothing to do.
            unless_gone(send!(
                self.iam().detach_role_policy().role_name(name).policy_arn(arn),
                "DetachRolePolicy"
            ))?;
        }
        Ok(())
    }

    /// A create found the name taken: adopts the role when its tags name
    /// this stack and address (bringing its in-place attributes to
    /// `desired`), fails otherwise.
    async fn adopt(&self, cx: &OpContext, desired: &Attrs, name: &str) -> Result<Live, ProviderError> {
        let vanished =
            || ProviderError::unexpected("CreateRole", format!("role {name} exists but could not be read"));
        let role = self.get_role(name).await?.ok_or_else(vanished)?;
        let tags = unless_gone(self.tags(name).await)?.ok_or_else(vanished)?;
        if !owned_by(&tags, cx) {
            return Err(not_ours(name, &tags, cx));
        }
        let live = self.live_of(&role, Some(tags)).await?.ok_or_else(vanished)?;
        let changed = in_place_differences(&live.attrs, desired);
        if changed.is_empty() {
            return Ok(live);
        }
        let change = InPlace {
            prior: &live,
            desired,
            changed: &changed,
        };
        self.update(cx, change).await
    }
}

/// A role's attributes from an IAM `Role` plus its attachments and tags.
/// `desired` fills in what the response leaves out (a create's answer).
fn live_from(
    role: &Role,
    attached: BTreeSet<String>,
    tags: BTreeMap<String, String>,
    desired: Option<&Attrs>,
) -> Result<Live, ProviderError> {
    let name = role.role_name();
    let trust = match (role.assume_role_policy_document(), desired) {
        (Some(text), _) => parse_document("ListRoles", "assume role policy document", text)?,
        (None, Some(d)) => document_value(d, TRUST)?,
        (None, None) => {
            return Err(ProviderError::unexpected(
                "ListRoles",
                format!("no assume role policy document for role {name}"),
            ));
        }
    };
    let description = role
        .description()
        .or_else(|| desired.and_then(|d| attr_opt_str(d, "description")));
    let max = match (role.max_session_duration(), desired) {
        (Some(m), _) => m,
        (None, Some(d)) => max_session(d)?.unwrap_or(DEFAULT_MAX_SESSION),
        (None, None) => DEFAULT_MAX_SESSION,
    };
    let path = match role.path() {
        "" => desired.and_then(|d| attr_opt_str(d, "path")).unwrap_or("/"),
        p => p,
    };

    let mut attrs = Attrs::new();
    attrs.insert("name".into(), Value::String(name.to_string()));
    attrs.insert("path".into(), Value::String(path.to_string()));
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        attrs.insert("description".into(), Value::String(d.to_string()));
    }
    attrs.insert("assume_role_policy".into(), trust);
    attrs.insert("max_session_duration".into(), Value::from(max));
    attrs.insert(
        "managed_policy_arns".into(),
        Value::Array(attached.into_iter().map(Value::String).collect()),
    );
    attrs.insert("tags".into(), tags_value(tags));
    attrs.insert("arn".into(), Value::String(role.arn().to_string()));
    attrs.insert("unique_id".into(), Value::String(role.role_id().to_string()));
    Ok(Live {
        id: name.to_string(),
        attrs,
    })
}

/// The common path prefix of the requested roles, to narrow `ListRoles`.
fn requested_prefix(requests: &[ReadRequest]) -> String {
    common_path_prefix(
        requests
            .iter()
            .map(|r| attr_opt_str(&r.attrs, "path").unwrap_or("/")),
    )
}

/// The live view of each requested role: its settings from `ListRoles`
/// (`listed`, by name), its attachments and tags from the account details
/// (`ListRoles` has no tags; the details have no description or maximum
/// session duration). A role missing from either is gone (deleted between
/// the two calls).
fn lives_from(
    requests: &[ReadRequest],
    listed: &HashMap<String, Role>,
    details: &AccountDetails,
) -> Result<Vec<Option<Live>>, ProviderError> {
    requests
        .iter()
        .map(|req| {
            let (Some(role), Some(detail)) = (listed.get(&req.id), details.roles.get(&req.id)) else {
                return Ok(None);
            };
            let attached = attached_arns(detail.attached_managed_policies());
            live_from(role, attached, tag_map(detail.tags()), None).map(Some)
        })
        .collect()
}

#[async_trait]
impl ResourceKind for IamRole {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let name = attr_str(desired, "name")?;
        let path = attr_opt_str(desired, "path").unwrap_or("/");
        let description = attr_opt_str(desired, "description").filter(|d| !d.is_empty());
        let trust = document_text(desired, TRUST)?;
        let max = max_session(desired)?;
        let policies = desired_policy_arns(desired)?;
        let tags = attr_tags(desired);
        let create_tags = Some(iam_tags(&tags)?).filter(|t| !t.is_empty());
        let out = match self
            .iam()
            .create_role()
            .role_name(name)
            .path(path)
            .set_description(description.map(str::to_string))
            .assume_role_policy_document(trust)
            .set_max_session_duration(max)
            .set_tags(create_tags)
            .customize()
            .config_override(SingleAttempt)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = ProviderError::aws("CreateRole", e);
                if err.code() == Some("EntityAlreadyExists") {
                    return self.adopt(cx, desired, name).await;
                }
                return Err(err);
            }
        };
        let role = out
            .role()
            .ok_or_else(|| ProviderError::unexpected("CreateRole", "no role in the response"))?;
        self.sync_attachments(name, &BTreeSet::new(), &policies).await?;
        live_from(role, policies, tags, Some(desired))
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = requested_prefix(requests);
        let (listed, details) = tokio::try_join!(
            self.list_roles(&prefix),
            account_details(self.iam(), &[EntityType::Role]),
        )?;
        lives_from(requests, &listed, &details)
    }

    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        if !requests.is_empty() {
            session.shared::<AccountDetailsReads>().want(EntityType::Role);
        }
    }

    async fn read_in(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let reads = session.shared::<AccountDetailsReads>();
        let prefix = requested_prefix(requests);
        let (listed, details) =
            tokio::try_join!(self.list_roles(&prefix), reads.get(self.iam(), EntityType::Role),)?;
        lives_from(requests, &listed, &details)
    }

    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let name = prior.id.as_str();
        // Only attributes in IN_PLACE reach an update: the engine replaces
        // the role for a change of a force-new one.
        if change.has_any(&["description", "max_session_duration"]) {
            // UpdateRole sets both (an emulator resets what is left out):
            // an attribute the stack does not set keeps its live value.
            let description = attr_opt_str(desired, "description")
                .or_else(|| attr_opt_str(&prior.attrs, "description"))
                .map(str::to_string);
            let max = match max_session(desired)? {
                Some(m) => m,
                None => max_session(&prior.attrs)?.unwrap_or(DEFAULT_MAX_SESSION),
            };
            send!(
                self.iam()
                    .update_role()
                    .role_name(name)
                    .set_description(description)
                    .max_session_duration(max),
                "UpdateRole"
            )?;
        }
        if change.has("assume_role_policy") {
            send!(
                self.iam()
                    .update_assume_role_policy()
                    .role_name(name)
                    .policy_document(document_text(desired, TRUST)?),
                "UpdateAssumeRolePolicy"
            )?;
        }
        if change.has("managed_policy_arns") {
            let want = desired_policy_arns(desired)?;
            let current = self.attached(name).await?;
            self.sync_attachments(name, &current, &want).await?;
        }
        if change.has("tags") {
            let current = self.tags(name).await?;
            let iam = self.iam();
            sync_with! {
                &current => &attr_tags(desired);
                untag iam.untag_role().role_name(name), "UntagRole";
                tag iam.tag_role().role_name(name), "TagRole";
                iam_tags
            }?;
        }

        let gone =
            || ProviderError::unexpected("UpdateRole", format!("role {name} disappeared during the update"));
        let role = self.get_role(name).await?.ok_or_else(gone)?;
        self.live_of(&role, None).await?.ok_or_else(gone)
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let name = prior.id.as_str();
        // A role must be bare before IAM deletes it. A missing role means it
        // is already gone; a missing item, that it is already removed.
        let Some(attached) = unless_gone(self.attached(name).await)? else {
            return Ok(());
        };
        self.sync_attachments(name, &attached, &BTreeSet::new()).await?;
        let Some(inline) = unless_gone(self.inline_policies(name).await)? else {
            return Ok(());
        };
        for policy in &inline {
            unless_gone(send!(
                self.iam()
                    .delete_role_policy()
                    .role_name(name)
                    .policy_name(policy),
                "DeleteRolePolicy"
            ))?;
        }
        let Some(profiles) = unless_gone(self.instance_profiles(name).await)? else {
            return Ok(());
        };
        for profile in &profiles {
            unless_gone(send!(
                self.iam()
                    .remove_role_from_instance_profile()
                    .role_name(name)
                    .instance_profile_name(profile),
                "RemoveRoleFromInstanceProfile"
            ))?;
        }
        unless_gone(send!(self.iam().delete_role().role_name(name), "DeleteRole"))?;
        Ok(())
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let name = attr_str(desired, "name")?;
        let Some(role) = self.get_role(name).await? else {
            return Ok(None);
        };
        let Some(tags) = unless_gone(self.tags(name).await)? else {
            return Ok(None);
        };
        if !owned_by(&tags, cx) {
            return Ok(None);
        }
        self.live_of(&role, Some(tags)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_expands_names_sorts_and_dedups() {
        let got = normalize(
            "managed_policy_arns",
            json!([
                "arn:aws:iam::123456789012:policy/mine",
                "AmazonEKSClusterPolicy",
                "service-role/AmazonEC2RoleforSSM",
                "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            ]),
        );
        assert_eq!(
            got,
            json!([
                "arn:aws:iam::123456789012:policy/mine",
                "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
                "arn:aws:iam::aws:policy/service-role/AmazonEC2RoleforSSM",
            ])
        );
        assert_eq!(normalize("description", json!("Name")), json!("Name"));
        assert_eq!(normalize("managed_policy_arns", json!("x")), json!("x"));
    }

    #[test]
    fn path_prefixes() {
        assert_eq!(common_path_prefix(["/"]), "/");
        assert_eq!(common_path_prefix(["/a/b/", "/a/c/"]), "/a/");
        assert_eq!(common_path_prefix(["/teamA/", "/teamB/"]), "/");
        assert_eq!(common_path_prefix(["/a/", "/"]), "/");
        assert_eq!(common_path_prefix(["/svc/eks/"]), "/svc/eks/");
        assert_eq!(common_path_prefix(["odd"]), "/");
    }

    #[test]
    fn max_session_range() {
        let attrs = |v: Value| {
            let mut a = Attrs::new();
            a.insert("max_session_duration".into(), v);
            a
        };
        assert_eq!(max_session(&Attrs::new()).ok(), Some(None));
        assert_eq!(max_session(&attrs(json!(7200))).ok(), Some(Some(7200)));
        assert!(max_session(&attrs(json!(60))).is_err());
        assert!(max_session(&attrs(json!(50000))).is_err());
        assert!(max_session(&attrs(json!("1h"))).is_err());
    }

    #[test]
    fn differences_compare_canonical_forms() {
        let live = json!({
            "description": "d",
            "max_session_duration": 3600,
            "assume_role_policy": {"Version": "2012-10-17"},
            "managed_policy_arns": ["arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/B"],
            "tags": {"k": "v"},
        });
        let desired = json!({
            "name": "r",
            "description": "d",
            "max_session_duration": 3600,
            "assume_role_policy": "{\"Version\": \"2012-10-17\"}",
            "managed_policy_arns": ["B", "A"],
            "tags": {"k": "v"},
        });
        let (Value::Object(live), Value::Object(mut desired)) = (live, desired) else {
            panic!("objects");
        };
        assert!(in_place_differences(&live, &desired).is_empty());
        desired.insert("managed_policy_arns".into(), json!(["A"]));
        desired.insert("max_session_duration".into(), json!(7200));
        assert_eq!(
            in_place_differences(&live, &desired),
            ["max_session_duration", "managed_policy_arns"]
        );
    }
}

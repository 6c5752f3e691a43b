//! `aws.iam.policy`: a customer managed IAM policy.
//!
//! The id is the policy ARN. The document (`policy`) is the only attribute
//! changed in place: each change creates a new default policy version
//! (deleting the oldest non-default one first when the policy already has
//! the maximum of five). Name, path and description cannot change in IAM, so
//! changing them replaces the policy. CreatePolicyVersion is sent without
//! SDK retries and, when it fails transiently, looked for before it is sent
//! again: repeated, it would leave an extra version (or hit the limit).
//!
//! Reads are batched as far as IAM allows: one paginated
//! `GetAccountAuthorizationDetails` (local managed policies; shared with
//! `aws.iam.role` within a refresh) gives every policy with its documents;
//! only the tags need a call per policy (`ListPolicyTags`: IAM has no batch
//! for them), made concurrently under a bound (see `bounded`).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_iam::types::{EntityType, ManagedPolicyDetail, Policy, PolicyScopeType, PolicyVersion, Tag};

use super::toolkit::bounded::map_bounded;
use super::toolkit::errors::{Service, gone_is_done, unless_gone};
use super::toolkit::iam::{document_text, document_value, iam_tags, tag_map};
use super::toolkit::iam_details::{AccountDetails, AccountDetailsReads, account_details};
use super::toolkit::ownership::owned_by;
use super::toolkit::prelude::*;
use super::toolkit::tags::sync_with;

/// Schema of `aws.iam.policy`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.iam.policy",
    doc: "A customer managed IAM policy. The id is the policy ARN.",
    attrs: attrs! {
        /// Policy name, unique in the account.
        required name: String, force_new;
        /// Path the policy is created under.
        optional path: String = Str("/"), force_new;
        /// Description; IAM cannot change it later.
        optional description: String, force_new;
        /// The policy document; a change creates a new default policy version.
        required policy: Json;
        /// The policy ARN (same as the id).
        computed arn: String;
        /// The stable policy id (ANPA...).
        computed policy_id: String;
        /// The default version (v1, v2, ...).
        computed default_version_id: String;
    },
    taggable: true,
    identity: &[&["name"]],
    ..KindDef::BASE
};

/// IAM keeps at most this many versions of a managed policy.
const MAX_POLICY_VERSIONS: usize = 5;

/// Operations of `aws.iam.policy`.
pub struct IamPolicy(pub Arc<AwsClients>);

/// The attribute holding the policy document.
const DOCUMENT: &str = "policy";

/// Parses a policy document as IAM returns it.
fn parse_document(text: &str) -> Result<Value, ProviderError> {
    super::toolkit::iam::parse_document("GetPolicyVersion", "policy document", text)
}

/// The attributes of a policy as `GetAccountAuthorizationDetails` gives
/// them (all but the tags), its default version's document still as text.
/// `recorded` (the attributes state holds) fills in what an emulator
/// leaves out: moto gives neither the policy's name nor its id.
fn detail_attrs(
    detail: &ManagedPolicyDetail,
    recorded: &Attrs,
) -> Result<(Attrs, Option<String>), ProviderError> {
    const OP: &str = "GetAccountAuthorizationDetails";
    let arn = detail
        .arn()
        .ok_or_else(|| ProviderError::unexpected(OP, "policy without an ARN"))?;
    let version_id = detail
        .default_version_id()
        .ok_or_else(|| ProviderError::unexpected(OP, format!("policy {arn} without a default version")))?;
    let name = detail
        .policy_name()
        .or_else(|| arn.rsplit('/').next())
        .unwrap_or_default();
    let policy_id = detail
        .policy_id()
        .or_else(|| attr_opt_str(recorded, "policy_id"))
        .unwrap_or_default();
    let document = detail
        .policy_version_list()
        .iter()
        .find(|v| v.is_default_version() || v.version_id() == Some(version_id))
        .and_then(PolicyVersion::document)
        .map(str::to_string);
    let mut attrs = Attrs::new();
    attrs.insert("name".into(), Value::String(name.to_string()));
    attrs.insert(
        "path".into(),
        Value::String(detail.path().unwrap_or("/").to_string()),
    );
    if let Some(d) = detail.description().filter(|d| !d.is_empty()) {
        attrs.insert("description".into(), Value::String(d.to_string()));
    }
    attrs.insert("arn".into(), Value::String(arn.to_string()));
    attrs.insert("policy_id".into(), Value::String(policy_id.to_string()));
    attrs.insert("default_version_id".into(), Value::String(version_id.to_string()));
    Ok((attrs, document))
}

/// All tags of a policy.
async fn policy_tags(
    iam: &aws_sdk_iam::Client,
    arn: &str,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let tags: Vec<Tag> = all_pages!(iam.list_policy_tags().policy_arn(arn), "ListPolicyTags")?;
    Ok(tag_map(&tags))
}

impl IamPolicy {
    fn iam(&self) -> &aws_sdk_iam::Client {
        &self.0.iam
    }

    /// Every local policy whose path starts with `path_prefix`.
    async fn list_local(&self, path_prefix: &str) -> Result<Vec<Policy>, ProviderError> {
        let call = self
            .iam()
            .list_policies()
            .scope(PolicyScopeType::Local)
            .path_prefix(path_prefix);
        all_pages!(call, "ListPolicies")
    }

    /// All tags of a policy.
    async fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        policy_tags(self.iam(), arn).await
    }

    /// The live view of each requested policy: everything but the tags
    /// from `details`, the tags from one `ListPolicyTags` per policy (IAM
    /// has no batch call for them), made concurrently.
    async fn read_from(
        &self,
        details: &AccountDetails,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let mut found: Vec<Option<(Attrs, String)>> = Vec::with_capacity(requests.len());
        for req in requests {
            let Some(detail) = details.policies.get(&req.id) else {
                found.push(None);
                continue;
            };
            let (attrs, document) = detail_attrs(detail, &req.attrs)?;
            let document = match document {
                Some(d) => d,
                // Not in the listing (it always is on AWS): ask for it.
                None => match self.default_document(&req.id, detail).await? {
                    Some(d) => d,
                    None => {
                        found.push(None);
                        continue;
                    }
                },
            };
            found.push(Some((attrs, document)));
        }
        let arns: Vec<String> = requests
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_some())
            .map(|(r, _)| r.id.clone())
            .collect();
        let iam = self.iam().clone();
        let tags = map_bounded(arns, move |arn: String| {
            let iam = iam.clone();
            async move {
                match policy_tags(&iam, &arn).await {
                    Ok(t) => Ok(Some(t)),
                    // Deleted since the listing.
                    Err(e) if Service::Iam.is_not_found(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .await?;
        let mut tags = tags.into_iter();
        let mut out = Vec::with_capacity(requests.len());
        for (req, f) in requests.iter().zip(found) {
            let Some((mut attrs, document)) = f else {
                out.push(None);
                continue;
            };
            let Some(t) = tags.next().flatten() else {
                out.push(None);
                continue;
            };
            attrs.insert("policy".into(), parse_document(&document)?);
            attrs.insert("tags".into(), tags_value(t));
            out.push(Some(Live {
                id: req.id.clone(),
                attrs,
            }));
        }
        Ok(out)
    }

    /// The default version's document of a policy whose listing lacks it;
    /// `None` when the policy is gone.
    async fn default_document(
        &self,
        arn: &str,
        detail: &ManagedPolicyDetail,
    ) -> Result<Option<String>, ProviderError> {
        let version_id = detail.default_version_id().unwrap_or("v1");
        let version = self.version(arn, version_id).await?;
        Ok(version
            .as_ref()
            .and_then(PolicyVersion::document)
            .map(str::to_string))
    }

    /// Every version of a policy.
    async fn versions(&self, arn: &str) -> Result<Vec<PolicyVersion>, ProviderError> {
        all_pages!(
            self.iam().list_policy_versions().policy_arn(arn),
            "ListPolicyVersions"
        )
    }

    /// One version of a policy (its document included); `None` when the
    /// policy or the version is gone.
    async fn version(&self, arn: &str, version_id: &str) -> Result<Option<PolicyVersion>, ProviderError> {
        let got = send!(
            self.iam()
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version_id),
            "GetPolicyVersion"
        );
        Ok(unless_gone(Service::Iam, got)?.and_then(|out| out.policy_version().cloned()))
    }

    /// The live view of a listed policy: its default version's document and
    /// its tags. `None` when it disappeared meanwhile. `description` is used
    /// when the listing does not carry one (IAM's `ListPolicies` never does).
    async fn live_of(
        &self,
        policy: &Policy,
        description: Option<&str>,
    ) -> Result<Option<Live>, ProviderError> {
        let arn = policy
            .arn()
            .ok_or_else(|| ProviderError::unexpected("ListPolicies", "policy without an ARN"))?;
        let version_id = policy.default_version_id().ok_or_else(|| {
            ProviderError::unexpected("ListPolicies", format!("policy {arn} without a default version"))
        })?;
        let Some(version) = self.version(arn, version_id).await? else {
            return Ok(None);
        };
        let text = version.document().ok_or_else(|| {
            ProviderError::unexpected("GetPolicyVersion", format!("no document for {arn} {version_id}"))
        })?;
        let document = parse_document(text)?;
        let tags = match self.tags(arn).await {
            Ok(t) => t,
            Err(e) if Service::Iam.is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };

        let mut attrs = Attrs::new();
        attrs.insert(
            "name".into(),
            Value::String(policy.policy_name().unwrap_or_default().to_string()),
        );
        attrs.insert(
            "path".into(),
            Value::String(policy.path().unwrap_or("/").to_string()),
        );
        if let Some(d) = policy.description().or(description).filter(|d| !d.is_empty()) {
            attrs.insert("description".into(), Value::String(d.to_string()));
        }
        attrs.insert("policy".into(), document);
        attrs.insert("tags".into(), tags_value(tags));
        attrs.insert("arn".into(), Value::String(arn.to_string()));
        attrs.insert(
            "policy_id".into(),
            Value::String(policy.policy_id().unwrap_or_default().to_string()),
        );
        attrs.insert("default_version_id".into(), Value::String(version_id.to_string()));
        Ok(Some(Live {
            id: arn.to_string(),
            attrs,
        }))
    }

    /// Deletes one version of a policy; one already gone (the answer to a
    /// first try was lost) is done.
    async fn delete_version(&self, arn: &str, version_id: &str) -> Result<(), ProviderError> {
        let deleted = self
            .iam()
            .delete_policy_version()
            .policy_arn(arn)
            .version_id(version_id)
            .send()
            .await;
        gone_is_done(
            Service::Iam,
            deleted.map_err(|e| ProviderError::aws("DeletePolicyVersion", e)),
        )
    }

    /// Creates a new default version with `document`, making room first when
    /// the policy already has the maximum number of versions. Returns the
    /// new version id.
    ///
    /// CreatePolicyVersion is sent without SDK retries: sent again after
    /// its answer was lost, it would make a second version (and fail with
    /// `LimitExceeded` at the maximum). When it fails transiently, a new
    /// default version holding `document` means it took effect.
    async fn put_document(&self, arn: &str, document: String) -> Result<String, ProviderError> {
        let versions = self.versions(arn).await?;
        if versions.len() >= MAX_POLICY_VERSIONS {
            let oldest = versions
                .iter()
                .filter(|v| !v.is_default_version())
                .min_by_key(|v| {
                    (
                        v.create_date().map(|d| (d.secs(), d.subsec_nanos())),
                        version_number(v.version_id().unwrap_or_default()),
                    )
                })
                .and_then(PolicyVersion::version_id);
            if let Some(oldest) = oldest {
                self.delete_version(arn, oldest).await?;
            }
        }
        let before: Vec<&str> = versions.iter().filter_map(PolicyVersion::version_id).collect();
        let wanted = serde_json::from_str::<Value>(&document).ok();
        super::send_resolving_doubt(
            || async {
                let out = send_once!(
                    self.iam()
                        .create_policy_version()
                        .policy_arn(arn)
                        .policy_document(document.clone())
                        .set_as_default(true),
                    "CreatePolicyVersion"
                )?;
                out.policy_version()
                    .and_then(PolicyVersion::version_id)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ProviderError::unexpected("CreatePolicyVersion", "no version id in the response")
                    })
            },
            || async {
                let new_default = self.versions(arn).await?.into_iter().find(|v| {
                    v.is_default_version() && v.version_id().is_some_and(|id| !before.contains(&id))
                });
                let Some(id) = new_default.as_ref().and_then(PolicyVersion::version_id) else {
                    return Ok(None);
                };
                // ListPolicyVersions leaves the document out on AWS.
                let text = match new_default.as_ref().and_then(PolicyVersion::document) {
                    Some(d) => d.to_string(),
                    None => self
                        .version(arn, id)
                        .await?
                        .as_ref()
                        .and_then(PolicyVersion::document)
                        .unwrap_or_default()
                        .to_string(),
                };
                let same = parse_document(&text).ok() == wanted;
                Ok(same.then(|| id.to_string()))
            },
        )
        .await
    }

    /// Names of the users, groups and roles the policy is attached to (or is
    /// the permissions boundary of).
    async fn attached_entities(&self, arn: &str) -> Result<Vec<String>, ProviderError> {
        let mut pages = self
            .iam()
            .list_entities_for_policy()
            .policy_arn(arn)
            .into_paginator()
            .send();
        let mut entities = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ProviderError::aws("ListEntitiesForPolicy", e))?;
            entities.extend(
                page.policy_roles()
                    .iter()
                    .filter_map(|r| r.role_name())
                    .map(|n| format!("role {n}")),
            );
            entities.extend(
                page.policy_users()
                    .iter()
                    .filter_map(|u| u.user_name())
                    .map(|n| format!("user {n}")),
            );
            entities.extend(
                page.policy_groups()
                    .iter()
                    .filter_map(|g| g.group_name())
                    .map(|n| format!("group {n}")),
            );
        }
        Ok(entities)
    }
}

/// The number of a version id (`v12` → 12), for ordering.
fn version_number(id: &str) -> u64 {
    id.trim_start_matches('v').parse().unwrap_or(u64::MAX)
}

#[async_trait]
impl ResourceKind for IamPolicy {
    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let name = attr_str(desired, "name")?;
        let path = attr_opt_str(desired, "path").unwrap_or("/");
        let description = attr_opt_str(desired, "description");
        let document = document_text(desired, DOCUMENT)?;
        let tags = attr_tags(desired);
        let create_tags = Some(iam_tags(&tags)?).filter(|t| !t.is_empty());
        let out = send_once!(
            self.iam()
                .create_policy()
                .policy_name(name)
                .path(path)
                .set_description(description.map(str::to_string))
                .policy_document(document)
                .set_tags(create_tags),
            "CreatePolicy"
        )?;
        let policy = out
            .policy()
            .ok_or_else(|| ProviderError::unexpected("CreatePolicy", "no policy in the response"))?;
        let arn = policy
            .arn()
            .ok_or_else(|| ProviderError::unexpected("CreatePolicy", "no ARN in the response"))?;

        let mut attrs = Attrs::new();
        attrs.insert("name".into(), Value::String(name.to_string()));
        attrs.insert(
            "path".into(),
            Value::String(policy.path().unwrap_or(path).to_string()),
        );
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            attrs.insert("description".into(), Value::String(d.to_string()));
        }
        attrs.insert("policy".into(), document_value(desired, DOCUMENT)?);
        attrs.insert("tags".into(), tags_value(tags));
        attrs.insert("arn".into(), Value::String(arn.to_string()));
        attrs.insert(
            "policy_id".into(),
            Value::String(policy.policy_id().unwrap_or_default().to_string()),
        );
        attrs.insert(
            "default_version_id".into(),
            Value::String(policy.default_version_id().unwrap_or("v1").to_string()),
        );
        Ok(Live {
            id: arn.to_string(),
            attrs,
        })
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let details = account_details(self.iam(), &[EntityType::LocalManagedPolicy]).await?;
        self.read_from(&details, requests).await
    }

    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        if !requests.is_empty() {
            session
                .shared::<AccountDetailsReads>()
                .want(EntityType::LocalManagedPolicy);
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
        let details = session
            .shared::<AccountDetailsReads>()
            .get(self.iam(), EntityType::LocalManagedPolicy)
            .await?;
        self.read_from(&details, requests).await
    }

    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let arn = prior.id.as_str();
        let mut live = prior.clone();
        // Only `policy` and `tags` reach an update: the engine replaces the
        // policy for a change of a force-new attribute (name, path,
        // description).
        if change.has("policy") {
            let version_id = self.put_document(arn, document_text(desired, DOCUMENT)?).await?;
            live.attrs
                .insert("policy".into(), document_value(desired, DOCUMENT)?);
            live.attrs
                .insert("default_version_id".into(), Value::String(version_id));
        }
        if change.has("tags") {
            let desired_tags = attr_tags(desired);
            let iam = self.iam();
            sync_with! {
                &attr_tags(&prior.attrs) => &desired_tags;
                untag iam.untag_policy().policy_arn(arn), "UntagPolicy";
                tag iam.tag_policy().policy_arn(arn), "TagPolicy";
                iam_tags
            }?;
            live.attrs.insert("tags".into(), tags_value(desired_tags));
        }
        Ok(live)
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let arn = prior.id.as_str();
        let Some(entities) = unless_gone(Service::Iam, self.attached_entities(arn).await)? else {
            return Ok(());
        };
        if !entities.is_empty() {
            return Err(ProviderError::unexpected(
                "DeletePolicy",
                format!(
                    "policy {arn} is still attached to {}; detach it (or delete those entities) first",
                    entities.join(", ")
                ),
            ));
        }
        let Some(versions) = unless_gone(Service::Iam, self.versions(arn).await)? else {
            return Ok(());
        };
        for v in versions.iter().filter(|v| !v.is_default_version()) {
            if let Some(id) = v.version_id() {
                self.delete_version(arn, id).await?;
            }
        }
        let deleted = self.iam().delete_policy().policy_arn(arn).send().await;
        gone_is_done(
            Service::Iam,
            deleted.map_err(|e| ProviderError::aws("DeletePolicy", e)),
        )
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let name = attr_str(desired, "name")?;
        let path = attr_opt_str(desired, "path").unwrap_or("/");
        let listed = self.list_local(path).await?;
        let Some(policy) = listed
            .iter()
            .find(|p| p.policy_name() == Some(name) && p.path().unwrap_or("/") == path)
        else {
            return Ok(None);
        };
        let Some(arn) = policy.arn() else {
            return Ok(None);
        };
        let Some(tags) = unless_gone(Service::Iam, self.tags(arn).await)? else {
            return Ok(None);
        };
        if !owned_by(&tags, cx) {
            return Ok(None);
        }
        // ListPolicies leaves the description out; GetPolicy has it.
        let got = self.iam().get_policy().policy_arn(arn).send().await;
        let Some(got) = unless_gone(Service::Iam, got.map_err(|e| ProviderError::aws("GetPolicy", e)))?
        else {
            return Ok(None);
        };
        let description = got.policy().and_then(Policy::description).map(str::to_string);
        self.live_of(policy, description.as_deref()).await
    }
}

//! `aws.ecr.repository`: a private ECR repository in the account's default
//! registry.
//!
//! The id is the repository name. Tag mutability and scan-on-push change in
//! place; the name forces replacement. Deleting a repository first deletes
//! every image in it, then deletes the repository without `force`, so that
//! an image pushed in between makes the delete fail loudly instead of being
//! silently thrown away.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_ecr::types::{ImageIdentifier, ImageScanningConfiguration, ImageTagMutability, Repository, Tag};

use super::toolkit::bounded::map_bounded;
use super::toolkit::errors::{Service, gone_is_done, unless_gone};
use super::toolkit::ownership::owned_by;
use super::toolkit::prelude::*;
use super::toolkit::tags::{sync_with, tag_list};
use crate::provider::{TAG_ADDRESS, TAG_STACK};

/// Schema of `aws.ecr.repository`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ecr.repository",
    doc: "A private ECR repository. The id is the repository name.",
    attrs: attrs! {
        /// Repository name, unique in the registry.
        required name: String, force_new;
        /// `MUTABLE` or `IMMUTABLE`: whether an image tag may be moved to another image.
        optional image_tag_mutability: String = Str("MUTABLE");
        /// Scan each image for vulnerabilities when pushed.
        optional scan_on_push: Bool = Bool(false);
        /// The repository ARN.
        computed arn: String;
        /// The URI to push to: `<registry>.dkr.ecr.<region>.amazonaws.com/<name>`.
        computed repository_uri: String;
        /// The registry (account) id.
        computed registry_id: String;
    },
    taggable: true,
    identity: &[&["name"]],
    ..KindDef::BASE
};

/// ECR's limit on names per `DescribeRepositories` and images per
/// `BatchDeleteImage`.
const BATCH: usize = 100;

/// Operations of `aws.ecr.repository`.
pub struct EcrRepository(pub Arc<AwsClients>);

/// The desired tag mutability, checked.
fn mutability(desired: &Attrs) -> Result<ImageTagMutability, ProviderError> {
    match attr_opt_str(desired, "image_tag_mutability").unwrap_or("MUTABLE") {
        "MUTABLE" => Ok(ImageTagMutability::Mutable),
        "IMMUTABLE" => Ok(ImageTagMutability::Immutable),
        other => Err(ProviderError::invalid(
            "image_tag_mutability",
            format!("must be \"MUTABLE\" or \"IMMUTABLE\", not {other:?}"),
        )),
    }
}

/// ECR tags from a tag map.
fn ecr_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tag_list(tags, |k, v| Tag::builder().key(k).value(v).build())
}

/// The live view of a repository with the given tags.
fn live_of(repo: &Repository, tags: &BTreeMap<String, String>) -> Result<Live, ProviderError> {
    let name = repo
        .repository_name()
        .ok_or_else(|| ProviderError::unexpected("DescribeRepositories", "repository without a name"))?;
    let mut attrs = Attrs::new();
    attrs.insert("name".into(), Value::String(name.to_string()));
    attrs.insert(
        "image_tag_mutability".into(),
        Value::String(
            repo.image_tag_mutability()
                .map_or("MUTABLE", ImageTagMutability::as_str)
                .to_string(),
        ),
    );
    attrs.insert(
        "scan_on_push".into(),
        Value::Bool(
            repo.image_scanning_configuration()
                .is_some_and(ImageScanningConfiguration::scan_on_push),
        ),
    );
    attrs.insert("tags".into(), tags_value(tags.clone()));
    attrs.insert(
        "arn".into(),
        Value::String(repo.repository_arn().unwrap_or_default().to_string()),
    );
    attrs.insert(
        "repository_uri".into(),
        Value::String(repo.repository_uri().unwrap_or_default().to_string()),
    );
    attrs.insert(
        "registry_id".into(),
        Value::String(repo.registry_id().unwrap_or_default().to_string()),
    );
    Ok(Live {
        id: name.to_string(),
        attrs,
    })
}

/// All tags of a repository.
async fn repository_tags(
    ecr: &aws_sdk_ecr::Client,
    arn: &str,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let out = send!(
        ecr.list_tags_for_resource().resource_arn(arn),
        "ListTagsForResource"
    )?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

impl EcrRepository {
    fn ecr(&self) -> &aws_sdk_ecr::Client {
        &self.0.ecr
    }

    /// Describes the named repositories (all of them must exist).
    async fn describe(&self, names: &[String]) -> Result<Vec<Repository>, ProviderError> {
        let call = self
            .ecr()
            .describe_repositories()
            .set_repository_names(Some(names.to_vec()));
        all_pages!(call, "DescribeRepositories")
    }

    /// Every repository of the registry.
    async fn describe_all(&self) -> Result<Vec<Repository>, ProviderError> {
        all_pages!(self.ecr().describe_repositories(), "DescribeRepositories")
    }

    /// The existing repositories among `names`, by name.
    async fn existing(&self, names: &[String]) -> Result<HashMap<String, Repository>, ProviderError> {
        let mut found = Vec::new();
        for chunk in names.chunks(BATCH) {
            match self.describe(chunk).await {
                Ok(repos) => found.extend(repos),
                // One missing name fails the whole call: list everything
                // instead and pick the names out.
                Err(e) if Service::Ecr.is_not_found(&e) => {
                    found = self.describe_all().await?;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        Ok(found
            .into_iter()
            .filter_map(|r| {
                let name = r.repository_name()?.to_string();
                wanted.contains(name.as_str()).then_some((name, r))
            })
            .collect())
    }

    /// All tags of a repository.
    async fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        repository_tags(self.ecr(), arn).await
    }

    /// Deletes every image of the repository (by digest, which removes all
    /// of an image's tags with it).
    async fn delete_images(&self, name: &str) -> Result<(), ProviderError> {
        let images: Vec<ImageIdentifier> =
            all_pages!(self.ecr().list_images().repository_name(name), "ListImages")?;
        let mut digests: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for d in images.iter().filter_map(ImageIdentifier::image_digest) {
            if seen.insert(d) {
                digests.push(d.to_string());
            }
        }
        for chunk in digests.chunks(BATCH) {
            let ids: Vec<ImageIdentifier> = chunk
                .iter()
                .map(|d| ImageIdentifier::builder().image_digest(d).build())
                .collect();
            let out = send!(
                self.ecr()
                    .batch_delete_image()
                    .repository_name(name)
                    .set_image_ids(Some(ids)),
                "BatchDeleteImage"
            )?;
            // An image already gone is what we want; anything else is not.
            let failures: Vec<String> = out
                .failures()
                .iter()
                .filter(|f| f.failure_code().map(|c| c.as_str()) != Some("ImageNotFound"))
                .map(|f| {
                    format!(
                        "{}: {} {}",
                        f.image_id()
                            .and_then(ImageIdentifier::image_digest)
                            .unwrap_or("?"),
                        f.failure_code().map_or("", |c| c.as_str()),
                        f.failure_reason().unwrap_or(""),
                    )
                })
                .collect();
            if !failures.is_empty() {
                return Err(ProviderError::unexpected(
                    "BatchDeleteImage",
                    format!(
                        "cannot delete images of repository {name}: {}",
                        failures.join("; ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ResourceKind for EcrRepository {
    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let name = attr_str(desired, "name")?;
        let tags = attr_tags(desired);
        let create_tags = Some(ecr_tags(&tags)?).filter(|t| !t.is_empty());
        let out = send_once!(
            self.ecr()
                .create_repository()
                .repository_name(name)
                .image_tag_mutability(mutability(desired)?)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(attr_bool(desired, "scan_on_push"))
                        .build(),
                )
                .set_tags(create_tags),
            "CreateRepository"
        )?;
        let repo = out
            .repository()
            .ok_or_else(|| ProviderError::unexpected("CreateRepository", "no repository in the response"))?;
        live_of(repo, &tags)
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
        names.sort();
        names.dedup();
        let repos = self.existing(&names).await?;
        // ECR has no call for the tags of many repositories: one call per
        // repository, made concurrently (see `bounded`).
        let arns: Vec<(String, String)> = repos
            .iter()
            .filter_map(|(name, r)| Some((name.clone(), r.repository_arn()?.to_string())))
            .collect();
        let ecr = self.ecr().clone();
        let tagged = map_bounded(arns, move |(name, arn)| {
            let ecr = ecr.clone();
            async move {
                match repository_tags(&ecr, &arn).await {
                    Ok(t) => Ok(Some((name, t))),
                    // Deleted between the describe and now.
                    Err(e) if Service::Ecr.is_not_found(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .await?;
        let mut lives: HashMap<&str, Live> = HashMap::new();
        for (name, tags) in tagged.into_iter().flatten() {
            if let Some((name, repo)) = repos.get_key_value(&name) {
                lives.insert(name.as_str(), live_of(repo, &tags)?);
            }
        }
        Ok(requests
            .iter()
            .map(|r| lives.get(r.id.as_str()).cloned())
            .collect())
    }

    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let name = prior.id.as_str();
        let mut live = prior.clone();
        // The name never reaches an update: the engine replaces the
        // repository for a change of a force-new attribute.
        if change.has("image_tag_mutability") {
            let m = mutability(desired)?;
            send!(
                self.ecr()
                    .put_image_tag_mutability()
                    .repository_name(name)
                    .image_tag_mutability(m.clone()),
                "PutImageTagMutability"
            )?;
            live.attrs.insert(
                "image_tag_mutability".into(),
                Value::String(m.as_str().to_string()),
            );
        }
        if change.has("scan_on_push") {
            let scan = attr_bool(desired, "scan_on_push");
            send!(
                self.ecr()
                    .put_image_scanning_configuration()
                    .repository_name(name)
                    .image_scanning_configuration(
                        ImageScanningConfiguration::builder().scan_on_push(scan).build(),
                    ),
                "PutImageScanningConfiguration"
            )?;
            live.attrs.insert("scan_on_push".into(), Value::Bool(scan));
        }
        if change.has("tags") {
            let arn = attr_str(&prior.attrs, "arn")?;
            let desired_tags = attr_tags(desired);
            let ecr = self.ecr();
            sync_with! {
                &attr_tags(&prior.attrs) => &desired_tags;
                untag ecr.untag_resource().resource_arn(arn), "UntagResource";
                tag ecr.tag_resource().resource_arn(arn), "TagResource";
                ecr_tags
            }?;
            live.attrs.insert("tags".into(), tags_value(desired_tags));
        }
        Ok(live)
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let name = prior.id.as_str();
        if unless_gone(Service::Ecr, self.delete_images(name).await)?.is_none() {
            return Ok(());
        }
        // Without `force`: an image pushed since the listing makes this fail
        // (RepositoryNotEmptyException) rather than vanish unseen.
        let deleted = self.ecr().delete_repository().repository_name(name).send().await;
        gone_is_done(
            Service::Ecr,
            deleted.map_err(|e| ProviderError::aws("DeleteRepository", e)),
        )
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let name = attr_str(desired, "name")?;
        let Some(repos) = unless_gone(Service::Ecr, self.describe(&[name.to_string()]).await)? else {
            return Ok(None);
        };
        let Some(repo) = repos.iter().find(|r| r.repository_name() == Some(name)) else {
            return Ok(None);
        };
        let arn = repo
            .repository_arn()
            .ok_or_else(|| ProviderError::unexpected("DescribeRepositories", "repository without an ARN"))?;
        let Some(tags) = unless_gone(Service::Ecr, self.tags(arn).await)? else {
            return Ok(None);
        };
        if owned_by(&tags, cx) {
            return live_of(repo, &tags).map(Some);
        }
        let owner = match (tags.get(TAG_STACK), tags.get(TAG_ADDRESS)) {
            (Some(s), Some(a)) => format!("it belongs to stack {s} address {a}"),
            _ => "it carries no meshform ownership tags".to_string(),
        };
        Err(ProviderError::unexpected(
            "CreateRepository",
            format!(
                "repository {name} exists and is not owned by stack {} address {} ({owner})",
                cx.stack, cx.address
            ),
        ))
    }
}

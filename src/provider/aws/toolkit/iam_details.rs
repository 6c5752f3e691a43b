//! IAM's one batch read: `GetAccountAuthorizationDetails`, which returns
//! every local managed policy with all its versions (documents included)
//! and every role with its trust policy, attached managed policies, inline
//! policies, instance profiles and tags, a page of up to 1,000 entities at
//! a time.
//!
//! What it leaves out is read elsewhere: a managed policy's tags (AWS has
//! no batch call for them: `ListPolicyTags` per policy), and a role's
//! description and maximum session duration (one paginated `ListRoles`).
//!
//! Within a refresh `aws.iam.policy` and `aws.iam.role` share one call
//! (filtered to both entity types) through [`AccountDetailsReads`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_iam::types::{EntityType, ManagedPolicyDetail, RoleDetail};
use tokio::sync::OnceCell;

use crate::provider::ProviderError;

/// Most entities per page IAM returns.
const PAGE_SIZE: i32 = 1000;

/// What `GetAccountAuthorizationDetails` returned.
#[derive(Debug, Default)]
pub struct AccountDetails {
    /// Local managed policies, by ARN.
    pub policies: HashMap<String, ManagedPolicyDetail>,
    /// Roles, by name.
    pub roles: HashMap<String, RoleDetail>,
}

/// Reads the details of the given entity types, every page.
pub async fn account_details(
    iam: &aws_sdk_iam::Client,
    types: &[EntityType],
) -> Result<AccountDetails, ProviderError> {
    let mut pages = iam
        .get_account_authorization_details()
        .set_filter(Some(types.to_vec()))
        .max_items(PAGE_SIZE)
        .into_paginator()
        .send();
    let mut out = AccountDetails::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ProviderError::aws("GetAccountAuthorizationDetails", e))?;
        for p in page.policies() {
            if let Some(arn) = p.arn() {
                out.policies.insert(arn.to_string(), p.clone());
            }
        }
        for r in page.role_detail_list() {
            if let Some(name) = r.role_name() {
                out.roles.insert(name.to_string(), r.clone());
            }
        }
    }
    Ok(out)
}

/// The account details of one refresh: the kinds announce the entity types
/// they read, and the first read describes them all at once.
#[derive(Default)]
pub struct AccountDetailsReads {
    wanted: Mutex<BTreeSet<String>>,
    described: OnceCell<Result<Arc<AccountDetails>, ProviderError>>,
}

impl AccountDetailsReads {
    /// Announces that entities of type `t` will be read.
    pub fn want(&self, t: EntityType) {
        let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        w.insert(t.as_str().to_string());
    }

    /// The details of every announced type, and of `t` (announced or not).
    pub async fn get(
        &self,
        iam: &aws_sdk_iam::Client,
        t: EntityType,
    ) -> Result<Arc<AccountDetails>, ProviderError> {
        let announced = {
            let w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            w.contains(t.as_str())
        };
        if !announced {
            return account_details(iam, &[t]).await.map(Arc::new);
        }
        self.described
            .get_or_init(|| async {
                let types: Vec<EntityType> = {
                    let w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
                    w.iter().map(|s| EntityType::from(s.as_str())).collect()
                };
                account_details(iam, &types).await.map(Arc::new)
            })
            .await
            .clone()
    }
}

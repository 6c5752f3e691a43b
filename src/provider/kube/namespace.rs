//! `kube.namespace` (stub: not yet written).

use std::sync::Arc;

use async_trait::async_trait;

use super::connection::Clients;
use crate::Attrs;
use crate::provider::schema::KindDef;
use crate::provider::{Live, OpContext, ProviderError, ReadRequest, ResourceKind};

/// Schema of `kube.namespace`.
pub static DEF: KindDef = KindDef {
    type_name: "kube.namespace",
    doc: "",
    attrs: &[],
    taggable: false,
    normalize: None,
    preflight: None,
};

/// Operations of `kube.namespace`.
pub struct Namespace(pub Arc<Clients>);

fn unwritten() -> ProviderError {
    ProviderError::unexpected("kube.namespace", "kind not implemented yet")
}

#[async_trait]
impl ResourceKind for Namespace {
    fn def(&self) -> &'static KindDef {
        &DEF
    }
    async fn create(&self, _cx: &OpContext, _desired: &Attrs) -> Result<Live, ProviderError> {
        Err(unwritten())
    }
    async fn read(&self, _requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        Err(unwritten())
    }
    async fn update(
        &self,
        _cx: &OpContext,
        _prior: &Live,
        _desired: &Attrs,
        _changed: &[String],
    ) -> Result<Live, ProviderError> {
        Err(unwritten())
    }
    async fn delete(&self, _cx: &OpContext, _prior: &Live) -> Result<(), ProviderError> {
        Err(unwritten())
    }
    async fn find_existing(&self, _cx: &OpContext, _desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        Err(unwritten())
    }
}

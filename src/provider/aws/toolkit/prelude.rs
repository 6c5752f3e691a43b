//! What every AWS kind file uses, imported at once with
//! `use super::toolkit::prelude::*;`: the schema types, the operation
//! types and attribute readers, and the ways to send a call.

pub use async_trait::async_trait;

pub(crate) use super::{all_pages, send};
pub use crate::provider::aws::AwsClients;
pub(crate) use crate::provider::aws::send_once;
pub(crate) use crate::provider::schema::attrs;
pub use crate::provider::schema::{AttrSchema, KindDef};
pub use crate::provider::{
    InPlace, Live, OpContext, ProviderError, ReadRequest, ReadSession, ResourceKind, attr_bool, attr_opt_str,
    attr_str, attr_str_list, attr_tags, tags_value,
};
pub use crate::{Attrs, Value};

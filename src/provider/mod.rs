//! Resource kinds: their static schemas (pure, used by validation and
//! planning) and their cloud operations (used by the engine).
//!
//! Each kind is one file under `provider/<provider>/`. A kind implements
//! [`ResourceKind`]; the engine never looks inside a kind's attributes beyond
//! what the schema says.

pub mod aws;
pub mod kube;
pub mod schema;
pub mod session;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Attrs, Value};
pub use schema::{AttrSchema, AttrType, KindDef, Mode};
pub use session::ReadSession;

/// Tag key naming the stack that owns a resource.
pub const TAG_STACK: &str = "meshform:stack";
/// Tag key naming the resource's address in its stack.
pub const TAG_ADDRESS: &str = "meshform:address";

/// Kinds registered by the library's user (see [`register_kinds`]).
static REGISTERED: std::sync::RwLock<Vec<&'static KindDef>> = std::sync::RwLock::new(Vec::new());

/// Makes kinds defined outside meshform (such as the in-memory kinds of
/// [`crate::testing`]) known to stack loading and planning, as if built
/// in. A kind whose type name is already known is not added again.
pub fn register_kinds(defs: &[&'static KindDef]) {
    let mut registered = REGISTERED.write().unwrap_or_else(|p| p.into_inner());
    for def in defs {
        let known = aws::KIND_DEFS
            .iter()
            .chain(kube::KIND_DEFS)
            .chain(registered.iter());
        if !known.into_iter().any(|k| k.type_name == def.type_name) {
            registered.push(def);
        }
    }
}

/// Every kind meshform knows: built in, then registered. Pure: no cloud
/// connection.
pub fn kind_defs() -> impl Iterator<Item = &'static KindDef> {
    let registered = REGISTERED.read().unwrap_or_else(|p| p.into_inner()).clone();
    aws::KIND_DEFS
        .iter()
        .chain(kube::KIND_DEFS)
        .copied()
        .chain(registered)
}

/// Looks a kind definition up by type name.
pub fn kind_def(type_name: &str) -> Option<&'static KindDef> {
    kind_defs().find(|k| k.type_name == type_name)
}

/// Every kind, operating through `aws` (and, for in-cluster kinds, the
/// clusters their resources name).
pub fn all_kinds(aws: &Arc<aws::AwsClients>) -> Kinds {
    let mut kinds = aws.kinds();
    kube::add_kinds(&mut kinds);
    kinds
}

/// The tags meshform adds to every taggable resource it creates.
pub fn ownership_tags(stack: &str, address: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_ADDRESS.to_string(), address.to_string()),
    ])
}

/// A resource as the cloud reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// The cloud id (VPC id, policy ARN, repository name, ...).
    pub id: String,
    /// Configurable and computed attributes, in the shapes the schema gives.
    /// For taggable kinds `tags` holds every tag, `meshform:` ones included
    /// (tags whose key starts with `aws:` are left out).
    pub attrs: Attrs,
}

/// Reports how a long operation is going (for example a cluster's status
/// while meshform waits for it), so that the user sees it live.
#[derive(Clone, Default)]
pub struct Progress(Option<ReportFn>);

type ReportFn = Arc<dyn Fn(&str) + Send + Sync>;

impl Progress {
    /// A reporter calling `f` with each message.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    /// Reports `message`; does nothing for the default reporter.
    pub fn report(&self, message: &str) {
        if let Some(f) = &self.0 {
            f(message);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(reporting)"
        } else {
            "Progress(silent)"
        })
    }
}

/// What an operation is about: passed to every call so that errors and
/// lookups can name the resource.
#[derive(Debug, Clone, Default)]
pub struct OpContext {
    /// The stack's name: the `meshform:stack` tag on what a kind creates,
    /// and what [`ResourceKind::find_existing`] looks for.
    pub stack: String,
    /// The resource's address in the stack: the `meshform:address` tag, and
    /// the name errors and logs give.
    pub address: String,
    /// Idempotency token of a create, recorded in state before the call and
    /// passed as the API's client token where it has one. Empty for updates
    /// and deletes.
    pub token: String,
    /// Where to report the status of long waits.
    pub progress: Progress,
    /// Cloud ids of objects state already tracks for this address (the old
    /// object of a create-before-destroy replacement, which carries the same
    /// ownership tags): [`ResourceKind::find_existing`] must not return them.
    pub exclude: Vec<String>,
}

/// A resource state entry handed to a batched read.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// The resource's address in the stack, for errors and logs.
    pub address: String,
    /// The cloud id recorded in state.
    pub id: String,
    /// Attributes recorded at the last apply (some kinds need them to find
    /// the resource, for example a route's table and destination).
    pub attrs: Attrs,
}

/// Errors from cloud operations.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum ProviderError {
    /// The cloud API answered with an error.
    #[error("{operation}: {message}")]
    Api {
        /// The API operation, such as `DescribeVpcs`.
        operation: String,
        /// The service's error code, such as `InvalidVpcID.NotFound`; `None`
        /// when there is none (for example a network failure).
        code: Option<String>,
        /// `code: message` as the service gave them, or the SDK's
        /// description of the failure when there is no code.
        message: String,
    },
    /// A wait for a state did not finish in time.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout {
        /// What meshform was waiting for, worded to follow "waiting for".
        what: String,
        /// How long it waited, in seconds.
        seconds: u64,
    },
    /// The desired attributes could not be turned into an API call.
    #[error("invalid attribute {attr}: {message}")]
    InvalidAttr {
        /// The attribute's name.
        attr: String,
        /// What is wrong with its value.
        message: String,
    },
    /// The cloud answered something meshform cannot interpret.
    #[error("unexpected response from {operation}: {message}")]
    Unexpected {
        /// Where the answer came from: usually the API operation, such as
        /// `CreateVpc`.
        operation: String,
        /// What was wrong with the answer, such as a missing field.
        message: String,
    },
    /// Building the cloud client failed.
    #[error("cannot configure the cloud client: {0}")]
    Config(String),
    /// The place the resource lives cannot be reached: its API server does
    /// not answer, or no client can be built for it (for a Kubernetes
    /// object, its cluster is down, deleted or misconfigured).
    #[error("cannot reach {target}: {message}")]
    Unreachable {
        /// What could not be reached, such as `EKS cluster demo`.
        target: String,
        /// Why.
        message: String,
    },
}

/// Service error codes by which AWS services say "slow down".
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "TooManyRequests",
    "ProvisionedThroughputExceededException",
    "SlowDown",
];

/// Service error codes of server faults: with throttling, what means "try
/// again later". The request may or may not have been carried out.
const SERVER_FAULT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
];

impl ProviderError {
    /// Builds an [`ProviderError::Api`] from an AWS SDK error, keeping the
    /// service's error code and message.
    pub fn aws<E, R>(operation: &str, err: aws_sdk_ec2::error::SdkError<E, R>) -> Self
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        use aws_sdk_ec2::error::ProvideErrorMetadata;
        let code = err.code().map(str::to_string);
        let message = match (err.code(), err.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_string(),
            _ => aws_sdk_ec2::error::DisplayErrorContext(&err).to_string(),
        };
        ProviderError::Api {
            operation: operation.to_string(),
            code,
            message,
        }
    }

    /// Whether the failure may go away by itself: the connection failed or
    /// the answer was lost (no service error code), or the service said it
    /// was throttling or failing. Such a failure leaves it open whether the
    /// call took effect, so a create that fails this way is looked up
    /// before it is tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            ProviderError::Api { code: None, .. } => true,
            ProviderError::Api { code: Some(code), .. } => {
                THROTTLING_CODES.contains(&code.as_str()) || SERVER_FAULT_CODES.contains(&code.as_str())
            }
            _ => false,
        }
    }

    /// Whether the service said it was throttling the caller.
    pub fn is_throttling(&self) -> bool {
        self.code().is_some_and(|c| THROTTLING_CODES.contains(&c))
    }

    /// Whether the failure is that the resource's cloud cannot be reached.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ProviderError::Unreachable { .. })
    }

    /// The service's error code, when the cloud gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ProviderError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// A [`ProviderError::Unexpected`] answer from `operation`.
    pub fn unexpected(operation: &str, message: impl Into<String>) -> Self {
        ProviderError::Unexpected {
            operation: operation.to_string(),
            message: message.into(),
        }
    }

    /// A [`ProviderError::InvalidAttr`] for attribute `attr`.
    pub fn invalid(attr: &str, message: impl Into<String>) -> Self {
        ProviderError::InvalidAttr {
            attr: attr.to_string(),
            message: message.into(),
        }
    }
}

/// Facts about the target region that stacks may refer to, read once per run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegionFacts {
    /// The region the facts are about, such as "us-west-2".
    pub region: String,
    /// Available availability zones sorted by name: `${az[0]}` is the first.
    pub azs: Vec<String>,
}

/// The static definition a kind's operations serve. Apart from
/// [`ResourceKind`] so that where kinds are declared together with their
/// definitions (the AWS registry), it is implemented there, once.
pub trait Schema {
    /// The static definition (schema) of this kind.
    fn def(&self) -> &'static KindDef;
}

/// Cloud operations of one resource kind.
///
/// Implementations must be idempotent where the API allows it, tag what they
/// create with every tag in the desired `tags`, and wait until a resource is
/// usable (create) or gone (delete) before returning.
#[async_trait]
pub trait ResourceKind: Schema + Send + Sync {
    /// Creates the resource from fully known desired attributes.
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError>;

    /// Reads many resources of this kind, batching API calls (one filtered
    /// describe per page, not one per resource). Returns, in request order,
    /// `None` for a resource that no longer exists.
    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError>;

    /// Tells `session`, before any read of a refresh starts, what
    /// [`ResourceKind::read_in`] of `requests` will describe, so that kinds
    /// reading the same objects share one call (see [`ReadSession`]). No
    /// I/O. The default announces nothing.
    fn announce(&self, _session: &ReadSession, _requests: &[ReadRequest]) {}

    /// [`ResourceKind::read`] within a refresh: objects other kinds read
    /// too come from `session`'s shared readers. The default is `read`.
    async fn read_in(
        &self,
        _session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        self.read(requests).await
    }

    /// Applies the in-place change `change` describes and returns the
    /// resource as it then is.
    async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError>;

    /// Deletes the resource and waits until it is gone. Deleting a resource
    /// that is already gone succeeds.
    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError>;

    /// Finds a resource a create may have made before meshform could record
    /// it (crash between the API call and the state write): by the ownership
    /// tags for taggable kinds, by natural key (for example route table and
    /// destination) otherwise.
    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError>;

    /// What the cloud says the resource would look like once `desired` is
    /// applied, without changing anything (for example a server-side dry
    /// run), in the shapes `read` returns; `prior` is the resource as read,
    /// `None` for a create. Planning uses it to show a change as the cloud
    /// would make it, and fails on what the cloud would refuse. `None`
    /// (the default) when the kind has no such preview.
    async fn preview(&self, _prior: Option<&Live>, _desired: &Attrs) -> Result<Option<Attrs>, ProviderError> {
        Ok(None)
    }
}

/// An in-place change the engine asks a kind to make. Only attributes that
/// change in place are in `changed`: the engine replaces a resource whose
/// force-new attribute changes instead of updating it. `Copy`, so that a
/// kind can pass it on to its helpers.
#[derive(Debug, Clone, Copy)]
pub struct InPlace<'a> {
    /// The resource as recorded (or as found, after a create in doubt).
    pub prior: &'a Live,
    /// The attributes wanted, fully known.
    pub desired: &'a Attrs,
    /// The names of the attributes whose desired value differs from `prior`.
    pub changed: &'a [String],
}

impl InPlace<'_> {
    /// Whether attribute `attr` changes.
    pub fn has(&self, attr: &str) -> bool {
        self.changed.iter().any(|c| c == attr)
    }

    /// Whether any of `attrs` changes.
    pub fn has_any(&self, attrs: &[&str]) -> bool {
        attrs.iter().any(|a| self.has(a))
    }
}

/// A connected provider's kinds, by type name.
#[derive(Clone, Default)]
pub struct Kinds {
    by_type: BTreeMap<&'static str, Arc<dyn ResourceKind>>,
}

impl Kinds {
    /// Registers `kind` under its type name, replacing any kind already
    /// registered for that name.
    pub fn insert(&mut self, kind: Arc<dyn ResourceKind>) {
        self.by_type.insert(kind.def().type_name, kind);
    }

    /// The kind registered for `type_name`, if any.
    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn ResourceKind>> {
        self.by_type.get(type_name)
    }
}

/// Reads a string attribute, for kinds turning attributes into API calls.
pub fn attr_str<'a>(attrs: &'a Attrs, name: &str) -> Result<&'a str, ProviderError> {
    attrs
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::invalid(name, "missing or not a string"))
}

/// Reads an optional string attribute.
pub fn attr_opt_str<'a>(attrs: &'a Attrs, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(Value::as_str)
}

/// Reads a boolean attribute, `false` when absent.
pub fn attr_bool(attrs: &Attrs, name: &str) -> bool {
    attrs.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Reads a list-of-strings attribute, empty when absent.
pub fn attr_str_list(attrs: &Attrs, name: &str) -> Vec<String> {
    attrs
        .get(name)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Reads the `tags` attribute as a map, empty when absent.
pub fn attr_tags(attrs: &Attrs) -> BTreeMap<String, String> {
    attrs
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds a `tags` value from key/value pairs, leaving out `aws:` keys that
/// the cloud adds itself.
pub fn tags_value<I, K, V>(tags: I) -> Value
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let map: serde_json::Map<String, Value> = tags
        .into_iter()
        .map(|(k, v)| (k.into(), Value::String(v.into())))
        .filter(|(k, _)| !k.starts_with("aws:"))
        .collect();
    Value::Object(map)
}

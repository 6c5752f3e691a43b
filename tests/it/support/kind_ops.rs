//! Driving one kind directly against moto: operation contexts, desired
//! attributes as the planner hands them over, read requests, a network to
//! put things in, and clients that go through a recording proxy.

use std::sync::{Arc, Mutex};

use meshform::Attrs;
use meshform::provider::aws::AwsClients;
use meshform::provider::{Live, OpContext, Progress, ReadRequest, ownership_tags};
use serde_json::Value;

use super::fault_proxy::{FaultPlan, FaultProxy};
use super::moto::{Moto, REGION};

pub const STACK: &str = "teststack";

/// The context of an operation on `address`, with the progress reports
/// collected.
pub fn cx(address: &str) -> (OpContext, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let cx = OpContext {
        stack: STACK.into(),
        address: address.into(),
        token: format!("tok-{address}"),
        progress: Progress::new(move |m| sink.lock().unwrap().push(m.to_string())),
        ..Default::default()
    };
    (cx, seen)
}

/// Desired attributes as the planner hands them over: `tags` holding the
/// user's tags plus the ownership tags.
pub fn desired(attrs: Value, cx: &OpContext) -> Attrs {
    let Value::Object(mut attrs) = attrs else {
        panic!("attrs must be an object")
    };
    let mut tags = attrs
        .remove("tags")
        .and_then(|t| t.as_object().cloned())
        .unwrap_or_default();
    for (k, v) in ownership_tags(&cx.stack, &cx.address) {
        tags.insert(k, Value::String(v));
    }
    attrs.insert("tags".into(), Value::Object(tags));
    attrs
}

/// The read request state would make of `live`.
pub fn request(live: &Live) -> ReadRequest {
    ReadRequest {
        address: String::new(),
        id: live.id.clone(),
        attrs: live.attrs.clone(),
    }
}

/// A VPC with two subnets in two zones, made through the SDK.
pub struct Network {
    pub vpc: String,
    pub subnets: Vec<String>,
}

pub async fn network(ec2: &aws_sdk_ec2::Client) -> Network {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.40.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let mut subnets = Vec::new();
    for (i, az) in ["a", "b"].iter().enumerate() {
        let out = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.40.{i}.0/24"))
            .availability_zone(format!("{REGION}{az}"))
            .send()
            .await
            .unwrap();
        subnets.push(out.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    subnets.sort();
    Network { vpc, subnets }
}

/// meshform's clients going through a proxy in front of `moto` that
/// records every request (and injects no fault).
pub async fn recorded_clients(moto: &Moto) -> (Arc<AwsClients>, FaultProxy) {
    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::new());
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(proxy.endpoint())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await;
    (Arc::new(AwsClients::from_sdk_config(&config)), proxy)
}

/// Applies `stack` (in `dir`) through a proxy that loses moto's answer to
/// the first call of each of `creates` after moto carried it out, and
/// checks that each was sent exactly once: the engine found what the lost
/// call made instead of sending it again.
pub fn apply_losing_answers(moto: &Moto, dir: &std::path::Path, stack: &str, creates: &[&str]) {
    use super::cli::{expect_code, meshform};
    use super::fault_proxy::Fault;
    let plan = creates.iter().fold(FaultPlan::new(), |plan, call| {
        plan.on_call(call, Fault::DropResponse, 1)
    });
    let proxy = FaultProxy::with_plan(moto.port, plan);
    let mut apply = meshform(dir, Some(moto), &["apply", stack, "--auto-approve"]);
    apply.envs(proxy.env());
    expect_code(apply, 0);
    let mut faulted = proxy.faulted_calls();
    faulted.sort();
    let mut expected: Vec<String> = creates.iter().map(|c| c.to_string()).collect();
    expected.sort();
    assert_eq!(faulted, expected, "{:?}", proxy.actions());
    for call in creates {
        assert_eq!(proxy.calls(call).len(), 1, "{call}: {:?}", proxy.actions());
    }
}

/// Checks that a plan of `stack` (in `dir`) shows no change, printing it
/// when it does.
pub fn assert_no_changes(moto: &Moto, dir: &std::path::Path, stack: &str) {
    let out = super::cli::meshform(dir, Some(moto), &["plan", stack, "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

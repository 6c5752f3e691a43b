//! meshform's integration tests: one binary, one module per area, so the
//! AWS SDK is linked once. Each test that needs AWS starts its own moto
//! server (see support/moto.rs).

mod baseline;
mod crash;
mod cross_cluster;
mod dapr;
mod day2;
mod drift;
mod eks_auth;
mod eks_stack;
mod failure;
mod fake_api_server;
mod fake_kube_script;
mod fake_protobuf;
mod faults;
mod helm_conformance;
mod helm_release;
mod in_cluster;
mod istio;
mod kube_dry_run;
mod kube_kinds;
mod kubeconfig;
mod kubectl_conformance;
mod library;
mod lock;
mod make_before_break;
mod progress_view;
mod provider_ec2net;
mod provider_ec2route;
mod provider_eks;
mod provider_elasticache;
mod provider_iam_role;
mod provider_iamecr;
mod provider_network_drain;
mod provider_servicediscovery;
mod provider_sg_rule;
mod refresh_calls;
mod replace_order;
mod s3_state;
mod sensitive;
mod shift;
mod state_cmd;
mod support;
mod unreachable;
mod validation;
mod walkthrough_manifests;

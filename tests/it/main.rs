//! meshform's integration tests: one binary, one module per area, so the
//! AWS SDK is linked once.

mod provider_ec2net;
mod provider_ec2route;
mod provider_iamecr;
mod support;
mod validation;

//! The provider toolkit: the one way an AWS kind classifies errors, syncs
//! tags, checks ownership, waits and (for EC2) describes and finds its
//! resources. A kind file is its schema plus its few real API calls; what
//! every kind needs lives here, once.
//!
//! - [`errors`]: "not found" / "gone" by service, from one table of codes.
//! - [`tags`]: tag diffs and one sync for every service (EC2, IAM, ECR, EKS).
//! - [`ownership`]: the `meshform:stack` / `meshform:address` checks.
//! - [`poll`]: one poll loop with backoff, timeout and progress reports.
//! - [`iam`]: IAM tag lists and policy-document decoding.
//! - [`ec2`]: the EC2 kinds' trait (describe by ids, find by ownership
//!   tags, wait for a state), paging and the filter-value limit.

pub mod ec2;
pub mod errors;
pub mod iam;
pub mod ownership;
pub mod poll;
pub mod tags;

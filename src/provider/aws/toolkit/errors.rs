//! Whether an AWS error means the thing is not there (never was, or is
//! gone): one classification, driven by a table of each service's codes.

use crate::provider::ProviderError;

/// The AWS service an error came from: each names "not found" its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// EC2: `InvalidVpcID.NotFound`, `InvalidRouteTableID.NotFound`, ...
    Ec2,
    /// Elastic Load Balancing (v1 and v2): `LoadBalancerNotFound`, ...
    Elb,
    /// IAM: `NoSuchEntity`.
    Iam,
    /// ECR: `RepositoryNotFoundException`.
    Ecr,
    /// EKS: `ResourceNotFoundException` (clusters, node groups, updates).
    Eks,
    /// ElastiCache: `CacheSubnetGroupNotFoundFault`,
    /// `ReplicationGroupNotFoundFault`, `CacheClusterNotFound`.
    ElastiCache,
    /// Cloud Map (servicediscovery): `NamespaceNotFound`, `ServiceNotFound`,
    /// `OperationNotFound`, `InstanceNotFound`.
    CloudMap,
}

/// How an error code is matched.
#[derive(Debug, Clone, Copy)]
enum Code {
    /// The code is exactly this.
    Exact(&'static str),
    /// The code ends with this (EC2 has one `...NotFound` code per type).
    Suffix(&'static str),
}

impl Code {
    fn matches(self, code: &str) -> bool {
        match self {
            Code::Exact(c) => code == c,
            Code::Suffix(s) => code.ends_with(s),
        }
    }
}

/// The codes by which each service says "no such resource".
const NOT_FOUND: &[(Service, &[Code])] = &[
    (Service::Ec2, &[Code::Suffix("NotFound")]),
    (Service::Elb, &[Code::Suffix("NotFound")]),
    (Service::Iam, &[Code::Exact("NoSuchEntity")]),
    (Service::Ecr, &[Code::Exact("RepositoryNotFoundException")]),
    (Service::Eks, &[Code::Exact("ResourceNotFoundException")]),
    (
        Service::ElastiCache,
        &[Code::Suffix("NotFoundFault"), Code::Exact("CacheClusterNotFound")],
    ),
    (Service::CloudMap, &[Code::Suffix("NotFound")]),
];

/// True when `err` is `service` saying the resource does not exist.
pub fn is_not_found(service: Service, err: &ProviderError) -> bool {
    let Some(code) = err.code() else {
        return false;
    };
    NOT_FOUND
        .iter()
        .filter(|(s, _)| *s == service)
        .flat_map(|(_, codes)| codes.iter())
        .any(|c| c.matches(code))
}

impl Service {
    /// True when `err` is this service saying the resource does not exist.
    pub fn is_not_found(self, err: &ProviderError) -> bool {
        is_not_found(self, err)
    }
}

/// `Ok(None)` when `result` failed because the resource is not there; the
/// value, or any other error, unchanged. For reads of one resource.
pub fn unless_gone<T>(
    service: Service,
    result: Result<T, ProviderError>,
) -> Result<Option<T>, ProviderError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(service, &e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `Ok(())` when `result` succeeded or failed because the resource is
/// already gone: for deletes, which succeed on what is not there.
pub fn gone_is_done<T>(service: Service, result: Result<T, ProviderError>) -> Result<(), ProviderError> {
    unless_gone(service, result).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::api;
    use super::*;

    #[test]
    fn each_service_has_its_own_not_found_codes() {
        assert!(is_not_found(Service::Ec2, &api("InvalidVpcID.NotFound")));
        assert!(is_not_found(Service::Ec2, &api("InvalidAllocationID.NotFound")));
        assert!(is_not_found(Service::Elb, &api("LoadBalancerNotFound")));
        assert!(is_not_found(Service::Iam, &api("NoSuchEntity")));
        assert!(is_not_found(Service::Ecr, &api("RepositoryNotFoundException")));
        assert!(is_not_found(Service::Eks, &api("ResourceNotFoundException")));
        assert!(is_not_found(
            Service::ElastiCache,
            &api("CacheSubnetGroupNotFoundFault")
        ));
        assert!(is_not_found(
            Service::ElastiCache,
            &api("ReplicationGroupNotFoundFault")
        ));
        assert!(is_not_found(Service::CloudMap, &api("NamespaceNotFound")));
        assert!(is_not_found(Service::CloudMap, &api("ServiceNotFound")));
        assert!(!is_not_found(
            Service::ElastiCache,
            &api("InvalidReplicationGroupState")
        ));
        assert!(!is_not_found(Service::CloudMap, &api("ResourceInUse")));
        // Another service's code, or another failure, is not "not found".
        assert!(!is_not_found(Service::Iam, &api("ResourceNotFoundException")));
        assert!(!is_not_found(Service::Eks, &api("NoSuchEntity")));
        assert!(!is_not_found(Service::Ec2, &api("DependencyViolation")));
        assert!(!is_not_found(
            Service::Ec2,
            &ProviderError::Api {
                operation: "Op".into(),
                code: None,
                message: "connection reset".into(),
            }
        ));
    }

    #[test]
    fn gone_reads_none_and_gone_deletes_succeed() {
        assert_eq!(
            unless_gone(Service::Iam, Ok::<_, ProviderError>(3)).ok(),
            Some(Some(3))
        );
        assert!(matches!(
            unless_gone::<()>(Service::Iam, Err(api("NoSuchEntity"))),
            Ok(None)
        ));
        assert!(unless_gone::<()>(Service::Iam, Err(api("AccessDenied"))).is_err());
        assert!(gone_is_done::<()>(Service::Ec2, Err(api("InvalidRouteID.NotFound"))).is_ok());
        assert!(gone_is_done::<()>(Service::Ec2, Err(api("DependencyViolation"))).is_err());
    }
}

//! Which Helm meshform drives, whether it is supported, and the arguments
//! that differ between Helm 3 and Helm 4.
//!
//! **Supported**: Helm 3.13 or later 3.x (`helm get metadata`, which reads
//! a release back, first shipped in 3.13) and Helm 4.x. The version is
//! asked with `helm version --template {{.Version}}` (which Helm 3.0
//! through 4.x understand and which prints only `v3.17.2`); anything older
//! or newer than that range is refused with an error naming the version
//! found, during `validate`, `plan` and `apply` (preflight) and again
//! before each operation.
//!
//! **What differs between Helm 3 and Helm 4** for the calls meshform makes
//! (from Helm's sources at v3.17 and v4.1, and the programs' `--help`):
//!
//! - `--wait` is a switch in Helm 3 (poll each resource until ready). In
//!   Helm 4 it takes a strategy, `--wait=watcher|legacy|hookOnly`: the
//!   default without the flag is `hookOnly` (no waiting for the release's
//!   resources), a bare `--wait` means `watcher` (kstatus readiness over
//!   watches), `legacy` is Helm 3's polling. meshform passes `--wait` to
//!   Helm 3 and spells out `--wait=watcher` to Helm 4, so that a change of
//!   what a bare `--wait` means cannot change meshform's behaviour.
//!   `helm uninstall --wait` changed the same way.
//! - How objects are written: Helm 3 uses client-side apply (create with
//!   POST; update with a three-way strategic merge patch for built-in
//!   kinds, a JSON merge patch for custom resources). Helm 4 has
//!   `--server-side=true|false|auto`, default `auto`: a new release is
//!   written with server-side apply (field manager `helm`), an upgrade uses
//!   the method the release was made with (kept in the release,
//!   `applyMethod` `ssa` or `csa` in `helm get metadata`). meshform passes
//!   no `--server-side`: every release it installs with Helm 4 uses
//!   server-side apply from then on, and a release first installed with
//!   Helm 3 keeps client-side apply after a move to Helm 4, because
//!   switching moves field ownership and can conflict with other field
//!   managers (`helm upgrade --server-side=true` once, by hand, migrates
//!   it).
//! - `--atomic` became `--rollback-on-failure` and `--force` became
//!   `--force-replace` (the old spellings are deprecated aliases); Helm 4
//!   adds `--force-conflicts` for server-side apply. meshform passes none of
//!   them: a failed install or upgrade stays as helm leaves it (status
//!   `failed`, which `find_existing` does not take for a deployed release)
//!   and the next apply upgrades again.
//! - Output: `helm get metadata -o json` gains `applyMethod` in Helm 4; the
//!   fields meshform reads (name, chart, version, appVersion, namespace,
//!   revision, status) are the same in both. `helm get values -o json`
//!   prints `null` for a release without values in both. `helm status -o
//!   json` gains `apply_method` and `info.resources` in Helm 4 (and lost
//!   `--show-desc`/`--show-resources`); `helm history` and `helm list`
//!   print the same JSON in both.
//! - Errors: an unreachable cluster is `Kubernetes cluster unreachable` in
//!   Helm 3 and `kubernetes cluster unreachable` in Helm 4 (meshform
//!   matches either); "release: not found" is the same.

use std::fmt;

/// A Helm release version, `v3.17.2` (build metadata and pre-release
/// suffixes are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HelmVersion {
    /// 3 or 4 for supported versions.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
}

impl fmt::Display for HelmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The arguments that print the version alone (`v3.17.2`).
pub const VERSION_ARGS: [&str; 3] = ["version", "--template", "{{.Version}}"];

/// The oldest supported Helm.
pub const MIN_SUPPORTED: HelmVersion = HelmVersion {
    major: 3,
    minor: 13,
    patch: 0,
};

/// The newest supported major version.
pub const MAX_SUPPORTED_MAJOR: u64 = 4;

/// The supported range, as error messages name it.
pub const SUPPORTED_RANGE: &str = "Helm 3.13 or later 3.x, or Helm 4.x";

/// Parses what `helm version --template {{.Version}}` prints: `v3.17.2`,
/// possibly with `-rc.1` or `+g1234abc` after it. `None` when it is not a
/// version.
pub fn parse_version(text: &str) -> Option<HelmVersion> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let mut number = || parts.next()?.parse::<u64>().ok();
    let version = HelmVersion {
        major: number()?,
        minor: number()?,
        patch: number()?,
    };
    parts.next().is_none().then_some(version)
}

/// The version in `helm version`'s output when it is a supported one;
/// otherwise the message for the user, naming what was found and the
/// supported range.
pub fn supported_version(program: &str, stdout: &str) -> Result<HelmVersion, String> {
    let Some(version) = parse_version(stdout) else {
        return Err(format!(
            "cannot tell the version of {program}: `helm version` printed {:?}; meshform needs {SUPPORTED_RANGE}",
            stdout.trim()
        ));
    };
    if version < MIN_SUPPORTED {
        return Err(format!(
            "{program} is Helm {version}, which is too old: meshform needs {SUPPORTED_RANGE} \
             (`helm get metadata` came in 3.13)"
        ));
    }
    if version.major > MAX_SUPPORTED_MAJOR {
        return Err(format!(
            "{program} is Helm {version}, which meshform does not know: it supports {SUPPORTED_RANGE}"
        ));
    }
    Ok(version)
}

impl HelmVersion {
    /// The flag that makes `upgrade --install` and `uninstall` wait for the
    /// release's resources (see the module docs).
    pub fn wait_flag(self) -> &'static str {
        if self.major >= 4 {
            "--wait=watcher"
        } else {
            "--wait"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u64, minor: u64, patch: u64) -> HelmVersion {
        HelmVersion { major, minor, patch }
    }

    #[test]
    fn parses_what_helm_version_prints() {
        assert_eq!(parse_version("v3.17.2"), Some(v(3, 17, 2)));
        assert_eq!(parse_version("v4.1.4\n"), Some(v(4, 1, 4)));
        assert_eq!(parse_version("v3.8.1+g5cb9af4"), Some(v(3, 8, 1)));
        assert_eq!(parse_version("v4.0.0-rc.1"), Some(v(4, 0, 0)));
        assert_eq!(parse_version("3.13.0"), Some(v(3, 13, 0)));
        for bad in ["", "v3", "v3.13", "v3.13.0.1", "version.BuildInfo{}", "vx.y.z"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
        assert_eq!(v(3, 17, 2).to_string(), "v3.17.2");
    }

    #[test]
    fn refuses_versions_outside_the_range_naming_them() {
        assert_eq!(supported_version("helm", "v3.13.0"), Ok(v(3, 13, 0)));
        assert_eq!(supported_version("helm", "v4.1.4"), Ok(v(4, 1, 4)));
        let old = supported_version("/opt/helm", "v3.8.1").unwrap_err();
        assert!(
            old.contains("/opt/helm") && old.contains("v3.8.1") && old.contains(SUPPORTED_RANGE),
            "{old}"
        );
        let old = supported_version("helm", "v3.12.3").unwrap_err();
        assert!(old.contains("too old"), "{old}");
        let new = supported_version("helm", "v5.0.0").unwrap_err();
        assert!(new.contains("v5.0.0") && new.contains(SUPPORTED_RANGE), "{new}");
        let garbled = supported_version("helm", "oops").unwrap_err();
        assert!(garbled.contains("\"oops\""), "{garbled}");
    }

    #[test]
    fn wait_is_spelled_per_major_version() {
        assert_eq!(v(3, 17, 2).wait_flag(), "--wait");
        assert_eq!(v(4, 1, 4).wait_flag(), "--wait=watcher");
    }
}

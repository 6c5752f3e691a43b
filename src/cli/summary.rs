//! The lines printed when an apply or destroy ends: how it ended and, for a
//! successful apply, what a workshop attendee needs next (outputs, the
//! `kubeconfig` command, the application URLs, the time taken). Pure: a
//! run's report in, lines out.
//!
//! An application URL is an output named `url` or `<something>_url` whose
//! value is an `http://` or `https://` address (so a cluster's API
//! endpoint, also an https address, is not offered as something to open).

use std::path::Path;

use super::live_view::human;
use crate::Value;
use crate::api::{Operation, RunReport};
use crate::graph::Outcome;

/// What the summary needs besides the run's report.
pub struct Context<'a> {
    /// The stack file, as the user named it (for the commands to run next).
    pub stack_path: &'a Path,
    /// Whether a state location (a local file) exists now.
    pub exists: &'a dyn Fn(&str) -> bool,
}

/// The summary of `run`, one string per line.
pub fn lines(run: &RunReport, cx: &Context<'_>) -> Vec<String> {
    let report = &run.report;
    let mut out = Vec::new();
    let (done, failed, skipped, cancelled) = report.counts();
    let what = match run.operation {
        Operation::Apply => "Apply",
        Operation::Destroy => "Destroy",
    };
    if !report.dropped.is_empty() {
        out.push(String::new());
        out.push(format!(
            "Warning: {} resources were dropped from state without a delete call: their cluster could not be reached, and the cluster they lived in was deleted:",
            report.dropped.len()
        ));
        for (address, host) in &report.dropped {
            out.push(format!("  {address} (in {host})"));
        }
    }
    if let Some(f) = &report.state_failure {
        out.push(String::new());
        out.push(format!(
            "{what} stopped: state could not be written while recording `{}` (see the error above); nothing new was started after it. {done} done, {failed} failed, {skipped} skipped, {cancelled} not started.",
            f.step
        ));
        if (cx.exists)(&f.location) {
            out.push(format!(
                "State: {} holds the last version written; it may lack the result of `{}`, whose cloud call may have been made.",
                f.location, f.step
            ));
        } else {
            out.push(format!(
                "State: nothing was written yet ({} does not exist).",
                f.location
            ));
        }
        if (cx.exists)(&f.backup) {
            out.push(format!(
                "Backup: {} holds an earlier version (as of the run's start or a later compaction of the state journal).",
                f.backup
            ));
        }
        out.push("Fix the cause and run the command again: it reads the cloud first, tracks what an interrupted create made (found by its ownership tags or natural key) and forgets what was deleted, so nothing is made twice.".to_string());
        return out;
    }
    if !run.is_success() {
        out.push(String::new());
        out.push(format!(
            "{what} {}: {done} done, {failed} failed, {skipped} skipped, {cancelled} not started (after {}).",
            if run.cancelled { "interrupted" } else { "failed" },
            human(run.elapsed)
        ));
        for (step, error) in report.failures() {
            out.push(format!("  root cause: {} ({}): {error}", step.address, step.op));
        }
        for (step, outcome) in &report.outcomes {
            if let Outcome::Skipped { because } = outcome {
                out.push(format!(
                    "  skipped: {} ({}) because {} failed",
                    step.address, step.op, because.address
                ));
            }
        }
        out.push("State records everything that was done; run the command again to continue.".to_string());
        return out;
    }
    if run.plan.has_changes() {
        out.push(String::new());
        out.push(format!(
            "{what} complete: {done} operations on stack `{}` in {}.",
            run.plan.stack,
            human(run.elapsed)
        ));
    }
    if run.operation == Operation::Apply {
        next_steps(run, cx, &mut out);
    }
    out
}

/// Outputs, then how to reach what was built.
fn next_steps(run: &RunReport, cx: &Context<'_>, out: &mut Vec<String>) {
    if !run.outputs.is_empty() {
        out.push(String::new());
        out.push("Outputs:".to_string());
        for (k, v) in &run.outputs {
            out.push(format!("  {k} = {}", shown(v)));
        }
    }
    let urls: Vec<(&String, &str)> = run
        .outputs
        .iter()
        .filter(|(k, _)| *k == "url" || k.ends_with("_url"))
        .filter_map(|(k, v)| v.as_str().filter(|s| is_url(s)).map(|s| (k, s)))
        .collect();
    if run.eks_clusters.is_empty() && urls.is_empty() {
        return;
    }
    out.push(String::new());
    out.push("Next:".to_string());
    let stack = cx.stack_path.display();
    match run.eks_clusters.as_slice() {
        [] => {}
        [only] => out.push(format!(
            "  kubectl access to cluster `{only}`:  meshform kubeconfig {stack}"
        )),
        several => {
            for name in several {
                out.push(format!(
                    "  kubectl access to cluster `{name}`:  meshform kubeconfig {stack} --cluster {name}"
                ));
            }
        }
    }
    for (name, url) in urls {
        out.push(format!("  open {name}:  {url}"));
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::engine::ApplyReport;
    use crate::plan::{Plan, Summary};

    fn run(
        operation: Operation,
        changes: usize,
        outputs: BTreeMap<String, Value>,
        clusters: &[&str],
    ) -> RunReport {
        let plan = Plan {
            format_version: crate::plan::PLAN_FORMAT_VERSION,
            stack: "demo".into(),
            region: "us-west-2".into(),
            destroy: operation == Operation::Destroy,
            targets: Vec::new(),
            partial: false,
            left_out: Vec::new(),
            resources: Vec::new(),
            outputs: Vec::new(),
            summary: Summary {
                create: changes,
                ..Summary::default()
            },
        };
        RunReport {
            operation,
            plan,
            report: ApplyReport::default(),
            cancelled: false,
            outputs,
            eks_clusters: clusters.iter().map(|c| c.to_string()).collect(),
            elapsed: Duration::from_secs(754),
            close_error: None,
        }
    }

    fn text(run: &RunReport) -> String {
        let exists = |_: &str| true;
        let cx = Context {
            stack_path: Path::new("stacks/appmesh-getting-started.toml"),
            exists: &exists,
        };
        lines(run, &cx).join("\n")
    }

    #[test]
    fn a_successful_apply_lists_outputs_the_kubeconfig_command_urls_and_time() {
        let outputs = BTreeMap::from([
            ("vpc_id".to_string(), json!("vpc-123")),
            (
                "yelb_url".to_string(),
                json!("http://yelb.example.elb.amazonaws.com"),
            ),
            ("nodes".to_string(), json!(3)),
        ]);
        let shown = text(&run(Operation::Apply, 5, outputs, &["appmesh-workshop"]));
        assert!(shown.contains("Apply complete: "), "{shown}");
        assert!(shown.contains("on stack `demo` in 12m34s."), "{shown}");
        assert!(shown.contains("  vpc_id = vpc-123\n"), "{shown}");
        assert!(shown.contains("  nodes = 3"), "{shown}");
        assert!(
            shown.contains(
                "kubectl access to cluster `appmesh-workshop`:  meshform kubeconfig stacks/appmesh-getting-started.toml\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains("  open yelb_url:  http://yelb.example.elb.amazonaws.com"),
            "{shown}"
        );
    }

    #[test]
    fn only_outputs_named_as_urls_are_offered_to_open() {
        let outputs = BTreeMap::from([
            (
                "cluster_endpoint".to_string(),
                json!("https://ABC.eks.amazonaws.com/"),
            ),
            (
                "product_page_url".to_string(),
                json!("http://lb.example/productpage"),
            ),
            ("docs_url".to_string(), json!("not a url")),
        ]);
        let shown = text(&run(Operation::Apply, 1, outputs, &[]));
        assert!(
            shown.contains("  open product_page_url:  http://lb.example/productpage"),
            "{shown}"
        );
        assert!(!shown.contains("open cluster_endpoint"), "{shown}");
        assert!(!shown.contains("open docs_url"), "{shown}");
    }

    #[test]
    fn several_clusters_each_get_their_own_command() {
        let shown = text(&run(Operation::Apply, 1, BTreeMap::new(), &["east", "west"]));
        assert!(shown.contains("meshform kubeconfig stacks/appmesh-getting-started.toml --cluster east"));
        assert!(shown.contains("--cluster west"));
    }

    #[test]
    fn no_cluster_and_no_url_means_no_next_section() {
        let outputs = BTreeMap::from([("vpc_id".to_string(), json!("vpc-1"))]);
        let shown = text(&run(Operation::Apply, 1, outputs, &[]));
        assert!(shown.contains("Outputs:"));
        assert!(!shown.contains("Next:"), "{shown}");
    }

    #[test]
    fn a_destroy_shows_neither_outputs_nor_next_steps() {
        let outputs = BTreeMap::from([("app_url".to_string(), json!("https://x"))]);
        let shown = text(&run(Operation::Destroy, 2, outputs, &["c"]));
        assert!(shown.contains("Destroy complete"), "{shown}");
        assert!(!shown.contains("Outputs:") && !shown.contains("Next:"), "{shown}");
    }

    #[test]
    fn an_apply_without_changes_still_shows_where_things_are() {
        let outputs = BTreeMap::from([("url".to_string(), json!("https://x"))]);
        let shown = text(&run(Operation::Apply, 0, outputs, &[]));
        assert!(!shown.contains("Apply complete"), "{shown}");
        assert!(shown.contains("open url:  https://x"), "{shown}");
    }
}

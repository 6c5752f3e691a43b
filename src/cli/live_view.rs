//! The live progress view as a pure state machine: fed events and the time
//! since the run started, it yields the lines to print above the live area
//! (steps that ended, warnings) and the live area itself (steps in flight
//! with their elapsed times and last status, and a done/total footer).
//! It never reads a clock or touches a terminal, so it is tested with fixed
//! times; `live_term` draws it.

use std::time::Duration;

use super::progress::{finished_verb, plain_line, started_verb};
use crate::engine::{Event, Op};

/// At most this many in-flight steps are listed; the rest are counted, so
/// the live area stays shorter than a terminal.
const MAX_LISTED: usize = 12;

/// A step in flight.
#[derive(Debug, Clone)]
struct InFlight {
    address: String,
    op: Op,
    since: Duration,
    status: Option<String>,
}

/// What the view shows below the lines that scrolled away.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Nothing live: only completed lines are printed.
    Idle,
    /// Reading `count` resources since `since`.
    Refreshing { count: usize, since: Duration },
    /// Running `total` steps (when known) since `since`.
    Steps {
        label: String,
        total: Option<usize>,
        since: Duration,
    },
}

/// The state of the live view.
#[derive(Debug, Clone)]
pub struct LiveView {
    phase: Phase,
    in_flight: Vec<InFlight>,
    done: usize,
    failed: usize,
    skipped: usize,
    cancelled: usize,
    scrolled: Vec<String>,
}

impl Default for LiveView {
    fn default() -> Self {
        LiveView::new()
    }
}

impl LiveView {
    /// An idle view.
    pub fn new() -> LiveView {
        LiveView {
            phase: Phase::Idle,
            in_flight: Vec::new(),
            done: 0,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            scrolled: Vec::new(),
        }
    }

    /// Starts running steps: `label` names the run ("applying"), `total`
    /// is the number of steps when known; counts start from zero.
    pub fn begin_steps(&mut self, label: &str, total: Option<usize>, now: Duration) {
        self.phase = Phase::Steps {
            label: label.to_string(),
            total,
            since: now,
        };
        self.in_flight.clear();
        (self.done, self.failed, self.skipped, self.cancelled) = (0, 0, 0, 0);
    }

    /// Nothing is live any more (the caller prints to the terminal next).
    pub fn idle(&mut self) {
        self.phase = Phase::Idle;
        self.in_flight.clear();
    }

    /// Adds a line to print above the live area.
    pub fn note(&mut self, line: String) {
        self.scrolled.push(line);
    }

    /// Takes in what happened at `now` (time since the run started).
    pub fn event(&mut self, event: &Event, now: Duration) {
        match event {
            Event::Refreshing { count } if *count > 0 => {
                self.phase = Phase::Refreshing {
                    count: *count,
                    since: now,
                }
            }
            Event::Refreshing { .. } => {}
            Event::Started { address, op } => self.in_flight.push(InFlight {
                address: address.clone(),
                op: *op,
                since: now,
                status: None,
            }),
            Event::Progress { address, message } => {
                match self.in_flight.iter_mut().find(|s| &s.address == address) {
                    Some(step) => step.status = Some(without_elapsed(message).to_string()),
                    // Not a step's wait (a preview, say): keep it as a line.
                    None => self.scrolled.push(format!("{address}: {message}")),
                }
            }
            Event::Finished {
                address,
                op,
                id,
                elapsed,
            } => {
                self.end(address, *op);
                self.done += 1;
                let id = id.as_deref().map(|i| format!(" {i}")).unwrap_or_default();
                self.scrolled.push(format!(
                    "{address}: {}{id} in {}",
                    finished_verb(*op),
                    human(*elapsed)
                ));
            }
            Event::Failed {
                address,
                op,
                error,
                elapsed,
            } => {
                self.end(address, *op);
                self.failed += 1;
                self.scrolled.push(format!(
                    "{address}: {op} FAILED after {}: {error}",
                    human(*elapsed)
                ));
            }
            Event::Skipped { .. } | Event::Cancelled { .. } => {
                if matches!(event, Event::Skipped { .. }) {
                    self.skipped += 1;
                } else {
                    self.cancelled += 1;
                }
                self.scrolled.extend(plain_line(event));
            }
            Event::PendingResolved { .. }
            | Event::Warning { .. }
            | Event::Dropped { .. }
            | Event::ShiftStep { .. }
            | Event::GateChecked { .. } => {
                self.scrolled.extend(plain_line(event));
            }
        }
    }

    fn end(&mut self, address: &str, op: Op) {
        if let Some(i) = self
            .in_flight
            .iter()
            .position(|s| s.address == address && s.op == op)
        {
            self.in_flight.remove(i);
        }
    }

    /// The lines to print above the live area since the last call.
    pub fn take_scrolled(&mut self) -> Vec<String> {
        std::mem::take(&mut self.scrolled)
    }

    /// The live area at `now`, each line at most `width` characters.
    pub fn live(&self, now: Duration, width: usize) -> Vec<String> {
        let mut lines = Vec::new();
        match &self.phase {
            Phase::Idle => return lines,
            Phase::Refreshing { count, since } => {
                lines.push(format!(
                    "refreshing {count} resources... {}",
                    human(now.saturating_sub(*since))
                ));
            }
            Phase::Steps { label, total, since } => {
                let name_width = self
                    .in_flight
                    .iter()
                    .take(MAX_LISTED)
                    .map(|s| s.address.chars().count())
                    .max()
                    .unwrap_or(0);
                for step in self.in_flight.iter().take(MAX_LISTED) {
                    let mut line = format!(
                        "  {:<name_width$}  {:<10} {:>6}",
                        step.address,
                        started_verb(step.op),
                        human(now.saturating_sub(step.since)),
                    );
                    if let Some(status) = &step.status {
                        line.push_str("  ");
                        line.push_str(status);
                    }
                    lines.push(line);
                }
                if self.in_flight.len() > MAX_LISTED {
                    lines.push(format!("  ... and {} more", self.in_flight.len() - MAX_LISTED));
                }
                let total = total.map(|t| format!("/{t}")).unwrap_or_default();
                let mut footer = format!(
                    "{label}: {}{total} done, {} in flight",
                    self.done,
                    self.in_flight.len()
                );
                for (n, what) in [
                    (self.failed, "failed"),
                    (self.skipped, "skipped"),
                    (self.cancelled, "not started"),
                ] {
                    if n > 0 {
                        footer.push_str(&format!(", {n} {what}"));
                    }
                }
                footer.push_str(&format!(", {} elapsed", human(now.saturating_sub(*since))));
                lines.push(footer);
            }
        }
        lines.into_iter().map(|l| truncate(l, width)).collect()
    }
}

/// `12s`, `1m05s`, `1h02m05s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, sec) => format!("{h}h{min:02}m{sec:02}s"),
    }
}

/// A status report without its trailing `(2m10s elapsed)`: the live view
/// shows the step's own elapsed time, which keeps advancing between reports.
fn without_elapsed(message: &str) -> &str {
    let Some(rest) = message.strip_suffix(" elapsed)") else {
        return message;
    };
    match rest.rfind(" (") {
        Some(i)
            if !rest[i + 2..].is_empty()
                && rest[i + 2..]
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, 'h' | 'm' | 's')) =>
        {
            &message[..i]
        }
        _ => message,
    }
}

/// Cuts `line` to `width` characters, marking the cut, so no line wraps
/// (a wrapped line would throw off the cursor movements of a redraw).
fn truncate(line: String, width: usize) -> String {
    if line.chars().count() <= width {
        return line;
    }
    let keep = width.saturating_sub(3);
    let mut cut: String = line.chars().take(keep).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn shift_events_scroll_as_their_plain_lines() {
        let mut view = LiveView::default();
        let step = Event::ShiftStep {
            variable: "w".into(),
            value: "50".into(),
            step: 2,
            of: 3,
            rollback: false,
        };
        let back = Event::ShiftStep {
            variable: "w".into(),
            value: "10".into(),
            step: 0,
            of: 3,
            rollback: true,
        };
        let gate = Event::GateChecked {
            gate: "g".into(),
            passed: false,
            observed: Some("0.5".into()),
            detail: "low".into(),
        };
        for e in [&step, &gate, &back] {
            view.event(e, secs(1));
        }
        assert_eq!(
            view.scrolled,
            [
                "shift w: step 2/3: applying w=50",
                "gate g: FAILED (observed 0.5): low",
                "shift w: returning to the last good value: applying w=10",
            ]
        );
    }

    fn started(address: &str, op: Op) -> Event {
        Event::Started {
            address: address.into(),
            op,
        }
    }

    fn finished(address: &str, op: Op, id: &str, elapsed: u64) -> Event {
        Event::Finished {
            address: address.into(),
            op,
            id: Some(id.into()),
            elapsed: secs(elapsed),
        }
    }

    #[test]
    fn in_flight_steps_are_listed_in_start_order_with_elapsed_times_and_done_total() {
        let mut view = LiveView::new();
        view.begin_steps("applying", Some(5), secs(0));
        view.event(&started("vpc", Op::Create), secs(0));
        view.event(&started("cluster_role", Op::Create), secs(1));
        view.event(&finished("vpc", Op::Create, "vpc-1", 2), secs(2));
        view.event(&started("subnet", Op::Create), secs(2));
        view.event(&started("old_policy", Op::Delete), secs(3));
        assert_eq!(
            view.live(secs(66), 200),
            vec![
                "  cluster_role  creating    1m05s",
                "  subnet        creating    1m04s",
                "  old_policy    deleting    1m03s",
                "applying: 1/5 done, 3 in flight, 1m06s elapsed",
            ]
        );
        assert_eq!(view.take_scrolled(), vec!["vpc: created vpc-1 in 2s"]);
        // Taken once: the next frame scrolls nothing again.
        assert!(view.take_scrolled().is_empty());
    }

    #[test]
    fn the_clock_alone_advances_elapsed_times() {
        let mut view = LiveView::new();
        view.begin_steps("destroying", Some(1), secs(10));
        view.event(&started("repo", Op::Delete), secs(10));
        let before = view.live(secs(15), 200);
        let after = view.live(secs(3700), 200);
        assert_eq!(before[0], "  repo  deleting       5s");
        assert_eq!(after[0], "  repo  deleting   1h01m30s");
        assert_eq!(after[1], "destroying: 0/1 done, 1 in flight, 1h01m30s elapsed");
    }

    #[test]
    fn a_long_wait_shows_its_last_status_without_its_stale_elapsed_time() {
        let mut view = LiveView::new();
        view.begin_steps("applying", Some(2), secs(0));
        view.event(&started("cluster", Op::Create), secs(0));
        for (at, status) in [(30, "CREATING (30s elapsed)"), (370, "CREATING (6m10s elapsed)")] {
            view.event(
                &Event::Progress {
                    address: "cluster".into(),
                    message: format!("EKS cluster yelb: status {status}"),
                },
                secs(at),
            );
        }
        assert_eq!(
            view.live(secs(375), 200)[0],
            "  cluster  creating    6m15s  EKS cluster yelb: status CREATING"
        );
        // A status report is not a completed line.
        assert!(view.take_scrolled().is_empty());
        // A report of something not in flight is kept as a line.
        view.event(
            &Event::Progress {
                address: "app".into(),
                message: "waiting (for 3s elapsed)".into(),
            },
            secs(376),
        );
        assert_eq!(view.take_scrolled(), vec!["app: waiting (for 3s elapsed)"]);
    }

    #[test]
    fn failures_skips_and_cancels_are_counted_and_scrolled() {
        let mut view = LiveView::new();
        view.begin_steps("applying", Some(4), secs(0));
        view.event(&started("subnet", Op::Create), secs(0));
        view.event(
            &Event::Failed {
                address: "subnet".into(),
                op: Op::Create,
                error: "InvalidSubnet.Range".into(),
                elapsed: secs(1),
            },
            secs(1),
        );
        view.event(
            &Event::Skipped {
                address: "association".into(),
                op: Op::Create,
                because: "subnet".into(),
            },
            secs(2),
        );
        view.event(
            &Event::Cancelled {
                address: "repo".into(),
                op: Op::Create,
            },
            secs(2),
        );
        assert_eq!(
            view.live(secs(2), 200),
            vec!["applying: 0/4 done, 0 in flight, 1 failed, 1 skipped, 1 not started, 2s elapsed"]
        );
        assert_eq!(
            view.take_scrolled(),
            vec![
                "subnet: create FAILED after 1s: InvalidSubnet.Range",
                "association: create skipped because subnet failed",
                "repo: create not started (the run stopped)",
            ]
        );
    }

    #[test]
    fn refresh_shows_its_count_and_time_then_idle_shows_nothing() {
        let mut view = LiveView::new();
        assert!(view.live(secs(1), 80).is_empty());
        view.event(&Event::Refreshing { count: 0 }, secs(0));
        assert!(
            view.live(secs(1), 80).is_empty(),
            "a new stack has nothing to refresh"
        );
        view.event(&Event::Refreshing { count: 12 }, secs(1));
        view.event(
            &Event::Warning {
                address: "app".into(),
                message: "could not be refreshed".into(),
            },
            secs(2),
        );
        assert_eq!(view.live(secs(66), 80), vec!["refreshing 12 resources... 1m05s"]);
        assert_eq!(view.take_scrolled(), vec!["app: warning: could not be refreshed"]);
        view.idle();
        assert!(view.live(secs(70), 80).is_empty());
    }

    #[test]
    fn lines_are_cut_to_the_width_and_long_lists_are_counted() {
        let mut view = LiveView::new();
        view.begin_steps("applying", None, secs(0));
        for i in 0..MAX_LISTED + 3 {
            view.event(&started(&format!("r{i:02}"), Op::Create), secs(0));
        }
        let frame = view.live(secs(1), 20);
        assert_eq!(frame.len(), MAX_LISTED + 2);
        assert!(frame.iter().all(|l| l.chars().count() <= 20), "{frame:?}");
        assert_eq!(frame[MAX_LISTED], "  ... and 3 more");
        assert_eq!(frame[MAX_LISTED + 1], "applying: 0 done,...");
    }

    #[test]
    fn the_same_address_ending_one_op_keeps_its_other_op_in_flight() {
        // A replacement's delete and create of one address are two steps.
        let mut view = LiveView::new();
        view.begin_steps("applying", Some(2), secs(0));
        view.event(&started("policy", Op::Create), secs(0));
        view.event(&started("policy", Op::Delete), secs(1));
        view.event(&finished("policy", Op::Create, "p-2", 2), secs(2));
        assert_eq!(view.live(secs(3), 200)[0], "  policy  deleting       2s");
    }

    #[test]
    fn human_times() {
        assert_eq!(human(Duration::from_millis(900)), "0s");
        assert_eq!(human(secs(59)), "59s");
        assert_eq!(human(secs(65)), "1m05s");
        assert_eq!(human(secs(3600 + 125)), "1h02m05s");
    }
}

//! A concurrent walk over a graph of work: a node starts as soon as every
//! node it depends on has succeeded, with at most `parallelism` running.
//! A failed node's dependents (transitively) are skipped and name the root
//! cause; independent branches carry on. Cancelling stops new starts and
//! lets running nodes finish.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinSet;

/// Nodes of type `K` and "must finish before" edges between them.
#[derive(Debug, Clone)]
pub struct WorkGraph<K> {
    nodes: Vec<K>,
    /// Node positions by node.
    index: BTreeMap<K, usize>,
    /// `deps[i]`: indexes of nodes that must succeed before node `i`.
    deps: Vec<BTreeSet<usize>>,
}

impl<K: Clone + Ord> WorkGraph<K> {
    /// An empty graph.
    pub fn new() -> Self {
        WorkGraph {
            nodes: Vec::new(),
            index: BTreeMap::new(),
            deps: Vec::new(),
        }
    }

    /// Adds a node (once; adding it again is a no-op).
    pub fn add(&mut self, node: K) {
        if !self.index.contains_key(&node) {
            self.index.insert(node.clone(), self.nodes.len());
            self.nodes.push(node);
            self.deps.push(BTreeSet::new());
        }
    }

    /// `before` must succeed before `after` starts. Both must be nodes.
    pub fn order(&mut self, before: &K, after: &K) {
        if let (Some(&b), Some(&a)) = (self.index.get(before), self.index.get(after))
            && a != b
        {
            self.deps[a].insert(b);
        }
    }

    /// Whether `node` is in the graph.
    pub fn contains(&self, node: &K) -> bool {
        self.index.contains_key(node)
    }

    /// The nodes, in the order they were first added.
    pub fn nodes(&self) -> &[K] {
        &self.nodes
    }

    /// The nodes `node` waits for.
    pub fn dependencies(&self, node: &K) -> Vec<&K> {
        self.index
            .get(node)
            .map(|&i| self.deps[i].iter().map(|&d| &self.nodes[d]).collect())
            .unwrap_or_default()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A cycle of nodes each waiting for the next (so none could ever
    /// start), if the graph has one; found with petgraph's strongly
    /// connected components.
    pub fn find_cycle(&self) -> Option<Vec<K>> {
        let mut g = petgraph::graph::DiGraph::<usize, ()>::new();
        let ids: Vec<_> = (0..self.nodes.len()).map(|i| g.add_node(i)).collect();
        for (i, deps) in self.deps.iter().enumerate() {
            for &d in deps {
                g.add_edge(ids[d], ids[i], ());
            }
        }
        let scc = petgraph::algo::tarjan_scc(&g)
            .into_iter()
            .filter(|c| c.len() > 1)
            .min_by_key(|c| c.iter().map(|n| g[*n]).min())?;
        let members: BTreeSet<usize> = scc.iter().map(|n| g[*n]).collect();
        // The shortest way round from the component's first node, each node
        // followed by one that waits for it.
        let start = *members.first()?;
        let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(u) = queue.pop_front() {
            for &n in &members {
                if !self.deps[n].contains(&u) {
                    continue;
                }
                if n == start {
                    let mut path = vec![u];
                    while let Some(&p) = came_from.get(path.last()?) {
                        path.push(p);
                    }
                    path.reverse();
                    return Some(path.into_iter().map(|i| self.nodes[i].clone()).collect());
                }
                if let std::collections::btree_map::Entry::Vacant(e) = came_from.entry(n) {
                    e.insert(u);
                    queue.push_back(n);
                }
            }
        }
        None
    }
}

impl<K: Clone + Ord> Default for WorkGraph<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// A shared "stop starting new work" flag (set on Ctrl-C, or by the engine
/// when it must stop).
#[derive(Debug, Clone)]
pub struct CancelFlag {
    /// This flag's own bit, then its parents' (a child is cancelled when any
    /// of them is).
    bits: Vec<Arc<AtomicBool>>,
}

impl Default for CancelFlag {
    fn default() -> Self {
        CancelFlag {
            bits: vec![Arc::new(AtomicBool::new(false))],
        }
    }
}

impl CancelFlag {
    /// Stops every walk sharing this flag (or a child of it) from starting
    /// nodes; running ones finish. There is no undoing it.
    pub fn cancel(&self) {
        if let Some(own) = self.bits.first() {
            own.store(true, Ordering::SeqCst);
        }
    }

    /// Whether [`cancel`](Self::cancel) has been called on this flag, a
    /// clone of it, or a parent.
    pub fn is_cancelled(&self) -> bool {
        self.bits.iter().any(|b| b.load(Ordering::SeqCst))
    }

    /// A flag cancelled when this one is, which can also be cancelled on its
    /// own without cancelling this one.
    pub fn child(&self) -> CancelFlag {
        let mut bits = vec![Arc::new(AtomicBool::new(false))];
        bits.extend(self.bits.iter().cloned());
        CancelFlag { bits }
    }
}

/// How a node's work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<K, E> {
    /// The work returned `Ok`.
    Done,
    /// The work returned this error.
    Failed(E),
    /// Not started because a node it depends on failed; names that root node.
    Skipped {
        /// The node whose failure caused the skip (never another skipped node).
        because: K,
    },
    /// Not started because the walk was cancelled.
    Cancelled,
}

/// Runs `work` for every node in dependency order, at most `parallelism`
/// at once. Ready nodes start in the order they were added.
pub async fn walk<K, E, F, Fut>(
    graph: &WorkGraph<K>,
    parallelism: usize,
    cancel: &CancelFlag,
    work: F,
) -> BTreeMap<K, Outcome<K, E>>
where
    K: Clone + Ord + Send + 'static,
    E: Send + 'static,
    F: Fn(K) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    let n = graph.nodes.len();
    let parallelism = parallelism.max(1);
    let mut waiting: Vec<usize> = graph.deps.iter().map(BTreeSet::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in graph.deps.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut outcomes: BTreeMap<usize, Outcome<K, E>> = BTreeMap::new();
    let mut running: JoinSet<(usize, Result<(), E>)> = JoinSet::new();

    loop {
        while running.len() < parallelism && !cancel.is_cancelled() {
            let Some(i) = ready.pop_first() else { break };
            let fut = work(graph.nodes[i].clone());
            running.spawn(async move { (i, fut.await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, result) = match joined {
            Ok(r) => r,
            // A panicking task is a bug; surface it rather than hang.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match result {
            Ok(()) => {
                outcomes.insert(i, Outcome::Done);
                for &d in &dependents[i] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 && !outcomes.contains_key(&d) {
                        ready.insert(d);
                    }
                }
            }
            Err(e) => {
                outcomes.insert(i, Outcome::Failed(e));
                let mut stack = dependents[i].clone();
                while let Some(d) = stack.pop() {
                    if let std::collections::btree_map::Entry::Vacant(v) = outcomes.entry(d) {
                        v.insert(Outcome::Skipped {
                            because: graph.nodes[i].clone(),
                        });
                        ready.remove(&d);
                        stack.extend(dependents[d].iter().copied());
                    }
                }
            }
        }
    }
    (0..n)
        .map(|i| {
            (
                graph.nodes[i].clone(),
                outcomes.remove(&i).unwrap_or(Outcome::Cancelled),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn graph(nodes: &[&'static str], edges: &[(&'static str, &'static str)]) -> WorkGraph<&'static str> {
        let mut g = WorkGraph::new();
        nodes.iter().for_each(|n| g.add(*n));
        edges.iter().for_each(|(a, b)| g.order(a, b));
        g
    }

    #[tokio::test]
    async fn dependencies_finish_before_dependents_start() {
        let g = graph(&["c", "a", "b"], &[("a", "b"), ("b", "c")]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = walk(&g, 4, &CancelFlag::default(), |k| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("start {k}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                log.lock().unwrap().push(format!("end {k}"));
                Ok::<(), ()>(())
            }
        })
        .await;
        assert!(out.values().all(|o| *o == Outcome::Done));
        assert_eq!(
            *log.lock().unwrap(),
            ["start a", "end a", "start b", "end b", "start c", "end c"]
        );
    }

    #[tokio::test]
    async fn parallelism_bounds_concurrency() {
        let g = graph(&["a", "b", "c", "d", "e"], &[]);
        let now = Arc::new(Mutex::new((0usize, 0usize)));
        walk(&g, 2, &CancelFlag::default(), |_| {
            let now = now.clone();
            async move {
                {
                    let mut n = now.lock().unwrap();
                    n.0 += 1;
                    n.1 = n.1.max(n.0);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                now.lock().unwrap().0 -= 1;
                Ok::<(), ()>(())
            }
        })
        .await;
        assert_eq!(now.lock().unwrap().1, 2);
    }

    #[tokio::test]
    async fn failure_skips_dependents_and_spares_other_branches() {
        let g = graph(
            &["vpc", "subnet", "route", "policy"],
            &[("vpc", "subnet"), ("subnet", "route")],
        );
        let out = walk(&g, 10, &CancelFlag::default(), |k| async move {
            if k == "vpc" { Err("boom") } else { Ok(()) }
        })
        .await;
        assert_eq!(out["vpc"], Outcome::Failed("boom"));
        assert_eq!(out["subnet"], Outcome::Skipped { because: "vpc" });
        assert_eq!(out["route"], Outcome::Skipped { because: "vpc" });
        assert_eq!(out["policy"], Outcome::Done);
    }

    #[tokio::test]
    async fn cancel_stops_new_starts_but_lets_running_finish() {
        let g = graph(&["a", "b"], &[("a", "b")]);
        let cancel = CancelFlag::default();
        let c = cancel.clone();
        let out = walk(&g, 10, &cancel, |k| {
            let c = c.clone();
            async move {
                c.cancel();
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = k;
                Ok::<(), ()>(())
            }
        })
        .await;
        assert_eq!(out["a"], Outcome::Done);
        assert_eq!(out["b"], Outcome::Cancelled);
    }
}

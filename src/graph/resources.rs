//! The stack's resource graph, built with petgraph.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::config::Stack;

/// Resources and their dependencies. An edge `a -> b` means `b` depends on
/// `a`, so `a` is created first and deleted last.
#[derive(Debug, Clone)]
pub struct ResourceGraph {
    graph: DiGraph<String, ()>,
    index: BTreeMap<String, NodeIndex>,
}

/// A dependency cycle: the resources on it, in cycle order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// Resource names, starting with the first by name; each is followed by one
    /// that depends on it.
    pub members: Vec<String>,
}

impl Cycle {
    /// `a -> b -> a`.
    pub fn path(&self) -> String {
        let mut parts = self.members.clone();
        if let Some(first) = self.members.first() {
            parts.push(first.clone());
        }
        parts.join(" -> ")
    }
}

impl ResourceGraph {
    /// Builds the graph from references and `depends_on`. References to
    /// names that are not resources are ignored here (validation reports
    /// them). Fails on a cycle, naming its members.
    pub fn build(stack: &Stack) -> Result<ResourceGraph, Cycle> {
        let edges = stack
            .resources
            .values()
            .flat_map(|r| r.dependencies().into_iter().map(move |d| (d, r.name.clone())));
        Self::from_edges(stack.resources.keys().cloned(), edges)
    }

    /// Builds a graph from node names and `(dependency, dependent)` pairs;
    /// pairs naming unknown nodes are ignored.
    pub fn from_edges(
        nodes: impl IntoIterator<Item = String>,
        edges: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ResourceGraph, Cycle> {
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        for n in nodes {
            let i = graph.add_node(n.clone());
            index.insert(n, i);
        }
        for (dep, dependent) in edges {
            if let (Some(&a), Some(&b)) = (index.get(&dep), index.get(&dependent)) {
                graph.update_edge(a, b, ());
            }
        }
        let g = ResourceGraph { graph, index };
        match g.find_cycle() {
            Some(c) => Err(c),
            None => Ok(g),
        }
    }

    fn find_cycle(&self) -> Option<Cycle> {
        let mut cycles: Vec<Vec<NodeIndex>> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.graph.contains_edge(scc[0], scc[0]))
            .collect();
        cycles.sort_by_key(|scc| scc.iter().map(|i| self.graph[*i].clone()).min());
        let scc = cycles.into_iter().next()?;
        // Walk the component from its smallest name to give a readable order.
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc.iter().min_by_key(|i| &self.graph[**i])?;
        let mut order = vec![start];
        let mut seen = BTreeSet::from([start]);
        let mut cur = start;
        loop {
            let mut next: Vec<NodeIndex> = self
                .graph
                .neighbors(cur)
                .filter(|n| members.contains(n) && !seen.contains(n))
                .collect();
            next.sort_by_key(|n| &self.graph[*n]);
            match next.first() {
                Some(&n) => {
                    order.push(n);
                    seen.insert(n);
                    cur = n;
                }
                None => break,
            }
        }
        Some(Cycle {
            members: order.into_iter().map(|i| self.graph[i].clone()).collect(),
        })
    }

    /// Every resource name, dependencies before dependents; ties broken by
    /// name so that the order is deterministic.
    pub fn topo_order(&self) -> Vec<String> {
        let mut remaining: BTreeMap<NodeIndex, usize> = self
            .graph
            .node_indices()
            .map(|i| {
                (
                    i,
                    self.graph
                        .neighbors_directed(i, petgraph::Direction::Incoming)
                        .count(),
                )
            })
            .collect();
        let mut ready: BTreeSet<(String, NodeIndex)> = remaining
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(i, _)| (self.graph[*i].clone(), *i))
            .collect();
        let mut out = Vec::new();
        while let Some(first) = ready.pop_first() {
            out.push(first.0);
            for dep in self.graph.neighbors(first.1) {
                if let Some(n) = remaining.get_mut(&dep) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert((self.graph[dep].clone(), dep));
                    }
                }
            }
        }
        out
    }

    /// The direct dependencies of `name`, sorted.
    pub fn dependencies(&self, name: &str) -> Vec<String> {
        let Some(&i) = self.index.get(name) else {
            return Vec::new();
        };
        let mut deps: Vec<String> = self
            .graph
            .neighbors_directed(i, petgraph::Direction::Incoming)
            .map(|d| self.graph[d].clone())
            .collect();
        deps.sort();
        deps
    }

    /// The graph in Graphviz DOT, nodes and edges sorted.
    pub fn to_dot(&self, labels: &BTreeMap<String, String>) -> String {
        let mut out = String::from("digraph meshform {\n  rankdir = LR;\n  node [shape = box];\n");
        for name in self.index.keys() {
            let label = labels
                .get(name)
                .map_or_else(|| name.clone(), |l| format!("{name}\\n{l}"));
            out.push_str(&format!("  \"{name}\" [label = \"{label}\"];\n"));
        }
        let mut edges: Vec<(String, String)> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(a, b)| (self.graph[a].clone(), self.graph[b].clone()))
            .collect();
        edges.sort();
        for (a, b) in edges {
            out.push_str(&format!("  \"{a}\" -> \"{b}\";\n"));
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(nodes: &[&str], edges: &[(&str, &str)]) -> Result<ResourceGraph, Cycle> {
        ResourceGraph::from_edges(
            nodes.iter().map(|s| s.to_string()),
            edges.iter().map(|(a, b)| (a.to_string(), b.to_string())),
        )
    }

    #[test]
    fn topo_order_puts_dependencies_first() {
        let graph = g(
            &["subnet", "vpc", "route", "igw"],
            &[("vpc", "subnet"), ("igw", "route"), ("subnet", "route")],
        )
        .unwrap();
        assert_eq!(graph.topo_order(), vec!["igw", "vpc", "subnet", "route"]);
        assert_eq!(graph.dependencies("route"), vec!["igw", "subnet"]);
    }

    #[test]
    fn cycle_lists_its_members_in_order() {
        let err = g(
            &["a", "b", "c", "d"],
            &[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")],
        )
        .unwrap_err();
        assert_eq!(err.members, vec!["a", "b", "c"]);
        assert_eq!(err.path(), "a -> b -> c -> a");
    }

    #[test]
    fn dot_lists_edges() {
        let graph = g(&["a", "b"], &[("a", "b")]).unwrap();
        let dot = graph.to_dot(&BTreeMap::new());
        assert!(dot.contains("\"a\" -> \"b\";"), "{dot}");
    }
}

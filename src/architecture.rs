//! The house's shape, checked: doors (`http/`, `mcp/`) → `query/` → governance, cache,
//! planner, actors, with no arrow pointing back up.
//!
//! - no import circles among `src/`'s modules (a module's use of its own ancestors, which
//!   declare it, is not an arrow);
//! - a door is imported by nothing but `startup`, which mounts it: no door reaches into another,
//!   and nothing below the doors reaches up into one;
//! - the query service names no HTTP type.
//!
//! Read from the source files (`crate::` and `super::` paths), the way a reviewer reads them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The doors, and the one module allowed to import them.
const DOORS: [&str; 4] = ["http", "mcp", "flight", "pg"];
const MOUNTS_DOORS: &str = "startup";

/// Every module of the library (`a::b` from `src/a/b.rs` or `src/a/b/mod.rs`) and its file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(src).unwrap();
            if rel.starts_with("tests") || rel == Path::new("main.rs") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            // Test-only modules (`tests.rs`, this one) are not part of the house.
            if matches!(
                parts.last().map(String::as_str),
                Some("tests" | "architecture")
            ) {
                continue;
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The text of a file without its unit tests.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i])
}

fn ident_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// The paths after each `prefix` in `text`: `prefix a::b` and, for `prefix a::{b, c::d}`,
/// `a::b` and `a::c::d`.
fn paths_after(text: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find(prefix) {
        let start = at + prefix.len();
        let before_ok = at == 0
            || !rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let mut path = String::new();
        let mut tail = &rest[start..];
        loop {
            let n = ident_len(tail);
            if n == 0 {
                break;
            }
            if !path.is_empty() {
                path.push_str("::");
            }
            path.push_str(&tail[..n]);
            tail = &tail[n..];
            match tail.strip_prefix("::") {
                Some(t) => tail = t,
                None => break,
            }
        }
        if before_ok {
            match tail.strip_prefix('{') {
                Some(group) => {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for item in group.split(',') {
                        // `b`, `c::d`, `e as f`, `self`: the item's own path, under `path`.
                        let item: Vec<&str> = item
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .split("::")
                            .take_while(|p| !p.is_empty() && ident_len(p) == p.len())
                            .filter(|p| *p != "self")
                            .collect();
                        let full: Vec<&str> = path
                            .split("::")
                            .filter(|p| !p.is_empty())
                            .chain(item)
                            .collect();
                        if !full.is_empty() {
                            out.push((offset + at, full.join("::")));
                        }
                    }
                }
                None if !path.is_empty() => out.push((offset + at, path)),
                None => {}
            }
        }
        offset += start;
        rest = &rest[start..];
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn resolve<'a>(path: &str, modules: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get_key_value(parts[..n].join("::").as_str()))
        .map(|(k, _)| k.as_str())
}

/// `module -> modules it uses`.
fn imports(modules: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in modules {
        let text = std::fs::read_to_string(file).unwrap();
        let text = without_tests(&text);
        let own: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
        let mut named: Vec<String> = paths_after(text, "crate::")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        // `self::` is relative to the module itself.
        for (_, path) in paths_after(text, "self::") {
            named.push(
                own.iter()
                    .copied()
                    .chain([path.as_str()])
                    .collect::<Vec<_>>()
                    .join("::"),
            );
        }
        // `super::` is relative to the module's parent (a `mod.rs` is its own folder).
        for (at, path) in paths_after(text, "super::") {
            let mut ups = 1;
            let mut before = &text[..at];
            while let Some(b) = before.strip_suffix("super::") {
                ups += 1;
                before = b;
            }
            let base = &own[..own.len().saturating_sub(ups)];
            named.push(
                base.iter()
                    .copied()
                    .chain([path.as_str()])
                    .collect::<Vec<_>>()
                    .join("::"),
            );
        }
        for path in named {
            let Some(target) = resolve(&path, modules) else {
                continue;
            };
            let ancestor = target.is_empty() || module.starts_with(&format!("{target}::"));
            if target != module && !ancestor {
                graph
                    .entry(module.clone())
                    .or_default()
                    .insert(target.to_owned());
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut c = path[i..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

fn source() -> (
    BTreeMap<String, PathBuf>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let graph = imports(&modules);
    (modules, graph)
}

#[test]
fn no_import_circles() {
    let (modules, graph) = source();
    assert!(
        modules.len() > 40,
        "the walk found the modules: {modules:?}"
    );
    assert!(
        graph
            .get("query::run")
            .is_some_and(|g| g.contains("query::producer")),
        "the reader sees imports: {graph:?}"
    );
    assert_eq!(cycle(&graph), None, "an import circle");
}

#[test]
fn doors_are_imported_only_where_they_are_mounted() {
    let (_, graph) = source();
    for (module, uses) in &graph {
        for used in uses {
            let door = top(used);
            if DOORS.contains(&door) && top(module) != door {
                assert_eq!(
                    top(module),
                    MOUNTS_DOORS,
                    "{module} imports the {door} door ({used})"
                );
            }
        }
    }
}

#[test]
fn the_query_service_names_no_http_type() {
    let (modules, _) = source();
    for (module, file) in modules.iter().filter(|(m, _)| top(m) == "query") {
        let text = std::fs::read_to_string(file).unwrap();
        for word in [
            "actix_web",
            "actix_http",
            "http::",
            "HttpRequest",
            "HttpResponse",
            "StatusCode",
        ] {
            assert!(
                !without_tests(&text).contains(word),
                "{module} names {word}"
            );
        }
    }
}

#[test]
fn the_reader_resolves_groups_and_super() {
    let found: Vec<String> = paths_after(
        "use crate::a::{b, c::d};\nuse crate::{http::X, query::Y};\nx(super::e::F)",
        "crate::",
    )
    .into_iter()
    .map(|(_, p)| p)
    .collect();
    assert_eq!(found, ["a::b", "a::c::d", "http::X", "query::Y"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(cycle(&graph).is_some());
}

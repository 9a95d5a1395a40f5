//! The module check of `cargo xtask lint`: no import cycles between the modules of a crate.
//!
//! A module that uses a sibling which uses it back (directly or round a longer loop) has an
//! item in the wrong place; the fix is to move the item, and this check keeps it fixed. A
//! reference counts at the level where the two modules part: `crate::kernel::slots` used
//! from `telemetry::snapshot` is an edge `telemetry -> kernel`, and `super::Thing` in
//! `kernel::attach` is an edge to `kernel`'s own file, its parent, which never makes a cycle
//! (a parent and its children are one unit). Paths are read from the source text: `use`
//! trees (`use crate::{a::{b, c}, d}`) and inline `crate::`/`super::` paths, comments and
//! strings left out.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

/// The crates' source roots, relative to the workspace.
pub(crate) const CRATES: &[&str] = &[
    "reflector-common/src",
    "reflector-ebpf/src",
    "reflector-user/src",
    "xtask/src",
    "tests/src",
    "bench/src",
    "assets/src",
];

/// One module path, `["kernel", "slots"]`; the crate root is empty.
type ModPath = Vec<String>;

/// Every cycle in the crate at `root`, each as its modules in order, `a -> b -> a`.
///
/// # Errors
/// When a source file cannot be read.
pub(crate) fn cycles(root: &Path) -> Result<Vec<String>> {
    let modules = read_modules(root)?;
    let known: BTreeSet<ModPath> = modules.keys().cloned().collect();
    // Edges between siblings, keyed by their parent.
    let mut edges: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, text) in &modules {
        for path in references(module, text) {
            let Some(target) = resolve(&known, &path) else {
                continue;
            };
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            // An ancestor or a descendant: one unit with this module.
            if common == module.len() || common == target.len() {
                continue;
            }
            edges
                .entry(module[..common].to_vec())
                .or_default()
                .entry(module[common].clone())
                .or_default()
                .insert(target[common].clone());
        }
    }
    let mut found = Vec::new();
    for (parent, graph) in &edges {
        for cycle in strongly_connected(graph) {
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{}::", parent.join("::"))
            };
            let names: Vec<String> = cycle.iter().map(|name| format!("{prefix}{name}")).collect();
            found.push(names.join(" <-> "));
        }
    }
    Ok(found)
}

/// Every `.rs` file under `root` by its module path, with comments and string literals
/// blanked out.
fn read_modules(root: &Path) -> Result<BTreeMap<ModPath, String>> {
    let mut modules = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                modules.insert(module_path(root, &path), code_only(&text));
            }
        }
    }
    Ok(modules)
}

/// `kernel/mod.rs` and `kernel.rs` are `kernel`; `lib.rs` and `main.rs` the root.
fn module_path(root: &Path, file: &Path) -> ModPath {
    let relative: PathBuf = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let mut parts: ModPath = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// `text` with comments, string and char literals replaced by spaces, and the test module
/// (`#[cfg(test)] mod tests`) cut off: tests may reach anywhere.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            out.push_str(&" ".repeat(end));
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |end| end + 2);
            out.push_str(&" ".repeat(end));
            i += end;
        } else if rest.starts_with('"') {
            let mut end = 1;
            while end < rest.len() && rest.as_bytes()[end] != b'"' {
                end += if rest.as_bytes()[end] == b'\\' { 2 } else { 1 };
            }
            let end = (end + 1).min(rest.len());
            out.push_str(&" ".repeat(end));
            i += end;
        } else {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The module paths `text` (the code of `module`) refers to, made absolute.
fn references(module: &[String], text: &str) -> Vec<ModPath> {
    let mut paths = Vec::new();
    for statement in use_statements(text) {
        for path in expand_use_tree(&statement) {
            paths.extend(absolute(module, &path));
        }
    }
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("crate::") || word.starts_with("super::"))
        .collect();
    for word in words {
        let path: Vec<String> = word
            .split("::")
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        paths.extend(absolute(module, &path));
    }
    paths
}

/// The bodies of `use ...;` statements (without `use` and `;`), `pub use` included.
fn use_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        statements.push(rest[..end].split_whitespace().collect());
        rest = &rest[end..];
    }
    statements
}

/// `a::{b::{c, d}, e as f}` as paths `a::b::c`, `a::b::d`, `a::e`.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    expand_into(&[], tree, &mut paths);
    paths
}

fn expand_into(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let mut base = prefix.to_vec();
        base.extend(split_path(&tree[..open]));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        for item in split_top_level(inner) {
            expand_into(&base, item, out);
        }
    } else if !tree.is_empty() {
        let without_alias = tree.split(" as ").next().unwrap_or(tree);
        let mut path = prefix.to_vec();
        path.extend(split_path(without_alias));
        out.push(path);
    }
}

fn split_path(text: &str) -> Vec<String> {
    text.split("::")
        .map(str::trim)
        .filter(|part| !part.is_empty() && *part != "*" && *part != "self")
        .map(str::to_owned)
        .collect()
}

/// `a, b::{c, d}, e` split at the commas outside braces.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0_i32, 0, Vec::new());
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// `path` (as written in `module`) from the crate root, when it starts inside the crate.
fn absolute(module: &[String], path: &[String]) -> Option<ModPath> {
    let (first, rest) = path.split_first()?;
    match first.as_str() {
        "crate" => Some(rest.to_vec()),
        "super" => {
            let mut base = module.to_vec();
            base.pop()?;
            let mut rest = rest;
            while rest.first().is_some_and(|part| part == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }
        _ => None,
    }
}

/// The longest module that `path` starts with.
fn resolve(known: &BTreeSet<ModPath>, path: &[String]) -> Option<ModPath> {
    (1..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|candidate| known.contains(candidate))
}

/// The strongly connected components of more than one node (Tarjan), each sorted.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        let graph = state.graph;
        for target in graph.get(node).into_iter().flatten() {
            let target = target.as_str();
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-modules-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn finds_a_cycle_through_a_use_tree_and_a_nested_module() {
        let root = scratch("cycle");
        write(&root, "lib.rs", "mod a;\nmod b;\nmod c;\n");
        write(
            &root,
            "a.rs",
            "use crate::{b::{self, Thing}, c as _};\n// crate::c in a comment\n",
        );
        write(&root, "b/mod.rs", "mod inner;\n");
        write(&root, "b/inner.rs", "fn f() { crate::a::g(); }\n");
        write(&root, "c.rs", "const S: &str = \"crate::a\";\n");
        let found = cycles(&root).unwrap();
        let _ = fs::remove_dir_all(&root);
        assert_eq!(found, ["a <-> b"]);
    }

    #[test]
    fn parents_children_and_tests_make_no_cycle() {
        let root = scratch("clean");
        write(&root, "lib.rs", "mod a;\nmod b;\n");
        write(
            &root,
            "a/mod.rs",
            "mod x;\nuse self::x::Y;\npub struct Z;\n",
        );
        write(&root, "a/x.rs", "use super::Z;\nuse crate::b::B;\n");
        write(
            &root,
            "b.rs",
            "pub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a::Z;\n}\n",
        );
        let found = cycles(&root).unwrap();
        let _ = fs::remove_dir_all(&root);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn expands_nested_use_trees() {
        assert_eq!(
            expand_use_tree("crate::{a::{self, b}, c::d as e}"),
            [
                vec!["crate", "a"],
                vec!["crate", "a", "b"],
                vec!["crate", "c", "d"]
            ]
        );
    }
}

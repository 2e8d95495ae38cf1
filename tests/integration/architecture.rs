//! The module graph of `src/`: which top-level module (`src/foo.rs` or `src/foo/**`) refers to
//! which, checked against issue #14's acceptance ("no import cycle between modules; `engine`
//! imports no `cli`, `stages` import no `engine` internals beyond the shared types in `run_dir`;
//! `report` imports no `stages`") and the "never" column of `DESIGN.md` §3 where it is about
//! imports (`run_dir` is a leaf towards engine, stages and cli; `logs` does no network, so it
//! reaches no `forge`; `forge` touches no git, so it reaches no `vcs`).
//!
//! A reference is any `crate::NAME` path (in `use` items, grouped `use crate::{a, b::c}` forms,
//! `pub use` re-exports, paths in code, macro bodies, `$crate::`), and any `super::` chain that
//! climbs out of its top-level module to the crate root. Test modules (`#[cfg(test)]`) count too:
//! a test that needs a higher module is a cycle all the same. Comments, doc comments and
//! literals do not count.
//!
//! Why a small hand-written scanner: no crate extracts a crate's module references, and `syn`
//! keeps macro bodies as opaque tokens, so the paths inside `format!`, `matches!` or `json!`
//! calls would need a token scan anyway; this is that token scan.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Where a reference was written: `src/...rs:LINE`.
type Site = String;

/// Top-level module -> module it refers to -> where.
type Graph = BTreeMap<String, BTreeMap<String, Vec<Site>>>;

/// Forbidden dependencies (direct or through other modules): (from, to, the rule).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("engine", "cli", "issue #14: `engine` imports no `cli`"),
    (
        "stages",
        "engine",
        "issue #14: `stages` import no `engine` internals (shared types live in `run_dir`)",
    ),
    (
        "report",
        "stages",
        "issue #14 and DESIGN.md §3: `report` imports no `stages`",
    ),
    (
        "run_dir",
        "engine",
        "DESIGN.md §3: `run_dir` is a leaf that never depends on engine, stages or cli",
    ),
    (
        "run_dir",
        "stages",
        "DESIGN.md §3: `run_dir` is a leaf that never depends on engine, stages or cli",
    ),
    (
        "run_dir",
        "cli",
        "DESIGN.md §3: `run_dir` is a leaf that never depends on engine, stages or cli",
    ),
    ("logs", "forge", "DESIGN.md §3: `logs` never does network"),
    ("forge", "vcs", "DESIGN.md §3: `forge` never touches git"),
];

/// `src` of this crate.
fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn module_graph_has_no_cycle_and_follows_the_layering_rules() {
    let graph = module_graph(&src());
    // A scanner that found nothing would pass everything: these references exist by design.
    for (from, to) in [
        ("cli", "engine"),
        ("engine", "stages"),
        ("stages", "run_dir"),
    ] {
        assert!(
            graph.get(from).is_some_and(|m| m.contains_key(to)),
            "the scanner missed `{from} -> {to}`; graph: {graph:#?}"
        );
    }
    let mut problems = Vec::new();
    let cycles = cycles(&graph);
    if !cycles.is_empty() {
        problems.push(format!(
            "{} import cycle(s) between top-level modules of src/:",
            cycles.len()
        ));
        for c in &cycles {
            problems.push(format!("  {}", c.join(" -> ")));
            problems.extend(sites_along(&graph, c));
        }
    }
    for (from, to, rule) in FORBIDDEN {
        if let Some(path) = path_between(&graph, from, to) {
            problems.push(format!("{rule}, but {}", path.join(" -> ")));
            problems.extend(sites_along(&graph, &path));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// For each step `a -> b` of `path`, a line naming the first places `a` refers to `b`.
fn sites_along(graph: &Graph, path: &[String]) -> Vec<String> {
    path.windows(2)
        .map(|pair| {
            let all = &graph[&pair[0]][&pair[1]];
            let mut s = all.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
            if all.len() > 4 {
                s.push_str(&format!(" (+{} more)", all.len() - 4));
            }
            format!("      {} -> {}: {s}", pair[0], pair[1])
        })
        .collect()
}

/// Every top-level module of the crate with the modules it refers to. Panics on a reference
/// to a crate-root name that is no module (the scanner would otherwise miss a dependency).
fn module_graph(src: &Path) -> Graph {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read src/lib.rs");
    let modules = declared_modules(&lib);
    assert!(!modules.is_empty(), "no `mod` declarations in src/lib.rs");
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    let mut unknown = Vec::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let top = parts[0].trim_end_matches(".rs").to_string();
        if !modules.contains(&top) {
            continue; // lib.rs, main.rs (the binary crate) and files outside the module tree
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let shown = format!("src/{}", parts.join("/"));
        for (target, line) in root_references(&text, module_depth(&parts)) {
            if target == top {
                continue;
            }
            if !modules.contains(&target) {
                unknown.push(format!("{shown}:{line}: `crate::{target}`"));
                continue;
            }
            graph
                .get_mut(&top)
                .unwrap()
                .entry(target)
                .or_default()
                .push(format!("{shown}:{line}"));
        }
    }
    assert!(
        unknown.is_empty(),
        "references to crate-root names that are no module of src/lib.rs:\n{}",
        unknown.join("\n")
    );
    graph
}

/// `.rs` files under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// How deep a file's module sits below the crate root: `foo.rs` and `foo/mod.rs` 1,
/// `foo/bar.rs` 2.
fn module_depth(parts: &[String]) -> usize {
    parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod.rs"))
}

/// The names of `mod NAME;` items at the top level of `lib.rs`.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    let toks = tokens(&strip(lib));
    let mut out = BTreeSet::new();
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        match t.text.as_str() {
            "{" => depth += 1,
            "}" => depth = depth.saturating_sub(1),
            "mod" if depth == 0 => {
                if let (Some(name), Some(semi)) = (toks.get(i + 1), toks.get(i + 2)) {
                    if semi.text == ";" {
                        out.insert(name.text.clone());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// One token of the stripped source: an identifier, `::`, or one punctuation character.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
}

impl Token {
    fn is_ident(&self) -> bool {
        self.text
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
    }
}

/// The crate-root names `text` refers to, with their lines: `crate::NAME`, the first names of
/// `crate::{...}` groups, and `super::` chains that climb above a file whose module is `depth`
/// deep (inline `mod x { ... }` blocks add to the depth).
fn root_references(text: &str, depth: usize) -> Vec<(String, usize)> {
    let toks = tokens(&strip(text));
    let mut out = Vec::new();
    let mut braces = 0usize;
    // Brace depths just inside each open inline `mod x {`.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        match t.text.as_str() {
            "{" => {
                braces += 1;
                if i >= 2 && toks[i - 2].text == "mod" && toks[i - 1].is_ident() {
                    inline_mods.push(braces);
                }
            }
            "}" => {
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
                braces = braces.saturating_sub(1);
            }
            "crate" if toks.get(i + 1).is_some_and(|n| n.text == "::") => {
                names_after(&toks, i + 2, &mut out);
            }
            "super" if i == 0 || toks[i - 1].text != "::" => {
                let mut j = i;
                let mut ups = 0;
                while toks.get(j).is_some_and(|s| s.text == "super")
                    && toks.get(j + 1).is_some_and(|s| s.text == "::")
                {
                    ups += 1;
                    j += 2;
                }
                if ups > 0 && ups == depth + inline_mods.len() {
                    names_after(&toks, j, &mut out);
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The crate-root names at `toks[at]`, just after `crate::`: one name, or the first name of
/// each item of a `{...}` group. Panics on a glob (`crate::*`), which would hide dependencies.
fn names_after(toks: &[Token], at: usize, out: &mut Vec<(String, usize)>) {
    let Some(t) = toks.get(at) else { return };
    if t.is_ident() {
        out.push((t.text.clone(), t.line));
        return;
    }
    assert!(
        t.text != "*",
        "line {}: `crate::*` hides which modules are used",
        t.line
    );
    if t.text != "{" {
        return;
    }
    let mut depth = 0usize;
    let mut item_start = true;
    for t in &toks[at..] {
        match t.text.as_str() {
            "{" => {
                depth += 1;
                if depth == 1 {
                    item_start = true;
                    continue;
                }
            }
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            "," if depth == 1 => {
                item_start = true;
                continue;
            }
            _ => {}
        }
        if depth == 1 && item_start {
            item_start = false;
            if t.is_ident() && t.text != "self" {
                out.push((t.text.clone(), t.line));
            }
        }
    }
}

/// Splits stripped source into identifiers (with `r#` removed), `::` and single characters.
fn tokens(s: &str) -> Vec<Token> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            let mut text: String = cs[start..i].iter().collect();
            if text == "r" && cs.get(i) == Some(&'#') {
                // A raw identifier `r#name`.
                i += 1;
                let s2 = i;
                while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                    i += 1;
                }
                text = cs[s2..i].iter().collect();
            }
            out.push(Token { text, line });
        } else if c == ':' && cs.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

/// `src` with comments and the contents of string, raw string, byte and char literals replaced
/// by spaces, newlines kept (so lines still count). Lifetimes and labels (`'a`) stay.
fn strip(src: &str) -> String {
    let cs: Vec<char> = src.chars().collect();
    let n = cs.len();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, from: &[char]| {
        for &c in from {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < n {
        let c = cs[i];
        let next = cs.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = cs[i..].iter().position(|&c| c == '\n').map_or(n, |p| i + p);
            blank(&mut out, &cs[i..end]);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut j, mut depth) = (i, 0usize);
            while j < n {
                if cs[j] == '/' && cs.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if cs[j] == '*' && cs.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &cs[i..j.min(n)]);
            i = j.min(n);
        } else if let Some(end) = raw_string_end(&cs, i).filter(|_| i == 0 || !ident(cs[i - 1])) {
            blank(&mut out, &cs[i..end]);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < n && cs[j] != '"' {
                j += if cs[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(n);
            blank(&mut out, &cs[i..end]);
            i = end;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}', '\''), else a lifetime or label.
            let end = if next == Some('\\') {
                let mut j = i + 2;
                j += 1; // the escaped character itself, even a quote
                while j < n && cs[j] != '\'' {
                    j += 1;
                }
                Some(j + 1)
            } else if cs.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    let end = end.min(n);
                    blank(&mut out, &cs[i..end]);
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The end (exclusive) of a raw string literal (`r"…"`, `r#"…"#`, `br…`, `cr…`) starting at
/// `i`, if one starts there.
fn raw_string_end(cs: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(cs.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if cs.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = cs[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if cs.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < cs.len() {
        if cs[j] == '"'
            && cs[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(cs.len())
}

/// Every elementary cycle needed to show each edge that lies on a cycle: for each such edge
/// `a -> b`, the shortest way back from `b` to `a`. Each cycle is listed once, starting at its
/// smallest module name and ending where it started.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found = BTreeSet::new();
    for (a, targets) in graph {
        for b in targets.keys() {
            if let Some(back) = path_between(graph, b, a) {
                // a -> b -> ... -> a, without the repeated end.
                let mut ring: Vec<String> = std::iter::once(a.clone())
                    .chain(back.iter().take(back.len() - 1).cloned())
                    .collect();
                let start = (0..ring.len()).min_by_key(|&k| &ring[k]).unwrap();
                ring.rotate_left(start);
                ring.push(ring[0].clone());
                found.insert(ring);
            }
        }
    }
    found.into_iter().collect()
}

/// The shortest chain of references from `from` to `to` (both included), if any.
fn path_between(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(m) = queue.pop_front() {
        for next in graph.get(m).into_iter().flat_map(|t| t.keys()) {
            if next == from || prev.contains_key(next.as_str()) {
                continue;
            }
            prev.insert(next, m);
            if next == to {
                let mut path = vec![to.to_string()];
                let mut at = to;
                while at != from {
                    at = prev[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(next);
        }
    }
    None
}

#[test]
fn scanner_reads_grouped_uses_code_paths_and_macro_bodies() {
    let src = r##"
use crate::error::Error;
use crate::{alpha, beta::{x, y}, gamma::z as w};
pub use crate::delta::*;
fn f() { let _ = crate::epsilon::run(); format!("{}", crate::zeta::NAME); }
macro_rules! m { () => { $crate::eta::go() } }
"##;
    let names: Vec<String> = root_references(src, 1)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "error", "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"
        ]
    );
}

#[test]
fn scanner_ignores_comments_literals_and_visibility() {
    let src = r###"
// use crate::one;
/* crate::two /* nested crate::three */ crate::four */
/// [`crate::five`]
pub(crate) fn f<'a>(s: &'a str) -> char {
    let _ = "crate::six \" crate::seven";
    let _ = r#"crate::eight " still raw"#;
    let _ = b"crate::nine";
    let _ = '"'; let _ = '\''; let _ = '{';
    crate::ten::go();
    'x'
}
"###;
    let refs = root_references(src, 1);
    assert_eq!(
        refs,
        [("ten".to_string(), 10)],
        "only the code path counts, on its own line"
    );
}

#[test]
fn scanner_follows_super_chains_that_leave_the_module() {
    // In src/foo/bar.rs (depth 2): `super::` is `foo`, `super::super::` the crate root.
    let src = "use super::sibling;\nuse super::super::other::Thing;\nmod tests { use super::super::inner; use super::super::super::third; }\n";
    let names: Vec<String> = root_references(src, 2)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["other", "third"]);
}

#[test]
fn cycles_are_reported_as_paths_once_each() {
    let mut g: Graph = BTreeMap::new();
    for (a, b) in [
        ("run_dir", "contain"),
        ("contain", "run_dir"),
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "d"),
    ] {
        g.entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .push(format!("src/{a}.rs:1"));
        g.entry(b.into()).or_default();
    }
    let found: Vec<String> = cycles(&g).iter().map(|c| c.join(" -> ")).collect();
    assert_eq!(found, ["a -> b -> c -> a", "contain -> run_dir -> contain"]);
    assert_eq!(path_between(&g, "a", "d").unwrap(), ["a", "b", "c", "d"]);
    assert_eq!(path_between(&g, "d", "a"), None);
}

//! ARCHITECTURE.md's code map matches the tree: every file or folder a row names
//! exists in that row's folder, and every Rust module file of a crate's `src/` is
//! named by its row (so a new module cannot hide from a newcomer's map).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_owned()
}

/// The code map's rows: (folder, the text of the row).
fn rows() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let map = text.split("## Code map").nth(1).expect("a code map section");
    let map = map.split("\n## ").next().unwrap_or(map);
    map.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let folder = cells.get(1)?.trim_matches('`');
            (folder.ends_with('/') && cells.len() >= 4).then(|| (folder.to_owned(), cells[3..].join("|")))
        })
        .collect()
}

/// The names in backticks that look like paths (`http/`, `serve.rs`, `tests/e2e.rs`).
fn named_paths(row: &str) -> BTreeSet<String> {
    row.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.contains(' ') && (s.ends_with(".rs") || s.ends_with('/') || s.ends_with(".sh")))
        .map(str::to_owned)
        .collect()
}

/// Where a path a row names may live: the row's folder, its `src/`, or (for the
/// tests crate) its usual subfolders.
fn exists(folder: &str, path: &str) -> bool {
    let base = root().join(folder);
    ["", "src/", "tests/", "examples/"].iter().any(|sub| base.join(sub).join(path).exists())
}

#[test]
fn every_path_the_code_map_names_exists() {
    let rows = rows();
    assert!(rows.len() >= 6, "the code map has a row per top-level folder: {rows:?}");
    let mut missing = Vec::new();
    for (folder, row) in &rows {
        for path in named_paths(row) {
            if !exists(folder, &path) {
                missing.push(format!("{folder}{path}"));
            }
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md's code map names what is not in the tree: {missing:?}");
}

#[test]
fn every_module_of_every_crate_is_on_the_code_map() {
    let mut unnamed = Vec::new();
    for (folder, row) in rows() {
        // The root package's sources are the `src/` row itself.
        let src = if folder == "src/" { root().join("src") } else { root().join(&folder).join("src") };
        let Ok(entries) = std::fs::read_dir(&src) else { continue };
        let named = named_paths(&row);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let module = if entry.path().is_dir() { format!("{name}/") } else { name.clone() };
            if ["lib.rs", "main.rs", "tests.rs"].contains(&name.as_str())
                || !(module.ends_with(".rs") || module.ends_with('/'))
            {
                continue;
            }
            if !named.iter().any(|n| n == &module || n.ends_with(&format!("/{module}"))) {
                unnamed.push(format!("{folder}src/{module}"));
            }
        }
    }
    unnamed.sort();
    assert!(unnamed.is_empty(), "modules missing from ARCHITECTURE.md's code map: {unnamed:?}");
}

//! The kernel API reference of a language, extracted from its standard
//! library's own doc comments.
//!
//! A language manifest lists its stdlib files (`api = [...]`, paths on the
//! system volume). Every doc block in them whose first line starts with a
//! qualified name (`kernel.storage.get(key)`, `llmos.viz.Canvas`) is one
//! entry. The manifest says how a block opens and closes (`doc_block`:
//! `["/**", "*/"]` for JSDoc, `["\"\"\"", "\"\"\""]` for docstrings,
//! `["--[[", "]]"]` for Lua); a `*` margin on every line is removed. The docs live next to the code they describe, so the
//! reference cannot drift from it. `llmos api LANG` prints it, and the repair
//! loop gives it to the LLM.

use std::path::Path;

use serde::Serialize;

use crate::error::HostError;
use crate::language::Manifest;

/// One documented function, class or property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiEntry {
    /// First line of the doc block: the qualified signature.
    pub signature: String,
    /// The rest of the block, dedented.
    pub doc: String,
}

/// The reference for `manifest`'s language, from its stdlib files on the
/// system volume, in file order.
pub fn reference(manifest: &Manifest, system_volume: &Path) -> Result<Vec<ApiEntry>, HostError> {
    let mut out = Vec::new();
    let Some([open, close]) = &manifest.doc_block else {
        return Ok(out);
    };
    for rel in &manifest.api {
        let path = system_volume.join(rel);
        let text = std::fs::read_to_string(&path).map_err(|e| HostError::io(&path, e))?;
        out.extend(extract(&text, open, close));
    }
    Ok(out)
}

/// The interface an entry belongs to: `storage` for
/// `kernel.storage.get(key)` or `llmos.storage.get(...)`; `None` for the
/// root's own entries (`kernel.KernelError`, `kernel.exit(code)`).
pub fn interface_of(entry: &ApiEntry) -> Option<&str> {
    let head = entry
        .signature
        .split(|c: char| c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("");
    let mut parts = head.split(['.', '#']);
    let _root = parts.next()?;
    let second = parts.next()?;
    parts.next()?;
    second
        .starts_with(|c: char| c.is_ascii_lowercase())
        .then_some(second)
}

/// The reference a repair needs, not the whole of it: the entries of the
/// interfaces `source` uses (or `error` names: a `StorageError` needs the
/// storage reference), the root's entries when any is used, and one line
/// naming the other interfaces and their functions.
///
/// An interface counts as used when the text names it next to the API's
/// root (`kernel.viz`, `llmos.viz`), or names both (`from llmos import viz`,
/// `const { viz } = kernel`).
pub fn relevant(language: &str, entries: &[ApiEntry], source: &str, error: &str) -> String {
    let roots: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.signature.split('.').next())
        .collect();
    let mut interfaces: Vec<&str> = entries.iter().filter_map(interface_of).collect();
    interfaces.dedup();
    let error_lower = error.to_ascii_lowercase();
    let used = |iface: &str| {
        roots.iter().any(|root| {
            source.contains(&format!("{root}.{iface}"))
                || (word_in(source, root) && word_in(source, iface))
        }) || error_lower.contains(&format!("{iface}error"))
            || error_lower.contains(&format!("{iface}."))
    };
    let wanted: Vec<&str> = interfaces.iter().copied().filter(|i| used(i)).collect();
    let root_used = !wanted.is_empty() || roots.iter().any(|r| word_in(source, r));
    let keep: Vec<ApiEntry> = entries
        .iter()
        .filter(|e| match interface_of(e) {
            Some(i) => wanted.contains(&i),
            None => root_used,
        })
        .cloned()
        .collect();
    let others: Vec<String> = interfaces
        .iter()
        .filter(|i| !wanted.contains(i))
        .map(|i| {
            let mut names: Vec<&str> = Vec::new();
            for e in entries.iter().filter(|e| interface_of(e) == Some(i)) {
                let head = e.signature.split(['(', ' ']).next().unwrap_or("");
                if let Some(n) = head.rsplit(['.', '#']).next()
                    && !names.contains(&n)
                {
                    names.push(n);
                }
            }
            format!("{i} ({})", names.join(", "))
        })
        .collect();
    let mut s = if keep.is_empty() {
        String::new()
    } else {
        markdown(language, &keep)
    };
    if !others.is_empty() {
        s.push_str(&format!(
            "\nOther kernel interfaces (not used by this artifact): {}.\n",
            others.join("; ")
        ));
    }
    s
}

fn word_in(text: &str, w: &str) -> bool {
    text.match_indices(w).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + w.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Render entries as Markdown.
pub fn markdown(language: &str, entries: &[ApiEntry]) -> String {
    let mut s = format!("# llmos kernel API for {language}\n");
    for e in entries {
        s.push_str("\n## ");
        s.push_str(&e.signature);
        s.push('\n');
        if !e.doc.is_empty() {
            s.push_str(&e.doc);
            s.push('\n');
        }
    }
    s
}

/// Every API doc block of a source file, blocks delimited by `open` and `close`.
pub fn extract(text: &str, open: &str, close: &str) -> Vec<ApiEntry> {
    let mut out = Vec::new();
    let mut rest = text;
    if open.is_empty() || close.is_empty() {
        return out;
    }
    while let Some(start) = rest.find(open) {
        let body_start = start + open.len();
        let Some(len) = rest[body_start..].find(close) else {
            break;
        };
        let body = &rest[body_start..body_start + len];
        rest = &rest[body_start + len + close.len()..];
        let raw: Vec<&str> = body.lines().collect();
        // A JSDoc-style margin: every non-empty line starts with `*`.
        let margin = raw
            .iter()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.trim_start().starts_with('*'))
            && raw.len() > 1;
        let lines: Vec<&str> = raw
            .iter()
            .map(|l| {
                let t = l.trim_start();
                if margin || t.starts_with("* ") {
                    t.strip_prefix("* ")
                        .or_else(|| t.strip_prefix('*'))
                        .unwrap_or(t)
                } else {
                    l
                }
            })
            .collect();
        if let Some(entry) = entry(&lines) {
            out.push(entry);
        }
    }
    out
}

/// An entry if the block's first non-empty line is a qualified name.
fn entry(lines: &[&str]) -> Option<ApiEntry> {
    let first = lines.iter().position(|l| !l.trim().is_empty())?;
    let signature = lines[first].trim().to_string();
    let head = signature
        .split(|c: char| c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("");
    let qualified = head.contains('.')
        && head.starts_with(|c: char| c.is_ascii_alphabetic())
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '#');
    if !qualified {
        return None;
    }
    let rest: Vec<&str> = lines[first + 1..].to_vec();
    let indent = rest
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let doc: Vec<&str> = rest
        .iter()
        .map(|l| {
            if l.len() >= indent {
                &l[indent..]
            } else {
                l.trim_start()
            }
        })
        .collect();
    Some(ApiEntry {
        signature,
        doc: doc.join("\n").trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_interfaces_used_are_sent_in_full() {
        let e = |sig: &str| ApiEntry {
            signature: sig.into(),
            doc: "doc".into(),
        };
        let entries = [
            e("kernel.KernelError (class)"),
            e("kernel.storage.get(key) -> any"),
            e("kernel.storage.set(key, value)"),
            e("kernel.viz.plot(data) -> number"),
            e("kernel.viz.Canvas#text(x, y, s) -> Canvas"),
        ];
        let none = relevant("js", &entries, "console.log(1)", "ReferenceError x");
        assert!(!none.contains("## "), "{none}");
        assert!(
            none.contains("storage (get, set); viz (plot, text)"),
            "{none}"
        );
        let viz = relevant("js", &entries, "kernel.viz.plot([1])", "TypeError");
        assert!(viz.contains("## kernel.viz.plot") && viz.contains("## kernel.KernelError"));
        assert!(!viz.contains("## kernel.storage.get") && viz.contains("storage (get, set)"));
        // The error names the interface; a Python-style import names it too.
        let err = relevant("py", &entries, "x = 1", "StorageError: quota-exceeded");
        assert!(err.contains("## kernel.storage.set"), "{err}");
        let import = relevant("py", &entries, "from kernel import storage", "KeyError");
        assert!(import.contains("## kernel.storage.get"), "{import}");
        assert_eq!(interface_of(&entries[0]), None);
        assert_eq!(interface_of(&entries[4]), Some("viz"));
    }

    #[test]
    fn jsdoc_and_docstrings() {
        let js = "/**\n * kernel.storage.get(key) -> any\n * The value.\n *   indented\n */\nfunction f() {}\n/** not an api block */\n/** kernel.quantum.Circuit#h(q) -> Circuit  (Hadamard) */";
        let e = extract(js, "/**", "*/");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].signature, "kernel.storage.get(key) -> any");
        assert_eq!(e[0].doc, "The value.\n  indented");
        assert_eq!(
            e[1].signature,
            "kernel.quantum.Circuit#h(q) -> Circuit  (Hadamard)"
        );
        let py = "\"\"\"Module doc.\"\"\"\ndef get(k):\n    \"\"\"llmos.storage.get(key, default=None) -> object\n\n    The value.\n    \"\"\"\n";
        let e = extract(py, "\"\"\"", "\"\"\"");
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].signature,
            "llmos.storage.get(key, default=None) -> object"
        );
        assert_eq!(e[0].doc, "The value.");
        let lua = "--[[ kernel.storage.get(key, default) -> value\nThe value.\n]]\nlocal x = 1\n--[[ not api ]]";
        let e = extract(lua, "--[[", "]]");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].signature, "kernel.storage.get(key, default) -> value");
        assert_eq!(e[0].doc, "The value.");
    }
}

//! Refinement prompts, rendered from templates on the system volume
//! (`kernel/prompts/`): `system.md`, `attempt.md` and `history.md`.
//!
//! Templates hold `{{name}}` placeholders. Each template's allowed names are
//! fixed here; a template naming an unknown placeholder is an error at load
//! time, so a typo in a prompt never reaches an LLM.

use std::path::{Path, PathBuf};

use crate::error::HostError;

/// Directory of the prompt templates, relative to the system volume.
pub const PROMPTS_DIR: &str = "kernel/prompts";

/// The loaded templates.
#[derive(Debug, Clone)]
pub struct Prompts {
    system: String,
    attempt: String,
    rewrite: String,
    history: String,
}

/// Everything an attempt prompt is made of.
#[derive(Debug, Clone)]
pub struct AttemptVars<'a> {
    /// The language's name.
    pub language: &'a str,
    /// Its fence tag.
    pub fence: &'a str,
    /// The artifact's file name.
    pub filename: &'a str,
    /// This repair's number (1-based).
    pub attempt: u32,
    /// How many repairs may be tried.
    pub max_attempts: u32,
    /// The version that failed.
    pub code: &'a str,
    /// Its error report.
    pub report: &'a str,
    /// One entry per earlier failed attempt (already formatted).
    pub history: &'a [String],
    /// The kernel API reference.
    pub api: &'a str,
}

const SYSTEM_VARS: &[&str] = &["language", "fence", "idioms"];
const ATTEMPT_VARS: &[&str] = &[
    "language",
    "fence",
    "filename",
    "attempt",
    "max_attempts",
    "code",
    "report",
    "history",
    "api",
];
const HISTORY_VARS: &[&str] = &["entries"];

impl Prompts {
    /// Load and check the templates under `system_volume`.
    pub fn load(system_volume: &Path) -> Result<Prompts, HostError> {
        let dir = system_volume.join(PROMPTS_DIR);
        let read = |name: &str, vars: &[&str]| -> Result<String, HostError> {
            let path: PathBuf = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| HostError::io(&path, e))?;
            check(&text, vars).map_err(|reason| HostError::Manifest {
                path: path.clone(),
                reason,
            })?;
            Ok(text)
        };
        Ok(Prompts {
            system: read("system.md", SYSTEM_VARS)?,
            attempt: read("attempt.md", ATTEMPT_VARS)?,
            rewrite: read("rewrite.md", ATTEMPT_VARS)?,
            history: read("history.md", HISTORY_VARS)?,
        })
    }

    /// The system prompt for a language, with its idioms (from its manifest).
    pub fn system(&self, language: &str, fence: &str, idioms: &str) -> String {
        render(
            &self.system,
            &[("language", language), ("fence", fence), ("idioms", idioms)],
        )
    }

    /// The prompt of one repair attempt asking for a patch.
    pub fn attempt(&self, v: &AttemptVars<'_>) -> String {
        self.render_attempt(&self.attempt, v)
    }

    /// The prompt of one repair attempt asking for a rewrite from the
    /// artifact's intent instead of a patch.
    pub fn rewrite(&self, v: &AttemptVars<'_>) -> String {
        self.render_attempt(&self.rewrite, v)
    }

    fn render_attempt(&self, template: &str, v: &AttemptVars<'_>) -> String {
        let history = if v.history.is_empty() {
            String::new()
        } else {
            render(&self.history, &[("entries", &v.history.join("\n"))])
        };
        let attempt = v.attempt.to_string();
        let max = v.max_attempts.to_string();
        render(
            template,
            &[
                ("language", v.language),
                ("fence", v.fence),
                ("filename", v.filename),
                ("attempt", &attempt),
                ("max_attempts", &max),
                ("code", v.code.trim_end()),
                ("report", v.report.trim_end()),
                ("history", &history),
                ("api", v.api.trim_end()),
            ],
        )
    }
}

/// Every `{{name}}` in `text` must be one of `vars`.
fn check(text: &str, vars: &[&str]) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err("an unclosed `{{` placeholder".into());
        };
        let name = after[..j].trim();
        if !vars.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{{{name}}}}}` (allowed: {})",
                vars.join(", ")
            ));
        }
        rest = &after[j + 2..];
    }
    Ok(())
}

/// Replace each `{{name}}` in one pass (values are never re-scanned, so a
/// value containing `{{...}}` stays as it is).
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                let name = after[..j].trim();
                match vars.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[i..i + 2 + j + 2]),
                }
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_once_and_checks_names() {
        assert_eq!(
            render("a {{x}} b {{ y }}", &[("x", "{{y}}"), ("y", "2")]),
            "a {{y}} b 2"
        );
        assert!(check("{{x}} {{y}}", &["x", "y"]).is_ok());
        assert!(check("{{x}} {{z}}", &["x"]).is_err_and(|e| e.contains("`{{z}}`")));
        assert!(check("{{x", &["x"]).is_err());
    }

    #[test]
    fn shipped_templates_load() {
        let vol = Path::new(env!("CARGO_MANIFEST_DIR")).join("../volumes/system");
        let p = Prompts::load(&vol).expect("templates");
        let s = p.attempt(&AttemptVars {
            language: "python",
            fence: "python",
            filename: "a.py",
            attempt: 2,
            max_attempts: 3,
            code: "print(x)",
            report: "NameError at line 1",
            history: &["attempt 1: NameError".into()],
            api: "## llmos.log.info",
        });
        assert!(s.contains("```python\nprint(x)\n```"));
        assert!(s.contains("attempt 2 of 3"));
        assert!(s.contains("attempt 1: NameError"));
        assert!(!s.contains("{{"));
        assert!(
            p.system("python", "python", "").contains("```")
                || p.system("python", "python", "").contains("`python`")
        );
    }
}

//! Language manifests: which component runs which artifacts.
//!
//! Each `*.toml` in `<system volume>/languages/` declares one guest language.
//! A new language is a manifest plus a component implementing the `language`
//! world: no host change.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::HostError;

/// One language manifest (`volumes/system/languages/NAME.toml`). Everything
/// the host and the supervisor know about a language comes from here: no
/// language name is hard-coded in the host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Canonical name, e.g. `python`.
    pub name: String,
    /// Other names accepted by `--lang`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// File extensions (without the dot) that select this language.
    pub extensions: Vec<String>,
    /// Component file name, relative to the components directory.
    pub component: String,
    /// One line for `llmos languages`.
    #[serde(default)]
    pub description: String,
    /// How people write the language's name (`JavaScript`); defaults to `name`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Markdown fence tags of the language; the first one is used in repair
    /// prompts, all are accepted in answers. Defaults to `name` and aliases.
    #[serde(default)]
    pub fence: Vec<String>,
    /// Programs boot runs to check the language (`llmos boot`).
    #[serde(default)]
    pub check: Checks,
    /// Standard-library files on the system volume whose doc blocks make up
    /// the language's kernel API reference (`llmos api`).
    #[serde(default)]
    pub api: Vec<String>,
    /// How a doc block opens and closes in the `api` files, e.g.
    /// `["/**", "*/"]`; required when `api` is not empty.
    #[serde(default)]
    pub doc_block: Option<[String; 2]>,
    /// The language's idioms, told to the LLM in repair prompts.
    #[serde(default)]
    pub idioms: String,
    /// What the guest implements beyond the `language` world.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Default limits for this language's runs, where they differ from the
    /// kernel's (e.g. a slower interpreter needing more fuel).
    #[serde(default)]
    pub limits: ManifestLimits,
}

/// An optional part of the guest contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Pre-initialised at build time (`language-preinit`, an `init` export).
    Preinit,
    /// Notebook sessions (`language-session`, the `session` export).
    Sessions,
}

impl Capability {
    /// The manifest's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Preinit => "preinit",
            Capability::Sessions => "sessions",
        }
    }
}

/// Default limits a manifest may set, in the forms users write them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLimits {
    /// Fuel, e.g. `"20_000_000_000"`.
    pub fuel: Option<String>,
    /// Memory, e.g. `"256MiB"`.
    pub memory: Option<String>,
    /// Wall clock, e.g. `"20s"`.
    pub timeout: Option<String>,
}

/// Boot checks of a language: each a program and the value it must return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// A first instance is created and answers (stage "initialising language environments").
    pub instance: Option<Check>,
    /// The kernel standard library is in the snapshot (stage "loading standard library").
    pub stdlib: Option<Check>,
}

/// A program and the `value` it must return.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The program.
    pub source: String,
    /// The display of its last expression, exactly.
    pub value: String,
}

impl Manifest {
    /// The name to show people.
    pub fn display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// The fence tag used in prompts.
    pub fn fence_tag(&self) -> &str {
        self.fence.first().map(String::as_str).unwrap_or(&self.name)
    }

    /// Every fence tag an answer may use (case-insensitive).
    pub fn fence_tags(&self) -> Vec<&str> {
        let mut tags: Vec<&str> = self.fence.iter().map(String::as_str).collect();
        tags.push(&self.name);
        tags.extend(self.aliases.iter().map(String::as_str));
        tags
    }

    /// Whether the guest implements `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The file name of an artifact given without one: `artifact.<first extension>`.
    pub fn default_file_name(&self) -> String {
        format!(
            "artifact.{}",
            self.extensions.first().map(String::as_str).unwrap_or("txt")
        )
    }

    /// Parse and check a manifest read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, HostError> {
        let m: Manifest = toml::from_str(text).map_err(|e| HostError::Manifest {
            path: path.to_owned(),
            reason: e.message().to_string(),
        })?;
        let bad = |reason: &str| HostError::Manifest {
            path: path.to_owned(),
            reason: reason.into(),
        };
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !ident(&m.name) || !m.aliases.iter().all(|a| ident(a)) {
            return Err(bad("names and aliases must be non-empty [A-Za-z0-9_-]"));
        }
        if std::iter::once(&m.name)
            .chain(&m.aliases)
            .any(|n| n.eq_ignore_ascii_case(crate::component::LANGUAGE))
            || m.extensions
                .iter()
                .any(|e| e.eq_ignore_ascii_case(crate::component::EXTENSION))
        {
            return Err(bad(
                "`component` and `.wasm` are reserved for component artifacts",
            ));
        }
        if m.extensions.is_empty() || !m.extensions.iter().all(|e| ident(e)) {
            return Err(bad(
                "extensions must be a non-empty list of bare extensions like \"py\"",
            ));
        }
        if m.component.is_empty()
            || m.component.contains(['/', '\\'])
            || m.component.starts_with('.')
        {
            return Err(bad(
                "component must be a plain file name in the components directory",
            ));
        }
        if !m.api.is_empty() {
            match &m.doc_block {
                Some([open, close]) if !open.trim().is_empty() && !close.trim().is_empty() => {}
                _ => {
                    return Err(bad(
                        "a language with `api` files needs `doc_block = [OPEN, CLOSE]`, e.g. [\"/**\", \"*/\"]",
                    ));
                }
            }
        }
        for (key, v) in [
            ("fuel", &m.limits.fuel),
            ("memory", &m.limits.memory),
            ("timeout", &m.limits.timeout),
        ] {
            if let Some(v) = v {
                let ok = match key {
                    "fuel" => crate::facade::parse_fuel(v).is_ok_and(|f| f.is_some()),
                    "memory" => crate::limits::parse_size(v).is_ok(),
                    _ => crate::limits::parse_duration(v).is_ok(),
                };
                if !ok {
                    return Err(bad(&format!(
                        "limits.{key} `{v}` is not a valid {key} limit"
                    )));
                }
            }
        }
        Ok(m)
    }

    fn answers_to(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// All languages known to this kernel.
#[derive(Debug, Clone, Default)]
pub struct Languages {
    list: Vec<Manifest>,
}

impl Languages {
    /// Load every manifest in `dir`, in name order. Duplicate names, aliases
    /// or extensions are errors naming the second manifest.
    pub fn load(dir: &Path) -> Result<Self, HostError> {
        let entries = std::fs::read_dir(dir).map_err(|e| HostError::io(dir, e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut langs = Languages::default();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| HostError::io(&path, e))?;
            langs.add(Manifest::parse(&text, &path)?, &path)?;
        }
        Ok(langs)
    }

    /// Add a manifest read from `path`, refusing name, alias or extension clashes.
    pub fn add(&mut self, m: Manifest, path: &Path) -> Result<(), HostError> {
        for other in &self.list {
            let clash = std::iter::once(&m.name)
                .chain(&m.aliases)
                .find(|n| other.answers_to(n));
            let ext = m.extensions.iter().find(|e| other.extensions.contains(e));
            if let Some(what) = clash
                .map(|n| format!("name `{n}`"))
                .or(ext.map(|e| format!("extension `.{e}`")))
            {
                return Err(HostError::Manifest {
                    path: path.to_owned(),
                    reason: format!("{what} is already claimed by language `{}`", other.name),
                });
            }
        }
        self.list.push(m);
        Ok(())
    }

    /// Every language, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Manifest> {
        self.list.iter()
    }

    fn known(&self) -> String {
        self.list
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Find a language by name or alias.
    pub fn by_name(&self, name: &str) -> Result<&Manifest, HostError> {
        self.list
            .iter()
            .find(|m| m.answers_to(name))
            .ok_or_else(|| HostError::UnknownLanguage {
                name: name.into(),
                known: self.known(),
            })
    }

    /// Find a language by a file's extension.
    pub fn for_path(&self, path: &Path) -> Result<&Manifest, HostError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        self.list
            .iter()
            .find(|m| m.extensions.iter().any(|e| e.eq_ignore_ascii_case(ext)))
            .ok_or_else(|| HostError::UndetectedLanguage {
                path: path.to_owned(),
                known: self.known(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, HostError> {
        Manifest::parse(text, Path::new("t.toml"))
    }

    #[test]
    fn valid_and_invalid_manifests() {
        let ok = parse("name = \"lua\"\nextensions = [\"lua\"]\ncomponent = \"lua.wasm\"\n");
        assert!(ok.is_ok());
        assert!(
            parse("name = \"lua\"\nextensions = [\"lua\"]\ncomponent = \"lua.wasm\"\ncolour = 1\n")
                .is_err_and(|e| e.to_string().contains("colour"))
        );
        assert!(parse("name = \"lua\"\nextensions = []\ncomponent = \"lua.wasm\"\n").is_err());
        assert!(
            parse("name = \"lua\"\nextensions = [\"lua\"]\ncomponent = \"../x.wasm\"\n").is_err()
        );
        assert!(parse("name = \"\"\nextensions = [\"lua\"]\ncomponent = \"x.wasm\"\n").is_err());
    }

    #[test]
    fn lookup_and_clashes() {
        let mut l = Languages::default();
        let p = Path::new("x.toml");
        let m = |n: &str, e: &str| Manifest {
            name: n.into(),
            aliases: vec![],
            extensions: vec![e.into()],
            component: format!("{n}.wasm"),
            description: String::new(),
            api: vec![],
            display_name: None,
            fence: vec![],
            check: Checks::default(),
            doc_block: None,
            idioms: String::new(),
            capabilities: vec![],
            limits: ManifestLimits::default(),
        };
        assert!(l.add(m("python", "py"), p).is_ok());
        assert!(l.add(m("ruby", "rb"), p).is_ok());
        assert!(l.add(m("snake", "py"), p).is_err());
        assert!(l.add(m("PYTHON", "pyx"), p).is_err());
        assert_eq!(
            l.by_name("Ruby").map(|m| m.name.as_str()).ok(),
            Some("ruby")
        );
        assert_eq!(
            l.for_path(Path::new("a/b.PY"))
                .map(|m| m.name.as_str())
                .ok(),
            Some("python")
        );
        assert!(l.for_path(Path::new("a/b.txt")).is_err());
        assert!(l.by_name("cobol").is_err());
    }
}

//! The configuration file, `llmos.toml`: default limits, the data
//! directory, the LLM provider and volume locations.
//!
//! Found at `--config PATH`, else `$LLMOS_CONFIG`, else
//! `<user config dir>/llmos/llmos.toml` (optional there). Unknown keys are
//! errors that name the key. Precedence everywhere: command-line flags,
//! then environment variables, then this file, then built-in defaults.
//! Relative paths are relative to the file's directory.
//!
//! ```toml
//! data_dir = "~/llmos-data"
//! [limits]            # defaults for sandboxed runs
//! fuel = 10000000000  # or "none"
//! memory = "128MiB"
//! timeout = "10s"
//! output = "1MiB"
//! [llm]
//! provider = "openai"
//! url = "http://127.0.0.1:11434/v1"
//! model = "qwen2.5-coder"
//! [volumes]
//! system = "/opt/llmos/volumes/system"
//! components = "/opt/llmos/components"
//! cache = "/var/cache/llmos"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::HostError;
use crate::limits::{self, Limits};

/// The parsed `llmos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The user data directory (storage, outputs, `user:/` artifacts).
    pub data_dir: Option<PathBuf>,
    /// Default limits of sandboxed runs.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The LLM provider for `--fix`.
    #[serde(default)]
    pub llm: LlmSection,
    /// Where the system volume, components and cache are.
    #[serde(default)]
    pub volumes: VolumesConfig,
    /// Where the file was read from (not a key).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// The `[limits]` section: defaults for sandboxed runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// A number of fuel units, or "none".
    pub fuel: Option<toml::Value>,
    /// Linear memory, e.g. `"128MiB"`.
    pub memory: Option<String>,
    /// Wall clock, e.g. `"10s"`.
    pub timeout: Option<String>,
    /// Captured bytes per stream, e.g. `"1MiB"`.
    pub output: Option<String>,
}

/// The `[llm]` section (environment variables and flags win over it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSection {
    /// `openai` or `anthropic`.
    pub provider: Option<String>,
    /// API base URL.
    pub url: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Seconds.
    pub timeout: Option<u64>,
}

/// The `[volumes]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumesConfig {
    /// The system volume directory.
    pub system: Option<PathBuf>,
    /// The guest components directory.
    pub components: Option<PathBuf>,
    /// The precompiled-component cache directory.
    pub cache: Option<PathBuf>,
}

/// The default location of the configuration file.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("llmos").join("llmos.toml"))
}

impl Config {
    /// Load the file named by `explicit` (must exist), else `$LLMOS_CONFIG`
    /// (must exist), else the default location (may be absent).
    pub fn load(explicit: Option<&Path>) -> Result<Config, HostError> {
        let env = std::env::var_os("LLMOS_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let (path, required) = match (explicit, env) {
            (Some(p), _) => (p.to_path_buf(), true),
            (None, Some(p)) => (p, true),
            (None, None) => match default_path() {
                Some(p) => (p, false),
                None => return Ok(Config::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default());
            }
            Err(e) => return Err(HostError::io(&path, e)),
        };
        Config::parse(&text, &path)
    }

    /// Parse `text` (read from `path`).
    pub fn parse(text: &str, path: &Path) -> Result<Config, HostError> {
        let mut c: Config = toml::from_str(text).map_err(|e| HostError::Config {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(x) = p {
                let s = x.to_string_lossy();
                if let (Some(rest), Some(home)) = (s.strip_prefix("~/"), dirs::home_dir()) {
                    *x = home.join(rest);
                } else if x.is_relative() {
                    *x = base.join(&*x);
                }
            }
        };
        fix(&mut c.data_dir);
        fix(&mut c.volumes.system);
        fix(&mut c.volumes.components);
        fix(&mut c.volumes.cache);
        c.path = Some(path.to_path_buf());
        // Check the limits now, so a bad value is reported at boot.
        c.limits(Limits::default())?;
        Ok(c)
    }

    fn bad(&self, reason: String) -> HostError {
        HostError::Config {
            path: self.path.clone().unwrap_or_default(),
            reason,
        }
    }

    /// `base` with the file's `[limits]` applied.
    pub fn limits(&self, mut base: Limits) -> Result<Limits, HostError> {
        let l = &self.limits;
        if let Some(f) = &l.fuel {
            base.fuel = match f {
                toml::Value::Integer(n) if *n > 0 => Some(*n as u64),
                toml::Value::String(s) if s.eq_ignore_ascii_case("none") => None,
                other => {
                    return Err(self.bad(format!(
                        "limits.fuel must be a positive number or \"none\", not {other}"
                    )));
                }
            };
        }
        if let Some(m) = &l.memory {
            base.memory_bytes =
                limits::parse_size(m).map_err(|e| self.bad(format!("limits.memory: {e}")))?;
        }
        if let Some(t) = &l.timeout {
            base.timeout =
                limits::parse_duration(t).map_err(|e| self.bad(format!("limits.timeout: {e}")))?;
        }
        if let Some(o) = &l.output {
            let n = limits::parse_size(o).map_err(|e| self.bad(format!("limits.output: {e}")))?;
            base.output_bytes =
                usize::try_from(n).map_err(|_| self.bad("limits.output is too large".into()))?;
        }
        base.validate().map_err(|e| self.bad(e.to_string()))?;
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_unknown_keys() {
        let p = Path::new("/etc/llmos/llmos.toml");
        let c = Config::parse(
            "data_dir = \"data\"\n[limits]\nfuel = \"none\"\nmemory = \"64MiB\"\n[llm]\nprovider = \"openai\"\n",
            p,
        )
        .expect("config");
        assert_eq!(c.data_dir, Some(PathBuf::from("/etc/llmos/data")));
        let l = c.limits(Limits::default()).expect("limits");
        assert_eq!((l.fuel, l.memory_bytes), (None, 64 << 20));
        let e = Config::parse("[limits]\nfuels = 3\n", p)
            .expect_err("unknown key")
            .to_string();
        assert!(
            e.contains("fuels") && e.contains("/etc/llmos/llmos.toml"),
            "{e}"
        );
        let e = Config::parse("colour = 1\n", p)
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = Config::parse("[limits]\nmemory = \"lots\"\n", p)
            .expect_err("bad")
            .to_string();
        assert!(e.contains("limits.memory"), "{e}");
    }
}

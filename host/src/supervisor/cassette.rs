//! A cassette: LLM answers recorded once and replayed, so the repair loop
//! runs offline and deterministically (`make eval-fix` without a network,
//! tests of the whole loop).
//!
//! A [`Cassette`] is a [`FixProvider`]. It keys each request by a
//! fingerprint of its system prompt and messages. What measures the host,
//! not the artifact, is left out of the key: the `resources:` line of an
//! error report, with its milliseconds. A recorded answer is served as it
//! was received. A request the cassette does not hold goes to the live
//! provider, when there is one (recording mode): its answer is appended to
//! the file as one JSON line and synced. With no live provider, such a
//! request is a typed [`LlmError::Config`] naming the fingerprint.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::llm::{ChatRequest, ChatResponse, FixProvider, LlmError, Usage};

/// One recorded answer (one line of the cassette file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The request's fingerprint ([`fingerprint`]).
    pub fingerprint: String,
    /// The answer's text.
    pub text: String,
    /// Its token counts.
    #[serde(default)]
    pub usage: Usage,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
}

/// Recorded answers, and a live provider for the rest (when recording).
pub struct Cassette {
    path: PathBuf,
    entries: Mutex<HashMap<String, Entry>>,
    live: Option<Box<dyn FixProvider>>,
    model: String,
}

/// The fingerprint of a request: its system prompt and messages, without
/// the lines that measure the host (`resources: ...`).
pub fn fingerprint(req: &ChatRequest) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut part = |text: &str| {
        for line in text.lines() {
            if line.trim_start().starts_with("resources:") {
                continue;
            }
            h.update(line.as_bytes());
            h.update(b"\n");
        }
        h.update(b"\0");
    };
    part(&req.system);
    for m in &req.messages {
        part(&format!("{:?}", m.role));
        part(&m.content);
    }
    format!("{:032x}", h.digest128())
}

impl Cassette {
    /// The cassette at `path` (created when recording), with `live` asked
    /// for what it does not hold; `None` replays only.
    pub fn open(path: &Path, live: Option<Box<dyn FixProvider>>) -> Result<Cassette, LlmError> {
        let mut entries = HashMap::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let e: Entry = serde_json::from_str(line).map_err(|e| {
                        LlmError::Config(format!(
                            "cassette {}:{}: not a recorded answer: {e}",
                            path.display(),
                            n + 1
                        ))
                    })?;
                    entries.insert(e.fingerprint.clone(), e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && live.is_some() => {}
            Err(e) => {
                return Err(LlmError::Config(format!(
                    "cannot read the cassette {}: {e}",
                    path.display()
                )));
            }
        }
        let model = live
            .as_ref()
            .map(|l| l.model().to_string())
            .or_else(|| entries.values().next().map(|e| e.model.clone()))
            .unwrap_or_else(|| "cassette".into());
        Ok(Cassette {
            path: path.to_path_buf(),
            entries: Mutex::new(entries),
            live,
            model,
        })
    }

    /// Answers recorded so far.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether it holds no answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record(&self, e: &Entry) -> Result<(), LlmError> {
        let line = serde_json::to_string(e).map_err(|x| LlmError::Config(x.to_string()))?;
        let io = |x: std::io::Error| {
            LlmError::Config(format!(
                "cannot write the cassette {}: {x}",
                self.path.display()
            ))
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl FixProvider for Cassette {
    fn provider(&self) -> &str {
        match &self.live {
            Some(l) => l.provider(),
            None => "cassette",
        }
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let fp = fingerprint(req);
        let recorded = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fp)
            .cloned();
        if let Some(e) = recorded {
            return Ok(ChatResponse {
                raw: e.text.clone(),
                text: e.text,
                usage: e.usage,
                model: e.model,
                http_attempts: 0,
                duration_ms: 0.0,
            });
        }
        let Some(live) = &self.live else {
            return Err(LlmError::Config(format!(
                "the cassette {} has no answer for this request (fingerprint {fp}); record one with a live provider",
                self.path.display()
            )));
        };
        let answer = live.complete(req).await?;
        let e = Entry {
            fingerprint: fp.clone(),
            text: answer.text.clone(),
            usage: answer.usage,
            model: answer.model.clone(),
        };
        self.record(&e)?;
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fp, e);
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::llm::{Message, Role};

    fn req(report: &str) -> ChatRequest {
        ChatRequest {
            system: "sys".into(),
            messages: vec![Message {
                role: Role::User,
                content: report.into(),
            }],
            max_tokens: 10,
            temperature: None,
        }
    }

    struct Echo;

    #[async_trait::async_trait]
    impl FixProvider for Echo {
        fn provider(&self) -> &str {
            "echo"
        }
        fn model(&self) -> &str {
            "echo-1"
        }
        async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
            Ok(ChatResponse {
                text: format!(
                    "answer to {}",
                    req.messages[0].content.lines().next().unwrap_or("")
                ),
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 4,
                },
                model: "echo-1".into(),
                raw: String::new(),
                http_attempts: 1,
                duration_ms: 1.0,
            })
        }
    }

    #[test]
    fn records_then_replays_offline_ignoring_host_timings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.jsonl");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let rec = Cassette::open(&path, Some(Box::new(Echo))).expect("open");
        let a = rt
            .block_on(rec.complete(&req("bug A\nresources: fuel 1, 3.2 ms")))
            .expect("live");
        assert_eq!(a.text, "answer to bug A");
        let play = Cassette::open(&path, None).expect("replay");
        assert_eq!(play.len(), 1);
        let b = rt
            .block_on(play.complete(&req("bug A\nresources: fuel 1, 9.9 ms")))
            .expect("replayed");
        assert_eq!(b.text, a.text);
        assert_eq!(b.usage.output_tokens, 4);
        let miss = rt.block_on(play.complete(&req("bug B")));
        assert!(matches!(miss, Err(LlmError::Config(m)) if m.contains("no answer")));
        std::fs::write(&path, "not json\n").expect("write");
        assert!(Cassette::open(&path, None).is_err());
        assert!(Cassette::open(&dir.path().join("none.jsonl"), None).is_err());
    }
}

//! Getting the corrected code out of an LLM's answer.
//!
//! Answers usually hold the code in a fenced Markdown block, often with
//! prose around it, sometimes several blocks. The block in the artifact's
//! language wins (the longest, if several); untagged blocks come next; a
//! block tagged with another language is never run. An answer without a
//! block, an empty one, the unchanged artifact, or a version that already
//! failed is rejected without running it.

use serde::{Deserialize, Serialize};

/// Why an answer was not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[allow(missing_docs)] // variant fields are named for what they hold
pub enum Rejection {
    /// The answer is empty.
    #[error("the answer was empty")]
    Empty,
    /// The answer has no fenced code block.
    #[error("the answer has no fenced code block")]
    NoCode,
    /// Every block is in another language.
    #[error("the answer's code is in another language ({tag}), not {language}")]
    WrongLanguage { tag: String, language: String },
    /// The chosen block is empty.
    #[error("the answer's code block is empty")]
    EmptyCode,
    /// The code is the version that just failed.
    #[error("the answer repeats the failing artifact unchanged")]
    Unchanged,
    /// The code repeats an earlier failed version.
    #[error("the answer repeats version {version}, which already failed")]
    Repeat { version: usize },
}

/// Fence tags of well-known languages: a block tagged with one of these that
/// is not among the artifact's own tags is certainly not the artifact's.
const OTHER_LANGUAGES: &[&str] = &[
    "javascript",
    "js",
    "mjs",
    "cjs",
    "node",
    "jsx",
    "typescript",
    "ts",
    "tsx",
    "python",
    "py",
    "python3",
    "ruby",
    "rb",
    "go",
    "rust",
    "rs",
    "java",
    "c",
    "cpp",
    "c++",
    "csharp",
    "cs",
    "php",
    "bash",
    "sh",
    "shell",
    "zsh",
    "powershell",
    "sql",
    "kotlin",
    "swift",
    "lua",
    "perl",
    "r",
    "html",
    "css",
];

/// One fenced block: its info-string tag (lower case, may be empty) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The info string's first word, lower case (may be empty).
    pub tag: String,
    /// The code inside the fence.
    pub body: String,
}

/// Every fenced block (``` or ~~~, up to three spaces of indent); an
/// unclosed last fence runs to the end of the text.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, char, Vec<&str>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let fence = |t: &str| -> Option<(char, usize)> {
            let c = t.chars().next()?;
            if c != '`' && c != '~' {
                return None;
            }
            let n = t.chars().take_while(|&x| x == c).count();
            (n >= 3).then_some((c, n))
        };
        match &mut open {
            None => {
                if indent <= 3
                    && let Some((c, n)) = fence(trimmed)
                {
                    let info = trimmed[n..].trim();
                    let tag = info
                        .split(|ch: char| ch.is_whitespace() || ch == '{' || ch == ',')
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    open = Some((tag, n, c, Vec::new()));
                }
            }
            Some((tag, n, c, body)) => {
                let closes = indent <= 3
                    && fence(trimmed).is_some_and(|(fc, fnn)| fc == *c && fnn >= *n)
                    && trimmed.trim_start_matches(*c).trim().is_empty();
                if closes {
                    out.push(Block {
                        tag: std::mem::take(tag),
                        body: body.join("\n"),
                    });
                    open = None;
                } else {
                    body.push(line);
                }
            }
        }
    }
    if let Some((tag, _, _, body)) = open {
        out.push(Block {
            tag,
            body: body.join("\n"),
        });
    }
    out
}

/// Normalise code for comparison and running: no trailing spaces, one
/// final newline, no leading blank lines.
pub fn normalize(code: &str) -> String {
    let lines: Vec<&str> = code.lines().map(str::trim_end).collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |e| e + 1);
    let mut s = lines[start..end].join("\n");
    s.push('\n');
    s
}

/// The corrected code in `answer` for an artifact in `language`, whose
/// fence tags (from its manifest) are `tags`, checked against `current` (the
/// version that just failed) and the versions that failed before it
/// (`failed`, oldest first, 1-based in messages).
pub fn extract(
    answer: &str,
    language: &str,
    tags: &[&str],
    current: &str,
    failed: &[String],
) -> Result<String, Rejection> {
    if answer.trim().is_empty() {
        return Err(Rejection::Empty);
    }
    let all = blocks(answer);
    if all.is_empty() {
        return Err(Rejection::NoCode);
    }
    let ours: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
    let ours = |tag: &str| ours.iter().any(|t| t == tag);
    let longest = |v: Vec<&Block>| v.into_iter().max_by_key(|b| b.body.trim().len()).cloned();
    let in_language: Vec<&Block> = all.iter().filter(|b| ours(&b.tag)).collect();
    let chosen = if !in_language.is_empty() {
        longest(in_language)
    } else {
        let neutral: Vec<&Block> = all
            .iter()
            .filter(|b| ours(&b.tag) || !OTHER_LANGUAGES.contains(&b.tag.as_str()))
            .collect();
        if neutral.is_empty() {
            return Err(Rejection::WrongLanguage {
                tag: all[0].tag.clone(),
                language: language.to_string(),
            });
        }
        longest(neutral)
    };
    let Some(block) = chosen else {
        return Err(Rejection::NoCode);
    };
    if block.body.trim().is_empty() {
        return Err(Rejection::EmptyCode);
    }
    let code = normalize(&block.body);
    if code == normalize(current) {
        return Err(Rejection::Unchanged);
    }
    if let Some(i) = failed.iter().position(|f| normalize(f) == code) {
        return Err(Rejection::Repeat { version: i + 1 });
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `extract` with the fence tags of the shipped manifests.
    fn ex(
        answer: &str,
        language: &str,
        current: &str,
        failed: &[String],
    ) -> Result<String, Rejection> {
        let tags: &[&str] = match language {
            "javascript" => &[
                "js",
                "javascript",
                "jsx",
                "mjs",
                "cjs",
                "node",
                "nodejs",
                "ecmascript",
            ],
            "python" => &["python", "py", "python3", "py3"],
            _ => &[],
        };
        extract(answer, language, tags, current, failed)
    }

    #[test]
    fn fenced_with_and_without_tags_and_prose() {
        let a = "Here is the fix:\n\n```js\nconsole.log(1);\n```\n\nIt logs 1.";
        assert_eq!(
            ex(a, "javascript", "x", &[]),
            Ok("console.log(1);\n".into())
        );
        let a = "```\nprint(1)\n```";
        assert_eq!(ex(a, "python", "x", &[]), Ok("print(1)\n".into()));
        let a = "~~~python\nprint(2)\n~~~";
        assert_eq!(ex(a, "python", "x", &[]), Ok("print(2)\n".into()));
        // Unclosed fence: to the end.
        let a = "```python\nprint(3)\n";
        assert_eq!(ex(a, "python", "x", &[]), Ok("print(3)\n".into()));
        // A longer fence can contain a shorter one.
        let a = "````python\ns = '''\n```\n'''\nprint(s)\n````";
        assert_eq!(
            ex(a, "python", "x", &[]),
            Ok("s = '''\n```\n'''\nprint(s)\n".into())
        );
    }

    #[test]
    fn several_blocks_prefer_the_language_then_the_longest() {
        let a = "```bash\nnode x.js\n```\n```js\nlet a = 1;\nconsole.log(a);\n```\n```js\n1\n```";
        assert_eq!(
            ex(a, "javascript", "x", &[]),
            Ok("let a = 1;\nconsole.log(a);\n".into())
        );
        let a = "```\nshort\n```\n```text\nmuch longer text\n```";
        assert_eq!(ex(a, "python", "x", &[]), Ok("much longer text\n".into()));
    }

    #[test]
    fn rejections() {
        assert_eq!(ex("  \n", "python", "x", &[]), Err(Rejection::Empty));
        assert_eq!(ex("print(1)", "python", "x", &[]), Err(Rejection::NoCode));
        assert!(matches!(
            ex("```python\nprint(1)\n```", "javascript", "x", &[]),
            Err(Rejection::WrongLanguage { .. })
        ));
        assert_eq!(
            ex("```py\n\n```", "python", "x", &[]),
            Err(Rejection::EmptyCode)
        );
        assert_eq!(
            ex("```py\nprint(1)   \n```", "python", "print(1)\n", &[]),
            Err(Rejection::Unchanged)
        );
        assert_eq!(
            ex(
                "```py\nprint(0)\n```",
                "python",
                "print(1)\n",
                &["print(0)".into(), "x".into()]
            ),
            Err(Rejection::Repeat { version: 1 })
        );
    }
}

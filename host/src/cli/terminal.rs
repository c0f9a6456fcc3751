//! Guest text on the user's terminal.
//!
//! Everything an artifact produced (its output, values, error messages, log
//! records, output summaries) is data: before it reaches a terminal, control
//! characters (ESC and the rest of C0 and C1, DEL) are replaced by visible
//! escapes, so a hostile artifact cannot move the cursor, retitle the window,
//! hide text or inject OSC 52 clipboard writes. Newlines and tabs stay in
//! multi-line text ([`clean`]); one-line fields ([`line`]) escape them too
//! and are clipped.

use std::fmt::Write;

/// Most bytes of a one-line field shown.
const MAX_LINE_BYTES: usize = 1000;

fn push_escaped(out: &mut String, c: char) {
    let _ = write!(out, "\\u{{{:x}}}", c as u32);
}

fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Multi-line guest text with every control character but `\n` and `\t`
/// escaped.
pub fn clean(text: &str) -> String {
    if !text
        .chars()
        .any(|c| is_control(c) && c != '\n' && c != '\t')
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_control(c) && c != '\n' && c != '\t' {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// One-line guest text: every control character escaped, clipped to
/// [`MAX_LINE_BYTES`].
pub fn line(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= MAX_LINE_BYTES {
            out.push('…');
            break;
        }
        if is_control(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_sequences() {
        assert_eq!(clean("a\x1b[2Jb\nc\td"), "a\\u{1b}[2Jb\nc\td");
        assert_eq!(clean("\x1b]52;c;aGk=\x07"), "\\u{1b}]52;c;aGk=\\u{7}");
        assert_eq!(line("x\ny\u{9b}z"), "x\\u{a}y\\u{9b}z");
        assert_eq!(line("\u{202e}evil"), "\\u{202e}evil");
        assert!(line(&"x".repeat(1 << 20)).len() < MAX_LINE_BYTES + 8);
        assert_eq!(clean("plain"), "plain");
    }
}

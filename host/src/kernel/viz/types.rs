//! Types shared by every part of the viz engine: limits, errors and the
//! rendered output.
//!
//! The variants of [`VizError`] map 1:1 onto the WIT `error-code` enum of
//! `llmos:kernel/viz` (see [`VizError::code`]). Messages are written for the
//! author of the artifact: they say what was wrong and what is allowed.
//!
//! Guest JSON documents are read into [`JVal`], an order-preserving JSON
//! value: `serde_json::Value` sorts object keys (the host does not enable
//! `preserve_order`), but a chart's series must appear in the order the
//! guest wrote them, and duplicate keys should be reported rather than
//! silently merged. [`parse_json`] checks the byte size against the
//! caller's limit first and counts values as it goes (so memory stays
//! proportional to what the caller accepts); `serde_json`'s recursion limit
//! (128) bounds nesting.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Size bounds for everything the viz engine accepts from a guest.
///
/// There is no `Default`: the values live in `host/src/limits.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VizLimits {
    /// Largest width or height of a chart or canvas, in pixels (e.g. 2000).
    pub max_canvas_side: u32,
    /// Most data points in one chart (summed over series), most histogram
    /// bins, and most path points recorded on one canvas.
    pub max_points: usize,
    /// Most drawing operations recorded on one canvas.
    pub max_ops: usize,
    /// Most bytes of text drawn on one canvas (summed over `text` calls).
    pub max_text_bytes: usize,
    /// Most items in one 3D scene: objects + vertices + faces + points.
    pub max_scene_items: usize,
    /// Largest `data`, `options` or scene JSON document, in bytes.
    pub max_json_bytes: usize,
    /// Most estimated rasterization work for one picture (a chart, or a
    /// canvas's operations), in pixel units: filled area + 40 × stroke
    /// length + stroke area + 1500 per shape + 2000 per text character
    /// (see `render::DrawCost`). About 3e8 units take one second to render
    /// on a 2-core machine; this bounds how long one `plot` or `show` can
    /// hold the host.
    pub max_draw_cost: u64,
}

/// The WIT `error-code` of a [`VizError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VizErrorCode {
    /// `invalid-data`: chart data of an unsupported shape, or a bad scene.
    InvalidData,
    /// `invalid-options`: an unknown option or an option of the wrong type.
    InvalidOptions,
    /// `invalid-argument`: a non-finite coordinate, an unknown colour...
    InvalidArgument,
    /// `too-large`: past a size bound.
    TooLarge,
}

/// Why a viz call failed, with a message for the artifact's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VizError {
    /// Chart data of an unsupported shape, or a scene that does not validate.
    #[error("{0}")]
    InvalidData(String),
    /// An unknown chart option, or an option of the wrong type or range.
    #[error("{0}")]
    InvalidOptions(String),
    /// A bad canvas argument: a non-finite number, a bad colour, a size out
    /// of range.
    #[error("{0}")]
    InvalidArgument(String),
    /// Past a size bound: canvas side, points, operations, text, scene items
    /// or JSON bytes.
    #[error("{0}")]
    TooLarge(String),
    /// The run's fuel or deadline ran out during host work: not a guest
    /// error but a trap (the binding turns it into `Trap::OutOfFuel` or
    /// `Trap::Interrupt`).
    #[error("the run's {0:?} budget ran out during host work")]
    Limit(crate::meter::HostLimit),
}

impl From<crate::meter::HostLimit> for VizError {
    fn from(l: crate::meter::HostLimit) -> Self {
        VizError::Limit(l)
    }
}

impl From<crate::meter::HostMemoryExceeded> for VizError {
    /// Past the run's host-memory budget: `too-large`, catchable.
    fn from(e: crate::meter::HostMemoryExceeded) -> Self {
        VizError::TooLarge(e.to_string())
    }
}

impl VizError {
    /// The WIT error code this error maps to.
    pub fn code(&self) -> VizErrorCode {
        match self {
            VizError::InvalidData(_) => VizErrorCode::InvalidData,
            VizError::InvalidOptions(_) => VizErrorCode::InvalidOptions,
            VizError::InvalidArgument(_) => VizErrorCode::InvalidArgument,
            VizError::TooLarge(_) | VizError::Limit(_) => VizErrorCode::TooLarge,
        }
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        match self {
            VizError::InvalidData(m)
            | VizError::InvalidOptions(m)
            | VizError::InvalidArgument(m)
            | VizError::TooLarge(m) => m,
            VizError::Limit(_) => "the run's budget ran out during host work",
        }
    }
}

/// A rendered picture: the SVG and a PNG rasterized from that same SVG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The SVG document (UTF-8, standalone, no external references).
    pub svg: String,
    /// The PNG encoding of the same picture, `width` x `height` pixels.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// A one-line plain-text description, e.g.
    /// `line chart "Temps": 2 series, 200 points`.
    pub summary: String,
}

/// Shorten `s` to at most `max_chars` characters for use inside an error
/// message or summary, adding `…` when cut.
pub fn clip_for_message(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max_chars {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

/// `s` as a quoted, escaped string for an error message or summary, cut to
/// at most 60 characters.
pub fn quote_for_message(s: &str) -> String {
    format!("{:?}", clip_for_message(s, 60))
}

/// A parsed JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum JVal {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any number (JSON cannot carry NaN or infinities; integers beyond
    /// 2^53 lose precision).
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<JVal>),
    /// An object, keys in document order (duplicates kept).
    Obj(Vec<(String, JVal)>),
}

impl JVal {
    /// A short description of the value for error messages: numbers and
    /// strings verbatim (clipped), containers by kind.
    pub fn describe(&self) -> String {
        match self {
            JVal::Null => "null".into(),
            JVal::Bool(b) => b.to_string(),
            JVal::Num(n) => n.to_string(),
            JVal::Str(s) => quote_for_message(s),
            JVal::Arr(a) => format!("an array of {} element(s)", a.len()),
            JVal::Obj(_) => "an object".into(),
        }
    }

    /// The value as a number, if it is one.
    pub fn as_num(&self) -> Option<f64> {
        match self {
            JVal::Num(n) => Some(*n),
            _ => None,
        }
    }
}

/// The first key that appears twice in `entries`, if any.
pub fn duplicate_key(entries: &[(String, JVal)]) -> Option<&str> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    entries
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !seen.insert(*k))
}

/// Why a document could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Longer than the limit: (actual bytes, limit).
    TooLarge(usize, usize),
    /// More JSON values (numbers, strings, arrays, ...) than the limit given.
    TooManyValues(usize),
    /// Not valid JSON; the message includes line and column.
    Syntax(String),
}

/// Parse `text` as JSON after checking it is at most `max_bytes` long, and
/// stop as soon as it holds more than `max_values` values (every number,
/// string, bool, null, array and object counts one; keys do not). The
/// value bound caps memory: a parsed value takes about 32 bytes however
/// short its JSON text is (`0,` is two bytes).
pub fn parse_json(text: &str, max_bytes: usize, max_values: usize) -> Result<JVal, ParseError> {
    if text.len() > max_bytes {
        return Err(ParseError::TooLarge(text.len(), max_bytes));
    }
    let left = Cell::new(max_values);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Seed { left: &left }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| {
        if left.get() == 0 && e.to_string().starts_with(TOO_MANY) {
            ParseError::TooManyValues(max_values)
        } else {
            ParseError::Syntax(e.to_string())
        }
    })
}

const TOO_MANY: &str = "too many JSON values";

/// Builds a [`JVal`], counting values against a shared budget.
#[derive(Clone, Copy)]
struct Seed<'a> {
    left: &'a Cell<usize>,
}

impl Seed<'_> {
    fn take<E: de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(n) => {
                self.left.set(n);
                Ok(())
            }
            None => Err(E::custom(TOO_MANY)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = JVal;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<JVal, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = JVal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<JVal, E> {
        self.take()?;
        Ok(JVal::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<JVal, E> {
        self.take()?;
        Ok(JVal::Num(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<JVal, E> {
        self.take()?;
        Ok(JVal::Num(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JVal, E> {
        self.take()?;
        if v.is_finite() {
            Ok(JVal::Num(v))
        } else {
            Err(E::custom("number is not finite"))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<JVal, E> {
        self.take()?;
        Ok(JVal::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<JVal, E> {
        self.take()?;
        Ok(JVal::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JVal, E> {
        self.take()?;
        Ok(JVal::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JVal, A::Error> {
        self.take()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(JVal::Arr(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JVal, A::Error> {
        self.take()?;
        let mut out = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            out.push((k, v));
        }
        Ok(JVal::Obj(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_one_to_one() {
        assert_eq!(
            VizError::InvalidData("a".into()).code(),
            VizErrorCode::InvalidData
        );
        assert_eq!(
            VizError::InvalidOptions("a".into()).code(),
            VizErrorCode::InvalidOptions
        );
        assert_eq!(
            VizError::InvalidArgument("a".into()).code(),
            VizErrorCode::InvalidArgument
        );
        assert_eq!(
            VizError::TooLarge("big".into()).code(),
            VizErrorCode::TooLarge
        );
        assert_eq!(VizError::TooLarge("big".into()).message(), "big");
        assert_eq!(VizError::TooLarge("big".into()).to_string(), "big");
    }

    #[test]
    fn clipping_messages() {
        assert_eq!(clip_for_message("abcdef", 3), "abc…");
        assert_eq!(clip_for_message("abc", 3), "abc");
        assert_eq!(quote_for_message("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn keeps_order_and_duplicates() {
        let v = parse_json(r#"{"b": 1, "a": [true, null, "x"], "b": 2.5}"#, 1000, 100).unwrap();
        let JVal::Obj(entries) = &v else {
            panic!("{v:?}")
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        assert_eq!(duplicate_key(entries), Some("b"));
        assert_eq!(
            entries[1].1,
            JVal::Arr(vec![JVal::Bool(true), JVal::Null, JVal::Str("x".into())])
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse_json("[1,2]", 3, 10), Err(ParseError::TooLarge(5, 3)));
        // [1, 2] is three values.
        assert!(parse_json("[1, 2]", 100, 3).is_ok());
        assert_eq!(
            parse_json("[1, 2]", 100, 2),
            Err(ParseError::TooManyValues(2))
        );
        assert_eq!(
            parse_json(r#"{"a": {"b": "c"}}"#, 100, 2),
            Err(ParseError::TooManyValues(2))
        );
        assert!(matches!(
            parse_json("[1] x", 100, 10),
            Err(ParseError::Syntax(_))
        ));
        assert!(
            matches!(parse_json("[1,", 100, 100), Err(ParseError::Syntax(m)) if m.contains("line 1"))
        );
        assert!(matches!(
            parse_json("1e400", 100, 100),
            Err(ParseError::Syntax(_))
        ));
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(matches!(
            parse_json(&deep, 10_000, 10_000),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn describe() {
        assert_eq!(JVal::Str("abc".into()).describe(), "\"abc\"");
        assert_eq!(JVal::Num(1.5).describe(), "1.5");
        assert_eq!(JVal::Arr(vec![]).describe(), "an array of 0 element(s)");
    }
}

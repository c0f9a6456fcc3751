//! A minimal SVG writer.
//!
//! Every attribute value and every text node goes through [`escape`], which
//! XML-escapes markup characters and replaces characters that XML 1.0 does
//! not allow (control characters, lone surrogates cannot occur in `&str`,
//! U+FFFE/U+FFFF) with U+FFFD, so any guest string yields well-formed XML.
//! Numbers are written with at most two decimals (see [`num`]) to keep path
//! data compact; colours are only ever written from a parsed
//! [`Color`](super::color::Color).

use std::fmt::Write as _;

use super::color::Color;

/// The font family every piece of text uses; the only font loaded into the
/// rasterizer (see `render.rs`).
pub const FONT_FAMILY: &str = "DejaVu Sans";

/// Append `v` rounded to two decimals, without trailing zeros (`1.5`, `-3`,
/// `0.25`). Non-finite values are written as `0` (callers validate first);
/// `-0` is written as `0`.
pub fn push_num(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push('0');
        return;
    }
    let mut r = (v * 100.0).round() / 100.0;
    if !r.is_finite() {
        // |v| near f64::MAX: there are no decimals to round anyway.
        r = v;
    }
    if r == 0.0 {
        out.push('0');
        return;
    }
    if r.fract() == 0.0 && r.abs() < 1e15 {
        let _ = write!(out, "{}", r as i64);
        return;
    }
    let start = out.len();
    let _ = write!(out, "{r:.2}");
    if out[start..].contains('.') {
        while out.ends_with('0') {
            out.pop();
        }
        if out.ends_with('.') {
            out.pop();
        }
    }
}

/// `v` formatted as by [`push_num`].
pub fn num(v: f64) -> String {
    let mut s = String::new();
    push_num(&mut s, v);
    s
}

/// XML-escape `s` for use in text or a double-quoted attribute value,
/// replacing characters XML 1.0 forbids with U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s);
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Compact SVG path data (`M x y L x y ... Z`).
#[derive(Debug, Default, Clone)]
pub struct PathData {
    d: String,
}

impl PathData {
    /// Empty path data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a new subpath at (x, y).
    pub fn move_to(&mut self, x: f64, y: f64) {
        self.cmd('M', x, y);
    }

    /// A straight segment to (x, y).
    pub fn line_to(&mut self, x: f64, y: f64) {
        self.cmd('L', x, y);
    }

    /// Close the current subpath.
    pub fn close(&mut self) {
        self.d.push('Z');
    }

    /// True if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.d.is_empty()
    }

    /// The `d` attribute value.
    pub fn as_str(&self) -> &str {
        &self.d
    }

    fn cmd(&mut self, c: char, x: f64, y: f64) {
        self.d.push(c);
        push_num(&mut self.d, x);
        self.d.push(' ');
        push_num(&mut self.d, y);
    }
}

/// How a shape is filled and stroked, written as SVG presentation attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Fill colour, or `None` for `fill="none"`.
    pub fill: Option<Color>,
    /// Stroke colour, or `None` for no stroke.
    pub stroke: Option<Color>,
    /// Stroke width in pixels (used only with a stroke).
    pub stroke_width: f64,
}

impl Style {
    /// Filled, no stroke.
    pub fn fill(c: Color) -> Style {
        Style {
            fill: Some(c),
            stroke: None,
            stroke_width: 0.0,
        }
    }

    /// Stroked with `width`, no fill.
    pub fn stroke(c: Color, width: f64) -> Style {
        Style {
            fill: None,
            stroke: Some(c),
            stroke_width: width,
        }
    }
}

/// A start tag being written: add attributes, then finish it with
/// [`Tag::close`] (self-closing), [`Tag::open`] or [`Tag::text`].
pub struct Tag<'w> {
    w: &'w mut SvgWriter,
    name: &'static str,
}

impl Tag<'_> {
    /// A string attribute (escaped).
    pub fn attr(self, name: &str, value: &str) -> Self {
        let out = &mut self.w.out;
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        push_escaped(out, value);
        out.push('"');
        self
    }

    /// A numeric attribute, two decimals at most.
    pub fn num(self, name: &str, value: f64) -> Self {
        let out = &mut self.w.out;
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        push_num(out, value);
        out.push('"');
        self
    }

    /// Fill/stroke attributes for `style`, with opacities for translucent
    /// colours.
    pub fn style(mut self, style: &Style) -> Self {
        match style.fill {
            Some(c) => {
                self = self.attr("fill", &c.hex());
                if !c.is_opaque() {
                    self = self.attr("fill-opacity", &c.opacity_str());
                }
            }
            None => self = self.attr("fill", "none"),
        }
        if let Some(c) = style.stroke {
            self = self
                .attr("stroke", &c.hex())
                .num("stroke-width", style.stroke_width);
            if !c.is_opaque() {
                self = self.attr("stroke-opacity", &c.opacity_str());
            }
        }
        self
    }

    /// Finish as a self-closing element.
    pub fn close(self) {
        self.w.out.push_str("/>");
    }

    /// Finish the start tag; children follow until [`SvgWriter::end`].
    pub fn open(self) {
        self.w.out.push('>');
        self.w.stack.push(self.name);
    }

    /// Finish with escaped text content and the end tag.
    pub fn text(self, text: &str) {
        let out = &mut self.w.out;
        out.push('>');
        push_escaped(out, text);
        out.push_str("</");
        out.push_str(self.name);
        out.push('>');
    }
}

/// Writes one SVG document.
#[derive(Debug)]
pub struct SvgWriter {
    out: String,
    stack: Vec<&'static str>,
}

impl SvgWriter {
    /// Start a document of `width` x `height` pixels with a
    /// `background`-coloured rectangle covering it.
    pub fn new(width: u32, height: u32, background: Color) -> SvgWriter {
        let mut w = SvgWriter {
            out: String::with_capacity(4096),
            stack: Vec::new(),
        };
        let (wf, hf) = (f64::from(width), f64::from(height));
        w.out.push_str("<svg xmlns=\"http://www.w3.org/2000/svg\"");
        let _ = write!(
            w.out,
            " width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\""
        );
        w.out.push_str(" font-family=\"");
        w.out.push_str(FONT_FAMILY);
        w.out.push_str("\">");
        w.stack.push("svg");
        w.tag("rect")
            .num("x", 0.0)
            .num("y", 0.0)
            .num("width", wf)
            .num("height", hf)
            .style(&Style::fill(background))
            .close();
        w
    }

    /// Begin an element named `name`.
    pub fn tag(&mut self, name: &'static str) -> Tag<'_> {
        self.out.push('<');
        self.out.push_str(name);
        Tag { w: self, name }
    }

    /// Close the innermost element opened with [`Tag::open`].
    pub fn end(&mut self) {
        if let Some(name) = self.stack.pop() {
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
    }

    /// Close every open element and return the document.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.end();
        }
        self.out
    }
}

#[cfg(all(test, feature = "viz"))] // the tests read the rendered PNGs
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(1.256), "1.26");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(-3.10), "-3.1");
        assert_eq!(num(100.0), "100");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(1e20), "100000000000000000000");
        assert!(num(f64::MAX).len() > 300);
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a & \"b\" 'c'>"),
            "&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;"
        );
        assert_eq!(
            escape("a\u{0}b\u{1b}c\u{FFFF}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
        assert_eq!(escape("tab\tok"), "tab\tok");
    }

    #[test]
    fn document_is_well_formed_with_hostile_text() {
        let mut w = SvgWriter::new(10, 20, Color::WHITE);
        w.tag("g").attr("id", "\"><script>").open();
        w.tag("text")
            .num("x", 1.0)
            .text("</text><script>alert(1)</script>\u{0}&lt;");
        let svg = w.finish();
        let doc = resvg::usvg::roxmltree::Document::parse(&svg).unwrap();
        let text = doc.descendants().find(|n| n.has_tag_name("text")).unwrap();
        assert_eq!(
            text.text().unwrap(),
            "</text><script>alert(1)</script>\u{FFFD}&lt;"
        );
        assert!(!doc.descendants().any(|n| n.has_tag_name("script")));
        let root = doc.root_element();
        assert_eq!(root.attribute("width"), Some("10"));
        assert_eq!(root.attribute("font-family"), Some(FONT_FAMILY));
    }

    #[test]
    fn path_data() {
        let mut p = PathData::new();
        assert!(p.is_empty());
        p.move_to(0.0, 1.234);
        p.line_to(-2.5, 3.0);
        p.close();
        assert_eq!(p.as_str(), "M0 1.23L-2.5 3Z");
    }

    #[test]
    fn style_attributes() {
        let mut w = SvgWriter::new(1, 1, Color::WHITE);
        let half = Color {
            a: 0.5,
            ..Color::BLACK
        };
        w.tag("circle")
            .style(&Style {
                fill: Some(half),
                stroke: Some(Color::rgb(255, 0, 0)),
                stroke_width: 2.0,
            })
            .close();
        let svg = w.finish();
        assert!(svg.contains(
            "<circle fill=\"#000000\" fill-opacity=\"0.5\" stroke=\"#ff0000\" stroke-width=\"2\"/>"
        ));
    }
}

//! The host-side document tree behind `llmos:kernel/dom`.
//!
//! The artifact's output container lives here, on the host; guests only hold
//! handles, which the binding layer maps to [`NodeId`]s. At the end of a run
//! [`Document::to_html`] serializes the container to HTML.
//!
//! # Safety by construction
//!
//! Sanitizing is done when the tree is *built*, not when it is serialized:
//! every mutation is checked and refused with a [`DomError`] (never silently
//! dropped, so the artifact's author learns what went wrong):
//!
//! * tags come from an allowlist (text, tables, lists, links, images, canvas
//!   and basic SVG shapes); no script, frame, style, object, form or
//!   page-level tag can exist;
//! * attributes come from a per-tag allowlist; no event handler (`on*`),
//!   `style`, `srcdoc`, namespaced (`xlink:href`) or other attribute can
//!   exist;
//! * URL attributes (`a href`, `img src`) are checked for their scheme after
//!   removing every ASCII whitespace and control character (browsers ignore
//!   some of them, so `java\tscript:` must be caught); only `http`, `https`,
//!   `mailto` (links), `data:image/png` and `data:image/svg+xml` (images) and
//!   scheme-less (relative) URLs are allowed. Anything before the first ':'
//!   that is not on the list is refused, even if a browser would not take it
//!   for a scheme (`jav\u{AD}ascript:`). Character references are no trick
//!   here: values are escaped on output (`&` becomes `&amp;`), so
//!   `&#106;avascript:` reaches the browser literally, as a relative URL;
//! * SVG presentation attributes may not reference URLs or scripts
//!   (`url(`, `javascript:`, `expression(`, `<`, CSS escapes).
//!
//! Serialization then only has to escape: text and attribute values (always
//! double-quoted) escape `& < > " '`, and control characters other than
//! tab, line feed and carriage return (C0, DEL, C1) are removed.
//! Since every tag and attribute in the output was allowlisted and every
//! piece of guest text is escaped, no tokenizer state of an HTML parser can
//! turn guest text into markup (the allowlist contains no raw-text element
//! such as `script`, `style`, `xmp` or `textarea`, and `<` never appears
//! unescaped), whatever tree shape the parser builds. Links with a `target`
//! get `rel="noopener noreferrer"` on output.
//!
//! # Tree and limits
//!
//! Elements live in an arena indexed by [`NodeId`] and are never freed:
//! detached elements stay valid (a guest may still hold a handle) and count
//! toward [`DomLimits::max_nodes`]. Text is stored inline as a child of an
//! element (only [`Document::set_text`] creates text), so text nodes need no
//! ids. Text and attribute bytes are accounted as they are set, replacements
//! giving back what they replace. Nesting is bounded on every append, which
//! keeps every walk up the tree short; walks down the tree (serialization,
//! `text`, selectors, subtree height) use explicit stacks, never recursion.

use std::fmt::Write as _;

#[path = "selector.rs"]
mod selector;

use selector::{MatchState, SelectorList, Subject};

/// Bounds on one document. All of them are checked as the tree is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomLimits {
    /// Elements that may be created (attached or not), besides the root.
    pub max_nodes: usize,
    /// Total bytes of text plus attribute names and values.
    pub max_bytes: usize,
    /// Deepest nesting: the root's children are at depth 1.
    pub max_depth: usize,
    /// Longest selector accepted by `query_selector(_all)`, in bytes.
    pub max_selector_bytes: usize,
}

/// An element of a [`Document`]. Ids are only meaningful for the document
/// that created them; an id the document does not know is an
/// [`DomError::InvalidOperation`], never a panic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NodeId(usize);

/// Why a document operation failed. The variants map 1:1 onto the WIT
/// `error-code`; the message is written for the artifact's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomError {
    /// The tag is not on the allowlist.
    #[error("{0}")]
    ForbiddenTag(String),
    /// The attribute is not allowed on this element, or its value is not an
    /// allowed value for it.
    #[error("{0}")]
    ForbiddenAttribute(String),
    /// A URL attribute with a forbidden scheme.
    #[error("{0}")]
    ForbiddenUrl(String),
    /// A selector outside the supported subset.
    #[error("{0}")]
    InvalidSelector(String),
    /// An impossible tree operation (cycle, moving the root, not a child,
    /// children of a void element, unknown node).
    #[error("{0}")]
    InvalidOperation(String),
    /// Past one of the [`DomLimits`].
    #[error("{0}")]
    TooLarge(String),
}

/// The allowed HTML tags (lower-case).
const HTML_TAGS: &[&str] = &[
    "div",
    "span",
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "th",
    "td",
    "caption",
    "pre",
    "code",
    "kbd",
    "strong",
    "em",
    "b",
    "i",
    "u",
    "s",
    "mark",
    "small",
    "sub",
    "sup",
    "abbr",
    "cite",
    "q",
    "br",
    "hr",
    "blockquote",
    "figure",
    "figcaption",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "main",
    "aside",
    "details",
    "summary",
    "a",
    "img",
    "canvas",
];

/// The allowed SVG tags (lower-case, as the HTML parser produces them).
const SVG_TAGS: &[&str] = &[
    "svg", "g", "rect", "circle", "ellipse", "line", "polyline", "polygon", "path", "text",
    "tspan", "title",
];

/// Elements without content or closing tag.
const VOID_TAGS: &[&str] = &["br", "hr", "img"];

/// Attributes allowed on every element (besides `aria-*` and `data-*`).
const GLOBAL_ATTRS: &[&str] = &["id", "class", "title", "lang", "dir", "role"];

/// Attributes of the SVG elements, in their output spelling. Their values
/// are checked by [`check_svg_value`].
const SVG_ATTRS: &[&str] = &[
    "width",
    "height",
    "viewBox",
    "preserveAspectRatio",
    "xmlns",
    "fill",
    "stroke",
    "stroke-width",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-dasharray",
    "x",
    "y",
    "dx",
    "dy",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "x1",
    "y1",
    "x2",
    "y2",
    "points",
    "d",
    "transform",
    "opacity",
    "fill-opacity",
    "stroke-opacity",
    "font-size",
    "font-family",
    "font-weight",
    "text-anchor",
    "dominant-baseline",
];

/// The only `xmlns` value an `svg` may declare.
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

/// How an attribute's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueRule {
    /// Any text (it is escaped on output).
    Text,
    /// `a href`.
    LinkUrl,
    /// `img src`.
    ImageUrl,
    /// An SVG presentation attribute.
    Svg,
    /// `svg xmlns`.
    Xmlns,
}

/// The attributes `tag` allows besides the global ones, with their rules.
fn tag_attrs(tag: &str) -> &'static [(&'static str, ValueRule)] {
    use ValueRule::{ImageUrl, LinkUrl, Text};
    match tag {
        "a" => &[("href", LinkUrl), ("target", Text), ("rel", Text)],
        "img" => &[
            ("src", ImageUrl),
            ("alt", Text),
            ("width", Text),
            ("height", Text),
        ],
        "td" | "th" => &[("colspan", Text), ("rowspan", Text), ("scope", Text)],
        "ol" => &[("start", Text)],
        "canvas" => &[("width", Text), ("height", Text)],
        _ => &[],
    }
}

fn is_svg_tag(tag: &str) -> bool {
    SVG_TAGS.contains(&tag)
}

/// The output spelling and value rule of attribute `lower` (lower-cased) on
/// `tag`, if it is allowed there.
fn resolve_attr(tag: &str, lower: &str) -> Option<(String, ValueRule)> {
    if GLOBAL_ATTRS.contains(&lower) {
        return Some((lower.to_owned(), ValueRule::Text));
    }
    if let Some(suffix) = lower
        .strip_prefix("data-")
        .or_else(|| lower.strip_prefix("aria-"))
    {
        let ok = !suffix.is_empty()
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        return ok.then(|| (lower.to_owned(), ValueRule::Text));
    }
    if let Some(&(name, rule)) = tag_attrs(tag).iter().find(|(n, _)| *n == lower) {
        return Some((name.to_owned(), rule));
    }
    if is_svg_tag(tag) {
        let name = SVG_ATTRS.iter().find(|n| n.eq_ignore_ascii_case(lower))?;
        let rule = if *name == "xmlns" {
            ValueRule::Xmlns
        } else {
            ValueRule::Svg
        };
        return Some(((*name).to_owned(), rule));
    }
    None
}

/// A guest string for an error message: Debug-quoted (so control characters
/// are visible) and cut to 60 characters.
fn quoted(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", s.get(..cut).unwrap_or("")),
        None => format!("{s:?}"),
    }
}

/// `s` lower-cased with every ASCII whitespace and control character
/// removed: a superset of what browsers strip from URLs, so the scheme seen
/// here is the one a browser would see, if any.
fn squeeze(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The scheme of a squeezed URL: what precedes the first ':' if no '/', '?'
/// or '#' comes before it.
fn scheme(url: &str) -> Option<&str> {
    let end = url.find([':', '/', '?', '#'])?;
    (url.as_bytes().get(end) == Some(&b':')).then(|| url.get(..end).unwrap_or(""))
}

fn check_url(tag: &str, name: &str, value: &str, rule: ValueRule) -> Result<(), DomError> {
    let url = squeeze(value);
    let allowed =
        match (scheme(&url), rule) {
            (None | Some("http" | "https"), _) => true,
            (Some("mailto"), ValueRule::LinkUrl) => true,
            (Some("data"), ValueRule::ImageUrl) => ["data:image/png", "data:image/svg+xml"]
                .iter()
                .any(|prefix| {
                    url.strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with([';', ',']))
                }),
            _ => false,
        };
    if allowed {
        return Ok(());
    }
    let what = if rule == ValueRule::ImageUrl {
        "http:, https:, data:image/png, data:image/svg+xml or a relative URL"
    } else {
        "http:, https:, mailto:, or a relative URL or #fragment"
    };
    Err(DomError::ForbiddenUrl(format!(
        "<{tag} {name}={}> is not allowed: the URL scheme must be {what} \
         (javascript:, vbscript:, other data: URLs and other schemes are refused)",
        quoted(value)
    )))
}

/// SVG presentation values are CSS-like and may reference resources
/// (`url(#x)`, `url(javascript:...)`), run legacy script (`expression(`), or
/// hide either behind CSS escapes (`\75 rl(`); a URL scheme (`javascript:`,
/// `data:`) has no business in them either. The attribute itself is fine,
/// its value is not a plain presentation value, so this is a
/// `ForbiddenAttribute` (`ForbiddenUrl` is for URL attributes).
fn check_svg_value(tag: &str, name: &str, value: &str) -> Result<(), DomError> {
    let squeezed = squeeze(value);
    let bad = [
        "url(",
        "javascript:",
        "vbscript:",
        "data:",
        "expression(",
        "<",
        "\\",
    ]
    .into_iter()
    .find(|needle| squeezed.contains(needle));
    match bad {
        None => Ok(()),
        Some(needle) => Err(DomError::ForbiddenAttribute(format!(
            "<{tag} {name}={}> is not allowed: svg attribute values may not contain {needle:?} \
             (no url() references, scripts or CSS escapes); use plain values such as \
             fill=\"#336699\" or transform=\"translate(10,20)\"",
            quoted(value)
        ))),
    }
}

/// What a forbidden tag's message suggests instead.
fn tag_hint(lower: &str) -> &'static str {
    match lower {
        "script" | "noscript" => {
            " Scripts cannot be added to the document: compute in your program and write \
             the results into elements."
        }
        "style" | "link" => {
            " There is no CSS: use structure, class, and svg fill/stroke attributes."
        }
        "iframe" | "frame" | "frameset" | "object" | "embed" | "applet" | "portal" => {
            " Embedded documents and plugins are not available."
        }
        "form" | "input" | "textarea" | "button" | "select" | "option" | "label" | "fieldset" => {
            " The document is static output: there are no form controls."
        }
        "image" => " Use <img> outside svg for pictures.",
        "use" | "foreignobject" | "animate" | "animatetransform" | "animatemotion" | "set"
        | "defs" | "symbol" | "pattern" | "marker" | "mask" | "clippath" | "filter" => {
            " Only basic svg shapes and text are available."
        }
        "html" | "head" | "body" | "meta" | "base" | "template" => {
            " The document is a fragment inside the page's container: page-level tags \
             are not available."
        }
        _ => "",
    }
}

/// The allowed attributes of `tag`, for error messages.
fn allowed_attrs_text(tag: &str) -> String {
    let mut out = String::from("id, class, title, lang, dir, role, aria-*, data-*");
    for (name, _) in tag_attrs(tag) {
        out.push_str(", ");
        out.push_str(name);
    }
    if is_svg_tag(tag) {
        for name in SVG_ATTRS {
            out.push_str(", ");
            out.push_str(name);
        }
    }
    out
}

fn forbidden_attr(tag: &str, name: &str, lower: &str) -> DomError {
    let hint = if lower.starts_with("on") {
        " Event handlers cannot be attached: the document is static output."
    } else if lower == "style" {
        " Inline CSS is not available: use class, or the svg fill/stroke attributes."
    } else if lower.contains(':') {
        " Namespaced attributes (like xlink:href) are not available."
    } else if lower.starts_with("data-") || lower.starts_with("aria-") {
        " data-* and aria-* names may contain only a-z, 0-9 and '-'."
    } else if lower == "href" || lower == "src" {
        " Only <a> may have href and only <img> may have src."
    } else {
        ""
    };
    DomError::ForbiddenAttribute(format!(
        "attribute {} is not allowed on <{tag}>.{hint} Allowed on <{tag}>: {}.",
        quoted(name),
        allowed_attrs_text(tag)
    ))
}

/// A child of an element.
#[derive(Debug, Clone)]
enum Child {
    Element(NodeId),
    Text(String),
}

#[derive(Debug, Clone)]
struct Attr {
    /// The output spelling (lower-case except SVG names like `viewBox`).
    name: String,
    value: String,
}

#[derive(Debug, Clone)]
struct Element {
    tag: &'static str,
    attrs: Vec<Attr>,
    parent: Option<NodeId>,
    children: Vec<Child>,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map(|a| a.value.as_str())
    }

    fn is_void(&self) -> bool {
        VOID_TAGS.contains(&self.tag)
    }

    fn text_bytes(&self) -> usize {
        self.children
            .iter()
            .map(|c| match c {
                Child::Text(t) => t.len(),
                Child::Element(_) => 0,
            })
            .sum()
    }
}

impl Subject for Element {
    fn tag(&self) -> &str {
        self.tag
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attr(name)
    }
}

/// The artifact's document: a `<div class="llmos-artifact">` root and every
/// element the artifact created, attached or not.
#[derive(Debug, Clone)]
pub struct Document {
    limits: DomLimits,
    /// The arena; index 0 is the root.
    nodes: Vec<Element>,
    /// Text and attribute bytes, as bounded by `limits.max_bytes`.
    bytes: usize,
}

const ROOT: NodeId = NodeId(0);

impl Document {
    /// An empty document: only the root container,
    /// `<div class="llmos-artifact">`, whose attributes are fixed.
    pub fn new(limits: DomLimits) -> Self {
        let root = Element {
            tag: "div",
            attrs: vec![Attr {
                name: "class".to_owned(),
                value: "llmos-artifact".to_owned(),
            }],
            parent: None,
            children: Vec::new(),
        };
        Document {
            limits,
            nodes: vec![root],
            bytes: 0,
        }
    }

    /// The root container.
    pub fn root(&self) -> NodeId {
        ROOT
    }

    /// Whether the root has no children (no text and no elements).
    pub fn is_empty(&self) -> bool {
        self.nodes
            .first()
            .is_none_or(|root| root.children.is_empty())
    }

    fn get(&self, id: NodeId) -> Result<&Element, DomError> {
        self.nodes.get(id.0).ok_or_else(|| unknown(id))
    }

    fn get_mut(&mut self, id: NodeId) -> Result<&mut Element, DomError> {
        self.nodes.get_mut(id.0).ok_or_else(|| unknown(id))
    }

    /// Account for replacing `old` bytes with `new` ones, or refuse.
    fn reserve(&mut self, old: usize, new: usize, what: &str) -> Result<(), DomError> {
        let total = self.bytes.saturating_sub(old).saturating_add(new);
        if total > self.limits.max_bytes {
            return Err(DomError::TooLarge(format!(
                "{what} would bring the document to {total} bytes of text and attributes; \
                 at most {} are allowed",
                self.limits.max_bytes
            )));
        }
        self.bytes = total;
        Ok(())
    }

    /// A new detached element. `tag` is compared case-insensitively with the
    /// allowlist.
    pub fn create_element(&mut self, tag: &str) -> Result<NodeId, DomError> {
        let lower = tag.to_ascii_lowercase();
        let Some(&canonical) = HTML_TAGS
            .iter()
            .chain(SVG_TAGS)
            .find(|t| **t == lower.as_str())
        else {
            return Err(DomError::ForbiddenTag(format!(
                "tag {} is not allowed.{} Allowed tags: {}; svg: {}.",
                quoted(tag),
                tag_hint(&lower),
                HTML_TAGS.join(", "),
                SVG_TAGS.join(", ")
            )));
        };
        let created = self.nodes.len().saturating_sub(1);
        if created >= self.limits.max_nodes {
            return Err(DomError::TooLarge(format!(
                "too many elements: {created} already created (detached ones count too); \
                 at most {} may be created",
                self.limits.max_nodes
            )));
        }
        let id = NodeId(self.nodes.len());
        self.nodes.push(Element {
            tag: canonical,
            attrs: Vec::new(),
            parent: None,
            children: Vec::new(),
        });
        Ok(id)
    }

    /// The element's lower-case tag name.
    pub fn tag_name(&self, id: NodeId) -> Result<&str, DomError> {
        Ok(self.get(id)?.tag)
    }

    /// Replace the element's children with one text node (with none if
    /// `text` is empty), like `textContent`. Replaced child elements become
    /// detached but stay valid.
    pub fn set_text(&mut self, id: NodeId, text: &str) -> Result<(), DomError> {
        let el = self.get(id)?;
        if el.is_void() && !text.is_empty() {
            return Err(DomError::InvalidOperation(format!(
                "<{}> is a void element and cannot contain text",
                el.tag
            )));
        }
        let old = el.text_bytes();
        self.reserve(old, text.len(), "this text")?;
        let el = self.get_mut(id)?;
        let children = std::mem::take(&mut el.children);
        if !text.is_empty() {
            el.children.push(Child::Text(text.to_owned()));
        }
        for child in children {
            if let Child::Element(c) = child
                && let Some(node) = self.nodes.get_mut(c.0)
            {
                node.parent = None;
            }
        }
        Ok(())
    }

    /// The concatenated text of the element and its descendants.
    pub fn text(&self, id: NodeId) -> Result<String, DomError> {
        let mut out = String::new();
        let mut stack = vec![(self.get(id)?, 0usize)];
        while let Some((el, next)) = stack.last_mut() {
            let Some(child) = el.children.get(*next) else {
                stack.pop();
                continue;
            };
            *next += 1;
            match child {
                Child::Text(t) => out.push_str(t),
                Child::Element(c) => stack.push((self.get(*c)?, 0)),
            }
        }
        Ok(out)
    }

    /// Set an allowlisted attribute (name compared case-insensitively),
    /// replacing any previous value in place.
    pub fn set_attribute(&mut self, id: NodeId, name: &str, value: &str) -> Result<(), DomError> {
        let el = self.get(id)?;
        let tag = el.tag;
        let lower = name.to_ascii_lowercase();
        let (canonical, rule) =
            resolve_attr(tag, &lower).ok_or_else(|| forbidden_attr(tag, name, &lower))?;
        match rule {
            ValueRule::Text => {}
            ValueRule::LinkUrl | ValueRule::ImageUrl => check_url(tag, &canonical, value, rule)?,
            ValueRule::Svg => check_svg_value(tag, &canonical, value)?,
            ValueRule::Xmlns => {
                if value.trim_matches(|c: char| c.is_ascii_whitespace()) != SVG_NAMESPACE {
                    return Err(DomError::ForbiddenAttribute(format!(
                        "<{tag} xmlns={}> is not allowed: the only namespace is {SVG_NAMESPACE:?} \
                         (and it may be left out)",
                        quoted(value)
                    )));
                }
            }
        }
        if id == ROOT {
            return Err(DomError::InvalidOperation(
                "the root container's attributes are fixed: put your content in a <div> of \
                 your own and set attributes on that"
                    .to_owned(),
            ));
        }
        let existing = el.attrs.iter().position(|a| a.name == canonical);
        let old = existing
            .and_then(|i| el.attrs.get(i))
            .map_or(0, |a| a.name.len() + a.value.len());
        self.reserve(old, canonical.len() + value.len(), "this attribute")?;
        let el = self.get_mut(id)?;
        match existing.and_then(|i| el.attrs.get_mut(i)) {
            Some(attr) => attr.value = value.to_owned(),
            None => el.attrs.push(Attr {
                name: canonical,
                value: value.to_owned(),
            }),
        }
        Ok(())
    }

    /// The attribute's value, if set (name compared case-insensitively).
    pub fn get_attribute(&self, id: NodeId, name: &str) -> Result<Option<&str>, DomError> {
        Ok(self.get(id)?.attr(name))
    }

    /// Remove an attribute; true if it was set. The root's attributes are
    /// fixed: removing one of them returns false.
    pub fn remove_attribute(&mut self, id: NodeId, name: &str) -> Result<bool, DomError> {
        if id == ROOT {
            return Ok(false);
        }
        let el = self.get_mut(id)?;
        let Some(i) = el
            .attrs
            .iter()
            .position(|a| a.name.eq_ignore_ascii_case(name))
        else {
            return Ok(false);
        };
        let attr = el.attrs.remove(i);
        self.bytes = self
            .bytes
            .saturating_sub(attr.name.len() + attr.value.len());
        Ok(true)
    }

    /// Append `child` as the last child of `parent`, moving it from its old
    /// parent. Appending an element into itself or its own subtree, moving
    /// the root, or giving children to a void element is an
    /// `InvalidOperation`; nesting deeper than `max_depth` is `TooLarge`.
    pub fn append_child(&mut self, parent: NodeId, child: NodeId) -> Result<(), DomError> {
        let p = self.get(parent)?;
        let c = self.get(child)?;
        if child == ROOT {
            return Err(DomError::InvalidOperation(
                "the root container cannot be moved into another element".to_owned(),
            ));
        }
        if child == parent {
            return Err(DomError::InvalidOperation(format!(
                "cannot append <{}> to itself",
                c.tag
            )));
        }
        if p.is_void() {
            return Err(DomError::InvalidOperation(format!(
                "<{}> is a void element and cannot have children",
                p.tag
            )));
        }
        // Walk up from the parent: finds cycles and the parent's depth. The
        // walk is bounded by max_depth (an invariant of every tree here),
        // and by the arena size in any case.
        let mut depth = 0usize;
        let mut cur = p.parent;
        while let Some(up) = cur {
            if up == child {
                return Err(DomError::InvalidOperation(format!(
                    "cannot append <{}> into <{}>: the <{}> is inside it, which would make a cycle",
                    c.tag, p.tag, p.tag
                )));
            }
            depth += 1;
            if depth > self.nodes.len() {
                return Err(DomError::InvalidOperation(
                    "the document tree is corrupt (a cycle)".to_owned(),
                ));
            }
            cur = self.get(up)?.parent;
        }
        let deepest = depth.saturating_add(1).saturating_add(self.height(child)?);
        if deepest > self.limits.max_depth {
            return Err(DomError::TooLarge(format!(
                "nesting too deep: this append would put an element at depth {deepest}; \
                 at most {} levels are allowed",
                self.limits.max_depth
            )));
        }
        self.detach(child)?;
        self.get_mut(parent)?.children.push(Child::Element(child));
        self.get_mut(child)?.parent = Some(parent);
        Ok(())
    }

    /// How many levels of elements are below `id` (0 for a leaf).
    fn height(&self, id: NodeId) -> Result<usize, DomError> {
        let mut max = 0usize;
        let mut stack = vec![(id, 0usize)];
        while let Some((node, level)) = stack.pop() {
            max = max.max(level);
            for child in &self.get(node)?.children {
                if let Child::Element(c) = child {
                    stack.push((*c, level + 1));
                }
            }
        }
        Ok(max)
    }

    /// Remove `id` from its parent's children, if it has a parent.
    fn detach(&mut self, id: NodeId) -> Result<(), DomError> {
        let Some(parent) = self.get(id)?.parent else {
            return Ok(());
        };
        let siblings = &mut self.get_mut(parent)?.children;
        siblings.retain(|c| !matches!(c, Child::Element(e) if *e == id));
        self.get_mut(id)?.parent = None;
        Ok(())
    }

    /// Remove `child` from `parent`'s children; it stays valid, detached.
    pub fn remove_child(&mut self, parent: NodeId, child: NodeId) -> Result<(), DomError> {
        let p = self.get(parent)?;
        let c = self.get(child)?;
        if c.parent != Some(parent) {
            return Err(DomError::InvalidOperation(format!(
                "cannot remove <{}> from <{}>: it is not a child of that element",
                c.tag, p.tag
            )));
        }
        self.detach(child)
    }

    /// The element children of `id`, in order.
    pub fn children(&self, id: NodeId) -> Result<Vec<NodeId>, DomError> {
        Ok(self
            .get(id)?
            .children
            .iter()
            .filter_map(|c| match c {
                Child::Element(e) => Some(*e),
                Child::Text(_) => None,
            })
            .collect())
    }

    /// The first descendant of `scope` (not `scope` itself) matching
    /// `selector`, in document order.
    pub fn query_selector(
        &self,
        scope: NodeId,
        selector: &str,
    ) -> Result<Option<NodeId>, DomError> {
        Ok(self.select(scope, selector, true)?.into_iter().next())
    }

    /// Every descendant of `scope` (not `scope` itself) matching `selector`,
    /// in document order, without duplicates. As in a browser, combinators
    /// may match ancestors of `scope`: `div p` finds every `p` under a root
    /// `div`.
    pub fn query_selector_all(
        &self,
        scope: NodeId,
        selector: &str,
    ) -> Result<Vec<NodeId>, DomError> {
        self.select(scope, selector, false)
    }

    fn select(&self, scope: NodeId, selector: &str, first: bool) -> Result<Vec<NodeId>, DomError> {
        self.get(scope)?;
        if selector.len() > self.limits.max_selector_bytes {
            return Err(DomError::TooLarge(format!(
                "the selector is {} bytes long; at most {} are allowed",
                selector.len(),
                self.limits.max_selector_bytes
            )));
        }
        let list = SelectorList::parse(selector)?;
        // States of the scope's ancestors, top down, then of the scope.
        let mut path = vec![scope];
        let mut cur = self.get(scope)?.parent;
        while let Some(up) = cur {
            if path.len() > self.nodes.len() {
                break;
            }
            path.push(up);
            cur = self.get(up)?.parent;
        }
        let mut state: Option<MatchState> = None;
        for id in path.iter().rev() {
            state = Some(list.advance(state.as_ref(), self.get(*id)?));
        }
        let Some(scope_state) = state else {
            return Ok(Vec::new());
        };
        // Pre-order walk of the scope's subtree; each frame keeps its
        // element's state for its children.
        let mut found = Vec::new();
        let mut stack: Vec<(&Element, usize, MatchState)> =
            vec![(self.get(scope)?, 0, scope_state)];
        while let Some((el, next, state)) = stack.last_mut() {
            let Some(child) = el.children.get(*next) else {
                stack.pop();
                continue;
            };
            *next += 1;
            let Child::Element(id) = child else {
                continue;
            };
            let child_el = self.get(*id)?;
            let child_state = list.advance(Some(state), child_el);
            if list.is_match(&child_state) {
                found.push(*id);
                if first {
                    break;
                }
            }
            stack.push((child_el, 0, child_state));
        }
        Ok(found)
    }

    /// Host bytes the document keeps: every element (created, attached or
    /// not) with its child slots, plus its text and attribute bytes.
    pub fn footprint(&self) -> u64 {
        let slots: usize = self
            .nodes
            .iter()
            .map(|n| n.children.len() + n.attrs.len())
            .sum();
        (self.nodes.len() * std::mem::size_of::<Element>()
            + slots * std::mem::size_of::<Attr>().max(std::mem::size_of::<Child>())
            + self.bytes) as u64
    }

    /// Elements in the arena, the root included (an upper bound on what any
    /// walk visits).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Text and attribute bytes, as bounded by `max_bytes`.
    pub fn text_and_attribute_bytes(&self) -> usize {
        self.bytes
    }

    /// The whole HTML document: [`HTML_HEAD`] (doctype, charset and a
    /// restrictive Content-Security-Policy), the container
    /// ([`Document::to_html`]) and [`HTML_TAIL`].
    pub fn to_html_document(&self) -> String {
        let body = self.to_html();
        let mut out = String::with_capacity(HTML_HEAD.len() + body.len() + HTML_TAIL.len());
        out.push_str(HTML_HEAD);
        out.push_str(&body);
        out.push_str(HTML_TAIL);
        out
    }

    /// The root container and its subtree as sanitized HTML.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let Some(root) = self.nodes.first() else {
            return out;
        };
        open_tag(&mut out, root);
        let mut stack = vec![(root, 0usize)];
        while let Some((el, next)) = stack.last_mut() {
            let Some(child) = el.children.get(*next) else {
                let _ = write!(out, "</{}>", el.tag);
                stack.pop();
                continue;
            };
            *next += 1;
            match child {
                Child::Text(t) => escape_into(&mut out, t, false),
                Child::Element(id) => {
                    // Ids in the tree always exist; skip one that did not.
                    let Ok(c) = self.get(*id) else { continue };
                    open_tag(&mut out, c);
                    if !c.is_void() {
                        stack.push((c, 0));
                    }
                }
            }
        }
        out
    }
}

fn unknown(id: NodeId) -> DomError {
    DomError::InvalidOperation(format!("element #{} does not exist in this document", id.0))
}

/// Append `<tag attrs...>`; a link with a `target` gets
/// `rel="noopener noreferrer"` (merged into an existing `rel`).
fn open_tag(out: &mut String, el: &Element) {
    out.push('<');
    out.push_str(el.tag);
    let needs_rel = el.tag == "a" && el.attr("target").is_some();
    let mut wrote_rel = false;
    for attr in &el.attrs {
        out.push(' ');
        out.push_str(&attr.name);
        out.push_str("=\"");
        if needs_rel && attr.name == "rel" {
            let mut value = attr.value.clone();
            for token in ["noopener", "noreferrer"] {
                if !attr
                    .value
                    .split_ascii_whitespace()
                    .any(|t| t.eq_ignore_ascii_case(token))
                {
                    if !value.trim().is_empty() {
                        value.push(' ');
                    }
                    value.push_str(token);
                }
            }
            escape_into(out, &value, true);
            wrote_rel = true;
        } else {
            escape_into(out, &attr.value, true);
        }
        out.push('"');
    }
    if needs_rel && !wrote_rel {
        out.push_str(" rel=\"noopener noreferrer\"");
    }
    out.push('>');
}

/// Escape `s` as text or as a double-quoted attribute value (the same
/// way: `& < > " '`), removing control characters other than tab, line
/// feed and carriage return (C0, DEL and C1: NUL included).
fn escape_into(out: &mut String, s: &str, _attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

/// Everything of the HTML document before the container.
///
/// The Content-Security-Policy is `default-src 'none'` with only
/// `img-src data:` allowed: the tree can hold no script, style, frame,
/// object, form or base element, no `style` or event-handler attribute and
/// no image URL other than `data:image/png` and `data:image/svg+xml`, so
/// this policy forbids nothing the document can legitimately contain
/// (relative and remote `img src` are dropped by the browser rather than
/// fetched: the output is meant to be viewed offline, without tracking).
/// `style-src` stays `'none'` (implied by `default-src`): SVG presentation
/// attributes (`fill`, `stroke`) are not CSS and are not affected, and no
/// inline style can exist. `base-uri` and `form-action` do not fall back to
/// `default-src`, so they are set too. A `<meta>` CSP cannot set
/// `frame-ancestors`; whoever serves the file should send that as a header.
pub const HTML_HEAD: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; \
base-uri 'none'; form-action 'none'\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>llmos artifact</title></head>\n<body>";
/// Everything of the HTML document after the container.
pub const HTML_TAIL: &str = "</body></html>\n";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn limits() -> DomLimits {
        DomLimits {
            max_nodes: 1000,
            max_bytes: 100_000,
            max_depth: 64,
            max_selector_bytes: 1024,
        }
    }

    fn doc() -> Document {
        Document::new(limits())
    }

    /// Create `tag` and append it to `parent`.
    fn add(d: &mut Document, parent: NodeId, tag: &str) -> NodeId {
        let id = d.create_element(tag).unwrap();
        d.append_child(parent, id).unwrap();
        id
    }

    fn add_text(d: &mut Document, parent: NodeId, tag: &str, text: &str) -> NodeId {
        let id = add(d, parent, tag);
        d.set_text(id, text).unwrap();
        id
    }

    const OPEN: &str = "<div class=\"llmos-artifact\">";

    #[test]
    fn empty_document() {
        let d = doc();
        assert!(d.is_empty());
        assert_eq!(d.to_html(), format!("{OPEN}</div>"));
        assert_eq!(d.tag_name(d.root()).unwrap(), "div");
        assert_eq!(
            d.get_attribute(d.root(), "CLASS").unwrap(),
            Some("llmos-artifact")
        );
    }

    #[test]
    fn builds_a_table_exactly() {
        let mut d = doc();
        let root = d.root();
        let table = add(&mut d, root, "TABLE");
        d.set_attribute(table, "class", "data").unwrap();
        add_text(&mut d, table, "caption", "Totals");
        let thead = add(&mut d, table, "thead");
        let tr = add(&mut d, thead, "tr");
        let th = add_text(&mut d, tr, "th", "Name");
        d.set_attribute(th, "Scope", "col").unwrap();
        add_text(&mut d, tr, "th", "Qty");
        let tbody = add(&mut d, table, "tbody");
        let tr = add(&mut d, tbody, "tr");
        let td = add_text(&mut d, tr, "td", "apples");
        d.set_attribute(td, "colspan", "1").unwrap();
        add_text(&mut d, tr, "td", "3");
        assert!(!d.is_empty());
        assert_eq!(
            d.to_html(),
            format!(
                "{OPEN}<table class=\"data\"><caption>Totals</caption><thead><tr>\
                 <th scope=\"col\">Name</th><th>Qty</th></tr></thead><tbody><tr>\
                 <td colspan=\"1\">apples</td><td>3</td></tr></tbody></table></div>"
            )
        );
        assert_eq!(d.text(table).unwrap(), "TotalsNameQtyapples3");
        assert_eq!(d.children(table).unwrap().len(), 3);
    }

    #[test]
    fn builds_a_list_with_links_images_and_void_elements() {
        let mut d = doc();
        let root = d.root();
        let ol = add(&mut d, root, "ol");
        d.set_attribute(ol, "start", "3").unwrap();
        let li = add(&mut d, ol, "li");
        let a = add_text(&mut d, li, "a", "docs");
        d.set_attribute(a, "href", "https://example.com/?a=1&b=2")
            .unwrap();
        d.set_attribute(a, "target", "_blank").unwrap();
        let li2 = add(&mut d, ol, "li");
        let img = add(&mut d, li2, "img");
        d.set_attribute(img, "src", "pic.png").unwrap();
        d.set_attribute(img, "alt", "a \"pic\"").unwrap();
        add(&mut d, li2, "br");
        add(&mut d, root, "hr");
        assert_eq!(
            d.to_html(),
            format!(
                "{OPEN}<ol start=\"3\"><li><a href=\"https://example.com/?a=1&amp;b=2\" \
                 target=\"_blank\" rel=\"noopener noreferrer\">docs</a></li><li>\
                 <img src=\"pic.png\" alt=\"a &quot;pic&quot;\"><br></li></ol><hr></div>"
            )
        );
        // An existing rel is kept and completed, in place.
        d.set_attribute(a, "rel", "nofollow").unwrap();
        assert!(
            d.to_html()
                .contains("target=\"_blank\" rel=\"nofollow noopener noreferrer\">")
        );
        d.set_attribute(a, "rel", "noreferrer NOOPENER").unwrap();
        assert!(d.to_html().contains("rel=\"noreferrer NOOPENER\">"));
        // No target, no added rel.
        d.remove_attribute(a, "target").unwrap();
        d.remove_attribute(a, "rel").unwrap();
        assert!(
            d.to_html()
                .contains("<a href=\"https://example.com/?a=1&amp;b=2\">docs</a>")
        );
        // Void elements take no children or text.
        let br = d.create_element("br").unwrap();
        let span = d.create_element("span").unwrap();
        assert!(matches!(
            d.append_child(br, span),
            Err(DomError::InvalidOperation(_))
        ));
        assert!(matches!(
            d.set_text(img, "x"),
            Err(DomError::InvalidOperation(_))
        ));
        d.set_text(img, "").unwrap();
    }

    #[test]
    fn svg_keeps_attribute_spelling() {
        let mut d = doc();
        let root = d.root();
        let svg = add(&mut d, root, "SVG");
        d.set_attribute(svg, "VIEWBOX", "0 0 10 10").unwrap();
        d.set_attribute(svg, "xmlns", "http://www.w3.org/2000/svg")
            .unwrap();
        let rect = add(&mut d, svg, "rect");
        for (n, v) in [("x", "1"), ("width", "2"), ("fill", "#336699")] {
            d.set_attribute(rect, n, v).unwrap();
        }
        add_text(&mut d, svg, "text", "a<b");
        assert_eq!(
            d.to_html(),
            format!(
                "{OPEN}<svg viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\">\
                 <rect x=\"1\" width=\"2\" fill=\"#336699\"></rect><text>a&lt;b</text></svg></div>"
            )
        );
        assert_eq!(d.get_attribute(svg, "viewbox").unwrap(), Some("0 0 10 10"));
        assert!(matches!(
            d.set_attribute(svg, "xmlns", "http://evil.example/"),
            Err(DomError::ForbiddenAttribute(_))
        ));
        // Replacing keeps the position and the spelling.
        d.set_attribute(svg, "viewBox", "0 0 20 20").unwrap();
        assert!(d.to_html().contains("<svg viewBox=\"0 0 20 20\" xmlns="));
    }

    #[test]
    fn removes_control_characters_and_frames_a_whole_document() {
        let mut d = doc();
        let root = d.root();
        let p = add_text(
            &mut d,
            root,
            "pre",
            "a\u{1}b\u{7f}c\u{85}d\te\nf\r\u{1b}[31m",
        );
        d.set_attribute(p, "title", "x\u{0}y\u{9f}z").unwrap();
        assert_eq!(
            d.to_html(),
            format!("{OPEN}<pre title=\"xyz\">abcd\te\nf\r[31m</pre></div>")
        );
        let full = d.to_html_document();
        assert!(full.starts_with("<!doctype html>\n<html><head><meta charset=\"utf-8\">"));
        assert!(full.contains(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             img-src data:; base-uri 'none'; form-action 'none'\">"
        ));
        assert!(full.ends_with(&format!("<body>{}</body></html>\n", d.to_html())));
        assert!(d.footprint() > 0);
    }

    #[test]
    fn escapes_text_and_attributes() {
        let mut d = doc();
        let root = d.root();
        let p = add_text(&mut d, root, "p", "<b>&amp; \"q\" 'a'\0</b>");
        d.set_attribute(p, "title", "a\"b'c<d>&e\0").unwrap();
        assert_eq!(
            d.to_html(),
            format!(
                "{OPEN}<p title=\"a&quot;b&#39;c&lt;d&gt;&amp;e\">\
                 &lt;b&gt;&amp;amp; &quot;q&quot; &#39;a&#39;&lt;/b&gt;</p></div>"
            )
        );
        // Stored values are what was set.
        assert_eq!(d.text(p).unwrap(), "<b>&amp; \"q\" 'a'\0</b>");
        assert_eq!(d.get_attribute(p, "title").unwrap(), Some("a\"b'c<d>&e\0"));
    }

    #[test]
    fn set_text_replaces_children() {
        let mut d = doc();
        let root = d.root();
        let div = add(&mut d, root, "div");
        let a = add_text(&mut d, div, "span", "one");
        let b = add_text(&mut d, div, "span", "two");
        assert_eq!(d.text(div).unwrap(), "onetwo");
        d.set_text(div, "fresh").unwrap();
        assert_eq!(d.children(div).unwrap(), vec![]);
        assert_eq!(d.text(div).unwrap(), "fresh");
        assert_eq!(d.to_html(), format!("{OPEN}<div>fresh</div></div>"));
        // The old children are detached but usable.
        d.remove_child(div, a).unwrap_err();
        d.append_child(div, b).unwrap();
        assert_eq!(
            d.to_html(),
            format!("{OPEN}<div>fresh<span>two</span></div></div>")
        );
        assert_eq!(d.text(div).unwrap(), "freshtwo");
        d.set_text(div, "").unwrap();
        assert_eq!(d.to_html(), format!("{OPEN}<div></div></div>"));
        d.set_text(root, "").unwrap();
        assert!(d.is_empty());
    }

    #[test]
    fn append_moves_a_node() {
        let mut d = doc();
        let root = d.root();
        let p1 = add(&mut d, root, "p");
        let p2 = add(&mut d, root, "p");
        let s = add_text(&mut d, p1, "span", "x");
        let t = add_text(&mut d, p1, "b", "y");
        d.append_child(p2, s).unwrap();
        assert_eq!(
            d.to_html(),
            format!("{OPEN}<p><b>y</b></p><p><span>x</span></p></div>")
        );
        // Re-appending to the same parent moves it last.
        d.append_child(p2, t).unwrap();
        d.append_child(p2, s).unwrap();
        assert_eq!(
            d.to_html(),
            format!("{OPEN}<p></p><p><b>y</b><span>x</span></p></div>")
        );
        assert_eq!(d.children(p2).unwrap(), vec![t, s]);
        assert_eq!(d.children(p1).unwrap(), vec![]);
    }

    #[test]
    fn cycles_and_root_moves_are_rejected() {
        let mut d = doc();
        let root = d.root();
        let a = add(&mut d, root, "div");
        let b = add(&mut d, a, "div");
        let c = add(&mut d, b, "div");
        for (parent, child) in [(a, a), (b, a), (c, a), (c, b), (a, root), (c, root)] {
            assert!(
                matches!(
                    d.append_child(parent, child),
                    Err(DomError::InvalidOperation(_))
                ),
                "{parent:?} <- {child:?}"
            );
        }
        let detached = d.create_element("div").unwrap();
        assert!(matches!(
            d.append_child(detached, root),
            Err(DomError::InvalidOperation(_))
        ));
        // Nothing changed.
        assert_eq!(
            d.to_html(),
            format!("{OPEN}<div><div><div></div></div></div></div>")
        );
    }

    #[test]
    fn remove_child_needs_a_child() {
        let mut d = doc();
        let root = d.root();
        let a = add(&mut d, root, "div");
        let b = add(&mut d, a, "span");
        let loose = d.create_element("p").unwrap();
        for (parent, child) in [(root, b), (b, a), (a, loose), (a, a), (a, root)] {
            let err = d.remove_child(parent, child).unwrap_err();
            assert!(matches!(err, DomError::InvalidOperation(_)), "{err}");
        }
        assert!(
            d.remove_child(root, b)
                .unwrap_err()
                .to_string()
                .contains("not a child")
        );
        d.remove_child(a, b).unwrap();
        assert_eq!(d.to_html(), format!("{OPEN}<div></div></div>"));
        d.remove_child(a, b).unwrap_err();
        d.append_child(root, b).unwrap();
        assert_eq!(d.to_html(), format!("{OPEN}<div></div><span></span></div>"));
    }

    #[test]
    fn unknown_ids_are_errors() {
        let mut other = doc();
        for _ in 0..5 {
            other.create_element("p").unwrap();
        }
        let foreign = other.create_element("p").unwrap();
        let mut d = doc();
        let root = d.root();
        let inv =
            |r: Result<(), DomError>| assert!(matches!(r, Err(DomError::InvalidOperation(_))));
        assert!(matches!(
            d.tag_name(foreign),
            Err(DomError::InvalidOperation(_))
        ));
        inv(d.set_text(foreign, "x"));
        inv(d.text(foreign).map(drop));
        inv(d.set_attribute(foreign, "id", "x"));
        inv(d.get_attribute(foreign, "id").map(drop));
        inv(d.remove_attribute(foreign, "id").map(drop));
        inv(d.append_child(root, foreign));
        inv(d.append_child(foreign, root));
        inv(d.remove_child(root, foreign));
        inv(d.children(foreign).map(drop));
        inv(d.query_selector(foreign, "p").map(drop));
        inv(d.query_selector_all(foreign, "p").map(drop));
    }

    #[test]
    fn attributes_get_set_remove() {
        let mut d = doc();
        let root = d.root();
        let div = add(&mut d, root, "div");
        d.set_attribute(div, "ID", "main").unwrap();
        d.set_attribute(div, "data-Row-2", "7").unwrap();
        d.set_attribute(div, "aria-label", "chart").unwrap();
        d.set_attribute(div, "id", "other").unwrap();
        assert_eq!(d.get_attribute(div, "Id").unwrap(), Some("other"));
        assert_eq!(d.get_attribute(div, "DATA-ROW-2").unwrap(), Some("7"));
        assert_eq!(d.get_attribute(div, "title").unwrap(), None);
        assert_eq!(d.get_attribute(div, "onclick").unwrap(), None);
        assert_eq!(
            d.to_html(),
            format!("{OPEN}<div id=\"other\" data-row-2=\"7\" aria-label=\"chart\"></div></div>")
        );
        assert!(d.remove_attribute(div, "Data-row-2").unwrap());
        assert!(!d.remove_attribute(div, "data-row-2").unwrap());
        assert!(!d.remove_attribute(div, "onclick").unwrap());
        for bad in [
            "data-", "aria-", "data-a_b", "data-a.b", "data-x:y", "data-é",
        ] {
            assert!(
                matches!(
                    d.set_attribute(div, bad, "1"),
                    Err(DomError::ForbiddenAttribute(_))
                ),
                "{bad}"
            );
        }
        // Per-tag allowlists.
        assert!(d.set_attribute(div, "href", "/x").is_err());
        assert!(d.set_attribute(div, "colspan", "2").is_err());
        let canvas = add(&mut d, root, "canvas");
        d.set_attribute(canvas, "width", "300").unwrap();
        assert!(d.set_attribute(canvas, "src", "x.png").is_err());
        // The root's attributes are fixed.
        assert!(matches!(
            d.set_attribute(root, "id", "x"),
            Err(DomError::InvalidOperation(_))
        ));
        assert!(!d.remove_attribute(root, "class").unwrap());
        assert!(d.to_html().starts_with(OPEN));
    }

    #[test]
    fn urls() {
        let mut d = doc();
        let root = d.root();
        let a = add(&mut d, root, "a");
        let img = add(&mut d, root, "img");
        for ok in [
            "https://example.com/",
            "HTTP://example.com",
            "  https://example.com  ",
            "mailto:someone@example.com",
            "/path/page.html",
            "page.html?x=1:2",
            "#section",
            "?q=a:b",
            "//example.com/x",
            "",
            "a/b:c",
            "&#58;x",
            // '&' is escaped on output, so a browser sees these literally:
            // relative URLs whose '#' starts a fragment, never a scheme.
            "&#106;avascript:alert(1)",
            "javascript&#58;:x",
            "jav&#x09;ascript:alert(1)",
        ] {
            d.set_attribute(a, "href", ok).unwrap();
        }
        for ok in [
            "https://example.com/a.png",
            "img/a.png",
            "data:image/png;base64,iVBORw0KGgo=",
            "DATA:Image/PNG;base64,iVBORw0KGgo=",
            "data:image/svg+xml,%3Csvg%3E%3C/svg%3E",
            "data:image/svg+xml;utf8,x",
        ] {
            d.set_attribute(img, "src", ok).unwrap();
        }
        for bad in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            " \t javascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "java\0script:alert(1)",
            "\u{1}javascript:alert(1)",
            "vbscript:msgbox(1)",
            "data:text/html,<script>alert(1)</script>",
            "data:image/png;base64,x",
            "file:///etc/passwd",
            "ftp://example.com",
            "jav\u{AD}ascript:alert(1)",
            "java\u{2028}script:alert(1)",
            "java script:alert(1)",
            "c:\\x",
        ] {
            let err = d.set_attribute(a, "href", bad).unwrap_err();
            assert!(matches!(err, DomError::ForbiddenUrl(_)), "{bad:?}: {err}");
        }
        // data:image/png is for images only; mailto is for links only.
        d.set_attribute(a, "href", "data:image/png;base64,x")
            .unwrap_err();
        for bad in [
            "mailto:x@example.com",
            "data:text/html;base64,PHNjcmlwdD4=",
            "data:image/svg",
            "data:image/pngx,1",
            "data:image/svg+xml",
            "javascript:alert(1)",
            "data:,x",
        ] {
            let err = d.set_attribute(img, "src", bad).unwrap_err();
            assert!(matches!(err, DomError::ForbiddenUrl(_)), "{bad:?}: {err}");
        }
        let msg = d
            .set_attribute(a, "href", "javascript:alert(1)")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("https:") && msg.contains("relative"), "{msg}");
        // The last accepted values remain.
        assert_eq!(
            d.get_attribute(a, "href").unwrap(),
            Some("jav&#x09;ascript:alert(1)")
        );
        assert_eq!(
            d.get_attribute(img, "src").unwrap(),
            Some("data:image/svg+xml;utf8,x")
        );
    }

    #[test]
    fn svg_values() {
        let mut d = doc();
        let root = d.root();
        let svg = add(&mut d, root, "svg");
        let path = add(&mut d, svg, "path");
        for (n, v) in [
            ("d", "M0 0 L10 10 Z"),
            ("fill", "none"),
            ("stroke", "rgb(1,2,3)"),
            ("transform", "translate(1,2) rotate(45)"),
            ("font-family", "Arial, sans-serif"),
        ] {
            d.set_attribute(path, n, v).unwrap();
        }
        for (n, v) in [
            ("fill", "url(#g)"),
            ("fill", "URL (javascript:alert(1))"),
            ("stroke", "javascript:alert(1)"),
            ("transform", "expression(alert(1))"),
            ("d", "M0 0<script>"),
            ("fill", "\\75 rl(x)"),
        ] {
            let err = d.set_attribute(path, n, v).unwrap_err();
            assert!(matches!(err, DomError::ForbiddenAttribute(_)), "{v}: {err}");
        }
        assert!(matches!(
            d.set_attribute(path, "href", "#x"),
            Err(DomError::ForbiddenAttribute(_))
        ));
        assert!(matches!(
            d.set_attribute(path, "xlink:href", "#x"),
            Err(DomError::ForbiddenAttribute(_))
        ));
    }

    #[test]
    fn limit_max_nodes_counts_detached_elements() {
        let mut d = Document::new(DomLimits {
            max_nodes: 3,
            ..limits()
        });
        let root = d.root();
        let a = add(&mut d, root, "p");
        d.create_element("p").unwrap();
        let c = d.create_element("p").unwrap();
        let err = d.create_element("p").unwrap_err();
        assert!(matches!(err, DomError::TooLarge(_)));
        assert!(err.to_string().contains("at most 3"), "{err}");
        // Removing does not free anything.
        d.remove_child(root, a).unwrap();
        assert!(d.create_element("p").is_err());
        d.append_child(root, c).unwrap();
    }

    #[test]
    fn limit_max_bytes_accounts_replacements() {
        let mut d = Document::new(DomLimits {
            max_bytes: 20,
            ..limits()
        });
        let root = d.root();
        let p = add(&mut d, root, "p");
        d.set_text(p, "0123456789").unwrap();
        d.set_text(p, "abcdefghij").unwrap(); // replaces, 10 bytes
        let q = add(&mut d, root, "p");
        d.set_text(q, "0123456789").unwrap(); // 20
        let err = d.set_text(root, "x").unwrap_err();
        // Setting text on the root would drop both children's text from the
        // tree, but they stay in the arena: their bytes still count.
        assert!(matches!(err, DomError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("at most 20"), "{err}");
        d.set_text(q, "").unwrap(); // 10
        d.set_attribute(q, "id", "abcdefgh").unwrap(); // 2 + 8 = 20
        let err = d.set_attribute(q, "title", "").unwrap_err();
        assert!(matches!(err, DomError::TooLarge(_)));
        d.set_attribute(q, "id", "abcd").unwrap(); // replacement: 16
        d.set_attribute(q, "lang", "").unwrap(); // 20
        assert!(d.set_text(q, "x").is_err());
        assert!(d.remove_attribute(q, "lang").unwrap()); // 16
        d.set_text(q, "wxyz").unwrap(); // 20
        assert!(d.set_text(p, "abcdefghijk").is_err());
        // A failed operation changes nothing.
        assert_eq!(d.text(p).unwrap(), "abcdefghij");
        assert_eq!(d.get_attribute(q, "title").unwrap(), None);
    }

    #[test]
    fn limit_max_depth() {
        let mut d = Document::new(DomLimits {
            max_depth: 3,
            ..limits()
        });
        let root = d.root();
        let a = add(&mut d, root, "div"); // depth 1
        let b = add(&mut d, a, "div"); // 2
        let c = add(&mut d, b, "div"); // 3
        let e = d.create_element("span").unwrap();
        let err = d.append_child(c, e).unwrap_err();
        assert!(matches!(err, DomError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("at most 3"), "{err}");
        // A detached subtree is measured when it is attached.
        let x = d.create_element("div").unwrap();
        let y = d.create_element("div").unwrap();
        let z = d.create_element("div").unwrap();
        d.append_child(x, y).unwrap();
        d.append_child(y, z).unwrap();
        assert!(matches!(d.append_child(a, x), Err(DomError::TooLarge(_))));
        d.append_child(root, x).unwrap();
        let w = d.create_element("div").unwrap();
        d.append_child(z, w).unwrap_err();
        // A detached tree's top counts as depth 0, like the root, so its
        // trees are bounded too; attaching one is checked again.
        d.append_child(w, x).unwrap();
        d.append_child(root, w).unwrap_err();
        let v = d.create_element("div").unwrap();
        d.append_child(v, w).unwrap_err();
        d.append_child(root, x).unwrap();
        d.append_child(v, w).unwrap();
        d.append_child(w, x).unwrap_err();
        // Moving a subtree up is fine.
        d.append_child(root, c).unwrap();
        d.append_child(c, e).unwrap();
    }

    #[test]
    fn limit_selector_length() {
        let mut d = Document::new(DomLimits {
            max_selector_bytes: 8,
            ..limits()
        });
        let root = d.root();
        add(&mut d, root, "p");
        assert_eq!(d.query_selector_all(root, "div > p").unwrap().len(), 1);
        let err = d.query_selector(root, "div  >  p").unwrap_err();
        assert!(matches!(err, DomError::TooLarge(_)));
        assert!(err.to_string().contains("at most 8"), "{err}");
    }

    #[test]
    fn deep_trees_do_not_recurse() {
        let n = 10_000;
        let mut d = Document::new(DomLimits {
            max_nodes: n,
            max_bytes: 1_000_000,
            max_depth: n,
            max_selector_bytes: 100,
        });
        let mut parent = d.root();
        for _ in 0..n {
            parent = add(&mut d, parent, "div");
        }
        d.set_text(parent, "leaf").unwrap();
        let html = d.to_html();
        assert_eq!(html.matches("<div").count(), n + 1);
        assert_eq!(html.matches("</div>").count(), n + 1);
        assert_eq!(d.text(d.root()).unwrap(), "leaf");
        assert_eq!(d.query_selector_all(d.root(), "div div").unwrap().len(), n);
        let first = d.children(d.root()).unwrap();
        assert_eq!(
            d.query_selector(d.root(), "* > *").unwrap(),
            first.first().copied()
        );
    }

    /// A document for selector tests:
    /// ```text
    /// root
    ///   section#s1.box
    ///     h2.title          "A"
    ///     ul
    ///       li.item[data-k=1]
    ///         span.hot      "x"
    ///       li.item.last
    ///   section.box
    ///     p[title="hi there"]
    ///       a[href=#z]
    ///     div.item
    ///       span            "y"
    /// ```
    struct Fixture {
        d: Document,
        s1: NodeId,
        h2: NodeId,
        ul: NodeId,
        li1: NodeId,
        span1: NodeId,
        li2: NodeId,
        s2: NodeId,
        p: NodeId,
        a: NodeId,
        div: NodeId,
        span2: NodeId,
    }

    fn fixture() -> Fixture {
        let mut d = doc();
        let root = d.root();
        let s1 = add(&mut d, root, "section");
        d.set_attribute(s1, "id", "s1").unwrap();
        d.set_attribute(s1, "class", "box").unwrap();
        let h2 = add_text(&mut d, s1, "h2", "A");
        d.set_attribute(h2, "class", "title").unwrap();
        let ul = add(&mut d, s1, "ul");
        let li1 = add(&mut d, ul, "li");
        d.set_attribute(li1, "class", "item").unwrap();
        d.set_attribute(li1, "data-k", "1").unwrap();
        let span1 = add_text(&mut d, li1, "span", "x");
        d.set_attribute(span1, "class", "hot").unwrap();
        let li2 = add(&mut d, ul, "li");
        d.set_attribute(li2, "class", " item  last ").unwrap();
        let s2 = add(&mut d, root, "section");
        d.set_attribute(s2, "class", "box").unwrap();
        let p = add(&mut d, s2, "p");
        d.set_attribute(p, "title", "hi there").unwrap();
        let a = add(&mut d, p, "a");
        d.set_attribute(a, "href", "#z").unwrap();
        let div = add(&mut d, s2, "div");
        d.set_attribute(div, "class", "item").unwrap();
        let span2 = add_text(&mut d, div, "span", "y");
        Fixture {
            d,
            s1,
            h2,
            ul,
            li1,
            span1,
            li2,
            s2,
            p,
            a,
            div,
            span2,
        }
    }

    #[test]
    fn selectors_match_each_feature() {
        let f = fixture();
        let root = f.d.root();
        let all = |s: &str| f.d.query_selector_all(root, s).unwrap();
        assert_eq!(
            all("*"),
            vec![
                f.s1, f.h2, f.ul, f.li1, f.span1, f.li2, f.s2, f.p, f.a, f.div, f.span2
            ]
        );
        assert_eq!(all("section"), vec![f.s1, f.s2]);
        assert_eq!(all("SPAN"), vec![f.span1, f.span2]);
        assert_eq!(all("#s1"), vec![f.s1]);
        assert_eq!(all(".item"), vec![f.li1, f.li2, f.div]);
        assert_eq!(all(".item.last"), vec![f.li2]);
        assert_eq!(all("li.item"), vec![f.li1, f.li2]);
        assert_eq!(all("[data-k]"), vec![f.li1]);
        assert_eq!(all("[DATA-K=1]"), vec![f.li1]);
        assert_eq!(all("[data-k='2']"), vec![]);
        assert_eq!(all("[title=\"hi there\"]"), vec![f.p]);
        assert_eq!(all("[title=hi]"), vec![]);
        assert_eq!(all("a[href='#z']"), vec![f.a]);
        assert_eq!(all("section.box#s1[id]"), vec![f.s1]);
        assert_eq!(all("section span"), vec![f.span1, f.span2]);
        assert_eq!(all("section > span"), vec![]);
        assert_eq!(all(".box > .item > span"), vec![f.span2]);
        assert_eq!(all("ul > li > span.hot"), vec![f.span1]);
        assert_eq!(all("#s1 .item"), vec![f.li1, f.li2]);
        assert_eq!(all("section > *"), vec![f.h2, f.ul, f.p, f.div]);
        assert_eq!(all("div"), vec![f.div]);
        // The root container is an ancestor, as in a browser.
        assert_eq!(all("div section"), vec![f.s1, f.s2]);
        assert_eq!(all("div > section"), vec![f.s1, f.s2]);
        assert_eq!(all("nav"), vec![]);
        assert_eq!(f.d.query_selector(root, "span").unwrap(), Some(f.span1));
        assert_eq!(
            f.d.query_selector(root, ".item span").unwrap(),
            Some(f.span1)
        );
        assert_eq!(f.d.query_selector(root, "nav").unwrap(), None);
    }

    #[test]
    fn selector_lists_are_in_document_order_without_duplicates() {
        let f = fixture();
        let root = f.d.root();
        let all = |s: &str| f.d.query_selector_all(root, s).unwrap();
        assert_eq!(all("span, h2"), vec![f.h2, f.span1, f.span2]);
        assert_eq!(all("a, p, .item"), vec![f.li1, f.li2, f.p, f.a, f.div]);
        assert_eq!(
            all(".item, li, [data-k], *.last"),
            vec![f.li1, f.li2, f.div]
        );
        assert_eq!(all("section, section"), vec![f.s1, f.s2]);
        assert_eq!(f.d.query_selector(root, "span, h2").unwrap(), Some(f.h2));
    }

    #[test]
    fn selectors_are_scoped() {
        let f = fixture();
        let q = |scope: NodeId, s: &str| f.d.query_selector_all(scope, s).unwrap();
        assert_eq!(q(f.s2, "span"), vec![f.span2]);
        assert_eq!(q(f.s2, "section"), vec![]); // not the scope itself
        assert_eq!(q(f.s2, "*"), vec![f.p, f.a, f.div, f.span2]);
        assert_eq!(q(f.ul, ".item"), vec![f.li1, f.li2]);
        assert_eq!(q(f.span1, "*"), vec![]);
        // Combinators may match the scope and its ancestors.
        assert_eq!(q(f.ul, "section li"), vec![f.li1, f.li2]);
        assert_eq!(q(f.ul, "ul > li"), vec![f.li1, f.li2]);
        assert_eq!(q(f.li1, "#s1 span"), vec![f.span1]);
        assert_eq!(q(f.s1, "#s1 > ul"), vec![f.ul]);
        // Detached subtrees can be queried.
        let mut d = doc();
        let x = d.create_element("div").unwrap();
        let y = d.create_element("p").unwrap();
        d.append_child(x, y).unwrap();
        assert_eq!(d.query_selector_all(x, "div > p").unwrap(), vec![y]);
        assert_eq!(d.query_selector_all(d.root(), "p").unwrap(), vec![]);
    }

    #[test]
    fn invalid_selectors_are_errors() {
        let f = fixture();
        let root = f.d.root();
        for (sel, part) in [
            ("", "empty"),
            ("li:first-child", ":first-child"),
            ("a:not(.x)", ":not"),
            ("h2 + ul", "'+'"),
            ("h2 ~ ul", "'~'"),
            ("[data-k", "unbalanced '['"),
            ("li]", "unbalanced ']'"),
            ("[title^=hi]", "'^='"),
            ("li,", "empty entry"),
        ] {
            for r in [
                f.d.query_selector(root, sel).map(drop),
                f.d.query_selector_all(root, sel).map(drop),
            ] {
                match r {
                    Err(DomError::InvalidSelector(m)) => {
                        assert!(m.contains(part), "{sel:?}: {m}")
                    }
                    other => panic!("{sel:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn forbidden_tags_are_errors_not_dropped() {
        let mut d = doc();
        for tag in [
            "script",
            "SCRIPT",
            "ScRiPt",
            "iframe",
            "frame",
            "frameset",
            "style",
            "object",
            "embed",
            "link",
            "meta",
            "base",
            "form",
            "input",
            "textarea",
            "button",
            "select",
            "template",
            "foreignObject",
            "foreignobject",
            "use",
            "image",
            "animate",
            "set",
            "math",
            "noscript",
            "xmp",
            "plaintext",
            "html",
            "body",
            "head",
            "applet",
            "marquee",
            "svg:script",
            "script ",
            " div",
            "di\0v",
            "",
            "<div>",
            "div onclick",
            "ſcript",
        ] {
            match d.create_element(tag) {
                Err(DomError::ForbiddenTag(msg)) => {
                    assert!(msg.contains("not allowed"), "{msg}");
                    assert!(msg.contains("div, span, p"), "{msg}");
                }
                other => panic!("{tag:?}: {other:?}"),
            }
        }
        let msg = d.create_element("script").unwrap_err().to_string();
        assert!(msg.contains("\"script\" is not allowed"), "{msg}");
        assert!(msg.contains("Scripts cannot"), "{msg}");
        // Long names are cut in messages.
        let msg = d
            .create_element(&"x".repeat(10_000))
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 1000, "{}", msg.len());
        assert!(d.is_empty());
        // Every allowlisted tag is accepted in any case.
        for tag in HTML_TAGS.iter().chain(SVG_TAGS) {
            let id = d.create_element(&tag.to_ascii_uppercase()).unwrap();
            assert_eq!(d.tag_name(id).unwrap(), *tag);
        }
    }

    #[test]
    fn forbidden_attributes_are_errors_not_dropped() {
        let mut d = doc();
        let root = d.root();
        let tags = ["div", "a", "img", "svg", "rect", "text", "td", "canvas"];
        let ids: Vec<NodeId> = tags.iter().map(|t| add(&mut d, root, t)).collect();
        let before = d.to_html();
        for name in [
            "onclick",
            "ONCLICK",
            "OnMouseOver",
            "onload",
            "onerror",
            "onfocus",
            "onbegin",
            "style",
            "STYLE",
            "srcdoc",
            "formaction",
            "action",
            "xlink:href",
            "XLINK:HREF",
            "xmlns:xlink",
            "background",
            "dynsrc",
            "lowsrc",
            "poster",
            "content",
            "http-equiv",
            "autofocus",
            "contenteditable",
            "tabindex",
            "srcset",
            "usemap",
            "ping",
            "download",
            "is",
            "slot",
            "nonce",
            "values",
            "attributename",
            "begin",
            "on",
            "",
            "id ",
            " id",
            "id=x",
            "\"onclick",
            "on\0click",
        ] {
            for (tag, id) in tags.iter().zip(&ids) {
                match d.set_attribute(*id, name, "alert(1)") {
                    Err(DomError::ForbiddenAttribute(msg)) => {
                        assert!(msg.contains("not allowed"), "{msg}");
                        assert!(msg.contains("Allowed on"), "{msg}");
                    }
                    other => panic!("{name:?} on {tag}: {other:?}"),
                }
                assert_eq!(d.get_attribute(*id, name).unwrap(), None);
            }
        }
        // URL and svg attributes on the wrong elements.
        for (tag, name) in [
            ("div", "href"),
            ("svg", "href"),
            ("rect", "href"),
            ("div", "src"),
            ("a", "src"),
            ("img", "href"),
            ("div", "fill"),
            ("a", "transform"),
        ] {
            let id = ids[tags.iter().position(|t| *t == tag).unwrap()];
            assert!(
                matches!(
                    d.set_attribute(id, name, "x"),
                    Err(DomError::ForbiddenAttribute(_))
                ),
                "{name} on {tag}"
            );
        }
        assert_eq!(d.to_html(), before);
        let msg = d
            .set_attribute(ids[0], "onclick", "x")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("Event handlers"), "{msg}");
        assert!(msg.contains("data-*"), "{msg}");
    }

    // ---- XSS ---------------------------------------------------------------

    /// Attributes whose values are plain text to a browser: never fetched,
    /// navigated to, or interpreted as CSS.
    fn inert_attribute(tag: &str, name: &str) -> bool {
        matches!(
            name,
            "id" | "class"
                | "title"
                | "alt"
                | "lang"
                | "dir"
                | "role"
                | "rel"
                | "target"
                | "colspan"
                | "rowspan"
                | "scope"
                | "start"
        ) || name.starts_with("aria-")
            || name.starts_with("data-")
            || (matches!(tag, "img" | "canvas") && matches!(name, "width" | "height"))
    }

    /// Decode character references in one pass, as a browser does.
    fn decode(value: &str) -> String {
        let mut out = String::new();
        let mut rest = value;
        while let Some(at) = rest.find('&') {
            out.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let named = [("lt;", '<'), ("gt;", '>'), ("quot;", '"'), ("amp;", '&')];
            if let Some((name, c)) = named.iter().find(|(n, _)| rest.starts_with(n)) {
                out.push(*c);
                rest = &rest[name.len()..];
            } else if let Some(num) = rest.strip_prefix('#') {
                let (hex, digits) = match num.strip_prefix(['x', 'X']) {
                    Some(h) => (true, h),
                    None => (false, num),
                };
                let len = digits
                    .find(|c: char| !c.is_ascii_hexdigit() || (!hex && !c.is_ascii_digit()))
                    .unwrap_or(digits.len());
                let code = u32::from_str_radix(&digits[..len], if hex { 16 } else { 10 });
                let c = code.ok().and_then(char::from_u32).unwrap_or('\u{FFFD}');
                out.push(c);
                rest = &digits[len..];
                rest = rest.strip_prefix(';').unwrap_or(rest);
            } else {
                out.push('&');
            }
        }
        out.push_str(rest);
        out
    }

    /// Assert that `html` holds no executable construct, by tokenizing it
    /// the way a browser would and checking every tag and attribute.
    fn assert_no_executable(html: &str) {
        let lower = html.to_lowercase();
        for bad in [
            "<script",
            "<iframe",
            "<object",
            "<embed",
            "<style",
            "<link",
            "<meta",
            "<base",
            "<frame",
            "<form",
            "<input",
            "<textarea",
            "<button",
            "<template",
            "<math",
            "<noscript",
            "<xmp",
            "<plaintext",
            "<foreignobject",
            "<use",
            "<image",
            "<animate",
            "<set",
            "<!",
            "<?",
        ] {
            assert!(!lower.contains(bad), "{bad} in {html}");
        }
        let allowed: Vec<&str> = HTML_TAGS.iter().chain(SVG_TAGS).copied().collect();
        let b = lower.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'>' {
                panic!("raw '>' in text at {i}: {html}");
            }
            if b[i] != b'<' {
                i += 1;
                continue;
            }
            i += 1;
            let closing = b.get(i) == Some(&b'/');
            if closing {
                i += 1;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let tag = &lower[start..i];
            assert!(allowed.contains(&tag), "tag {tag:?} in {html}");
            loop {
                match b.get(i) {
                    Some(b'>') => {
                        i += 1;
                        break;
                    }
                    Some(b' ') if !closing => i += 1,
                    Some(_) if !closing => {
                        let ns = i;
                        while i < b.len() && !matches!(b[i], b'=' | b' ' | b'>' | b'/') {
                            i += 1;
                        }
                        let name = &lower[ns..i];
                        assert_eq!(b.get(i), Some(&b'='), "attribute {name:?} in {html}");
                        assert_eq!(b.get(i + 1), Some(&b'"'), "unquoted {name:?} in {html}");
                        i += 2;
                        let vs = i;
                        while i < b.len() && b[i] != b'"' {
                            assert!(b[i] != b'<' && b[i] != b'>', "raw <> in value: {html}");
                            i += 1;
                        }
                        assert!(i < b.len(), "unterminated value in {html}");
                        let value = decode(&lower[vs..i]);
                        i += 1;
                        check_attribute(tag, name, &value, html);
                    }
                    other => panic!("unexpected {other:?} in tag {tag} of {html}"),
                }
            }
        }
    }

    fn check_attribute(tag: &str, name: &str, value: &str, html: &str) {
        assert!(!name.starts_with("on"), "handler {name} in {html}");
        assert!(
            name.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
            "attribute name {name:?} in {html}"
        );
        assert!(
            !matches!(
                name,
                "style" | "srcdoc" | "formaction" | "action" | "background" | "srcset"
            ),
            "{name} in {html}"
        );
        assert!(name != "href" || tag == "a", "href on {tag} in {html}");
        assert!(name != "src" || tag == "img", "src on {tag} in {html}");
        if inert_attribute(tag, name) {
            return;
        }
        let squeezed: String = value
            .chars()
            .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
            .collect();
        for bad in ["javascript:", "vbscript:"] {
            assert!(
                !squeezed.contains(bad),
                "{bad} in {name}={value:?} of {html}"
            );
        }
        // CSS functions matter in svg presentation values; in a URL they
        // are just part of a relative path.
        if name != "href" && name != "src" {
            for bad in ["url(", "expression("] {
                assert!(
                    !squeezed.contains(bad),
                    "{bad} in {name}={value:?} of {html}"
                );
            }
        }
        if squeezed.contains("data:") {
            assert!(
                name == "src"
                    && (squeezed.starts_with("data:image/png")
                        || squeezed.starts_with("data:image/svg+xml")),
                "data: in {name}={value:?} of {html}"
            );
        }
    }

    const PAYLOADS: &[&str] = &[
        "<script>alert(1)</script>",
        "<SCRIPT SRC=http://xss.example/xss.js></SCRIPT>",
        "<scr<script>ipt>alert(1)</scr</script>ipt>",
        "<<SCRIPT>alert(\"XSS\");//<</SCRIPT>",
        "<img src=x onerror=alert(1)>",
        "<IMG SRC=\"javascript:alert('XSS');\">",
        "<IMG SRC=JaVaScRiPt:alert('XSS')>",
        "<img src=\"x\" oNeRrOr=\"alert(1)\">",
        "<body onload=alert(1)>",
        "<div onmouseover=\"alert(1)\">x</div>",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "java\rscript:alert(1)",
        "   javascript:alert(1)",
        " \u{1} \u{7f}javascript:alert(1)",
        "javascript\0:alert(1)",
        "\0javascript:alert(1)",
        "jav&#x09;ascript:alert(1)",
        "jav&#x0A;ascript:alert(1)",
        "&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)",
        "&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058alert(1)",
        "&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A;alert(1)",
        "javascript&colon;alert(1)",
        "jav\u{00AD}ascript:alert(1)",
        "java\u{2028}script:alert(1)",
        "vbscript:msgbox(1)",
        "VBScript:MsgBox(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "data:text/html,<script>alert(1)</script>",
        "DATA:TEXT/HTML,<script>alert(1)</script>",
        " data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
        "data:image/png;base64,iVBORw0KGgo=\"><script>alert(1)</script>",
        "<svg onload=alert(1)>",
        "<svg/onload=alert(1)>",
        "<svg><script>alert(1)</script></svg>",
        "<iframe src=javascript:alert(1)>",
        "<iframe srcdoc=\"<script>alert(1)</script>\">",
        "<object data=javascript:alert(1)>",
        "<embed src=javascript:alert(1)>",
        "<style>@import'javascript:alert(1)';</style>",
        "<link rel=stylesheet href=javascript:alert(1)>",
        "<meta http-equiv=refresh content=\"0;url=javascript:alert(1)\">",
        "<base href=javascript:alert(1)//>",
        "background:url(javascript:alert(1))",
        "url(javascript:alert(1))",
        "expression(alert(1))",
        "\"><script>alert(1)</script>",
        "'><script>alert(1)</script>",
        "\" onmouseover=\"alert(1)",
        "' onmouseover='alert(1)",
        "x\" onerror=\"alert(1)",
        "</div><script>alert(1)</script>",
        "</title><script>alert(1)</script>",
        "</textarea><script>alert(1)</script>",
        "<!--<script>alert(1)//-->",
        "<![CDATA[<script>alert(1)</script>]]>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
        "<svg><foreignObject><iframe src=javascript:alert(1)>",
        "<svg><use href=\"data:image/svg+xml,<svg id='x' onload='alert(1)'/>#x\"/>",
        "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
        "<svg><animate attributeName=href values=javascript:alert(1) />",
        "<a href=\"javascript:alert(1)\">x</a>",
        "%3Cscript%3Ealert(1)%3C/script%3E",
        "\u{FF1C}script\u{FF1E}alert(1)\u{FF1C}/script\u{FF1E}",
        "\u{202E}tpircs\u{202D}",
        "http://example.com/\"onmouseover=\"alert(1)",
        "mailto:x@example.com?body=<script>alert(1)</script>",
        "file:///etc/passwd",
        "onclick",
        "OnClick",
        "ONMOUSEOVER",
        "onLoad",
        "style",
        "xlink:href",
        "srcdoc",
        "formaction",
        "href",
        "src",
        "script",
        "iframe",
        "foreignObject",
        "use",
        "image",
        "animate",
        "set",
        "img",
        "svg",
        "a",
    ];

    /// Try `payload` by every route and check the result.
    fn try_payload(payload: &str) {
        let mut d = doc();
        let root = d.root();
        // As a tag name.
        if let Ok(id) = d.create_element(payload) {
            d.append_child(root, id).unwrap();
            let _ = d.set_text(id, payload);
        }
        let div = add(&mut d, root, "div");
        let a = add(&mut d, div, "a");
        let img = add(&mut d, div, "img");
        let svg = add(&mut d, div, "svg");
        let rect = add(&mut d, svg, "rect");
        let text = add(&mut d, svg, "text");
        let title = add(&mut d, svg, "title");
        let p = add(&mut d, div, "p");
        // As an attribute name, with harmless and harmful values.
        for id in [div, a, img, svg, rect, text] {
            for value in ["alert(1)", "javascript:alert(1)", payload] {
                let _ = d.set_attribute(id, payload, value);
            }
        }
        // As a value of each kind of attribute.
        let routes = [
            (a, "href"),
            (img, "src"),
            (div, "title"),
            (div, "class"),
            (div, "id"),
            (div, "data-x"),
            (img, "alt"),
            (a, "target"),
            (rect, "fill"),
            (rect, "transform"),
            (svg, "viewBox"),
        ];
        for (id, name) in routes {
            let _ = d.set_attribute(id, name, payload);
        }
        // As text.
        for id in [p, text, title, a, div] {
            // `div` last: its set_text detaches the others, which are then
            // re-attached to the root.
            d.set_text(id, payload).unwrap();
        }
        for id in [a, img, svg, p] {
            d.append_child(root, id).unwrap();
        }
        assert_no_executable(&d.to_html());
    }

    #[test]
    fn xss_payloads_cannot_produce_executable_html() {
        assert!(PAYLOADS.len() >= 40);
        for payload in PAYLOADS {
            try_payload(payload);
        }
        // Every payload at once, in one document, as text and values.
        let mut d = Document::new(DomLimits {
            max_nodes: 10_000,
            max_bytes: 10_000_000,
            ..limits()
        });
        let root = d.root();
        for payload in PAYLOADS {
            let p = add_text(&mut d, root, "p", payload);
            let _ = d.set_attribute(p, "title", payload);
            let a = add_text(&mut d, p, "a", payload);
            let _ = d.set_attribute(a, "href", payload);
            let _ = d.set_attribute(a, payload, payload);
        }
        assert_no_executable(&d.to_html());
    }

    #[test]
    fn script_like_payloads_are_refused_as_urls() {
        let mut d = doc();
        let root = d.root();
        let a = add(&mut d, root, "a");
        let img = add(&mut d, root, "img");
        for payload in PAYLOADS {
            let squeezed = squeeze(payload);
            let dangerous = ["javascript:", "vbscript:", "data:text", "file:"]
                .iter()
                .any(|s| squeezed.contains(s))
                && !squeezed.starts_with("http:")
                && !squeezed.starts_with("mailto:")
                && !squeezed.starts_with("data:image/");
            if !dangerous || squeezed.starts_with('<') {
                continue;
            }
            for (id, name) in [(a, "href"), (img, "src")] {
                assert!(
                    matches!(
                        d.set_attribute(id, name, payload),
                        Err(DomError::ForbiddenUrl(_))
                    ),
                    "{name}={payload:?}"
                );
            }
        }
        assert_eq!(d.get_attribute(a, "href").unwrap(), None);
        assert_eq!(d.get_attribute(img, "src").unwrap(), None);
    }

    #[test]
    fn checker_catches_executable_html() {
        // The checker itself must fail on what it guards against.
        for bad in [
            "<div><script>alert(1)</script></div>",
            "<div onclick=\"x\"></div>",
            "<a href=\"javascript:alert(1)\"></a>",
            "<a href=\"java&#9;script:alert(1)\"></a>",
            "<a href=\" JAVA\tSCRIPT:alert(1)\"></a>",
            "<a href=\"data:text/html,x\"></a>",
            "<img src=\"data:text/html,x\">",
            "<rect fill=\"url(#x)\"></rect>",
            "<div style=\"x\"></div>",
            "<svg><use></use></svg>",
            "<p>a > b</p>",
            "<div id=x></div>",
        ] {
            let caught = std::panic::catch_unwind(|| assert_no_executable(bad)).is_err();
            assert!(caught, "checker missed {bad}");
        }
    }
}

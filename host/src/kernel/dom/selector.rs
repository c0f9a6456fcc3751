//! The CSS selector subset behind `query-selector(-all)`.
//!
//! Supported: `*`, type (`div`), `#id`, `.class`, `[attr]`, `[attr=value]`
//! (value quoted with `'` or `"`, or a bare identifier), compounds of those
//! (`div.a#b[x]`), the descendant (whitespace) and child (`>`) combinators,
//! and selector lists (`a, b`). Everything else (pseudo-classes, sibling
//! combinators, other attribute operators, escapes, namespaces) is rejected
//! with [`DomError::InvalidSelector`] naming the unsupported part, so an
//! artifact never silently gets different results than a browser would give.
//!
//! Semantics follow the DOM: type and attribute names are case-insensitive,
//! ids, classes and attribute values are case-sensitive, and (as in a
//! browser's `element.querySelectorAll`) combinators may match ancestors
//! above the scope element; only the *subject* must be a descendant of it.
//!
//! # Matching without backtracking
//!
//! A parsed list is flattened into steps (the compounds of every complex
//! selector, left to right). Matching runs top-down, one state per element:
//!
//! * `matched[i]`: the selector prefix ending at step `i` matches with step
//!   `i`'s compound on this very element;
//! * `reached[i]`: `matched[i]` holds on this element or one of its ancestors.
//!
//! An element's state is computed from its parent's state alone (a child
//! combinator needs the parent's `matched`, a descendant combinator the
//! parent's `reached`), so a query costs O(elements × steps) whatever the
//! selector looks like: `* * * * … *` cannot trigger exponential backtracking.

use super::{DomError, quoted};

/// What selector matching needs to know about an element.
pub trait Subject {
    /// The element's lower-case tag name.
    fn tag(&self) -> &str;
    /// The value of the attribute named `name` (lower-case), compared
    /// case-insensitively with the element's attribute names.
    fn attribute(&self, name: &str) -> Option<&str>;
}

/// One simple selector after the optional type selector of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Simple {
    /// `#id`.
    Id(String),
    /// `.class`.
    Class(String),
    /// `[name]` (value `None`) or `[name=value]`.
    Attr { name: String, value: Option<String> },
}

/// A compound selector such as `div.a#b[x]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Compound {
    /// The lower-case type selector; `None` for `*` or no type selector.
    tag: Option<String>,
    simples: Vec<Simple>,
}

impl Compound {
    fn matches(&self, el: &impl Subject) -> bool {
        if let Some(tag) = &self.tag
            && tag != el.tag()
        {
            return false;
        }
        self.simples.iter().all(|simple| match simple {
            Simple::Id(id) => el.attribute("id") == Some(id.as_str()),
            Simple::Class(class) => el
                .attribute("class")
                .is_some_and(|v| v.split_ascii_whitespace().any(|c| c == class)),
            Simple::Attr { name, value } => match (el.attribute(name), value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(actual), Some(wanted)) => actual == wanted,
            },
        })
    }
}

/// How a step relates to the previous step of its complex selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// The first compound of a complex selector.
    First,
    /// Whitespace: the previous step matches some ancestor.
    Descendant,
    /// `>`: the previous step matches the parent.
    Child,
}

/// One compound of the flattened list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    compound: Compound,
    link: Link,
    /// The subject (rightmost compound) of its complex selector.
    last: bool,
}

/// A parsed selector list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorList {
    steps: Vec<Step>,
}

/// The matching state of one element; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchState {
    matched: Vec<bool>,
    reached: Vec<bool>,
}

impl SelectorList {
    /// Parse `text`, or say which part of it is outside the supported subset.
    /// The caller bounds `text`'s length.
    pub fn parse(text: &str) -> Result<Self, DomError> {
        let mut parser = Parser {
            src: text,
            bytes: text.as_bytes(),
            pos: 0,
        };
        let steps = parser.parse_list()?;
        Ok(SelectorList { steps })
    }

    /// The state of `el`, given the state of its parent (`None` for an
    /// element without a parent).
    pub fn advance(&self, parent: Option<&MatchState>, el: &impl Subject) -> MatchState {
        let n = self.steps.len();
        let mut matched = vec![false; n];
        let mut reached = vec![false; n];
        let parent_bit = |bits: fn(&MatchState) -> &Vec<bool>, i: Option<usize>| -> bool {
            match (parent, i) {
                (Some(p), Some(i)) => bits(p).get(i).copied().unwrap_or(false),
                _ => false,
            }
        };
        for (i, step) in self.steps.iter().enumerate() {
            let linked = match step.link {
                Link::First => true,
                Link::Descendant => parent_bit(|p| &p.reached, i.checked_sub(1)),
                Link::Child => parent_bit(|p| &p.matched, i.checked_sub(1)),
            };
            let here = linked && step.compound.matches(el);
            matched[i] = here;
            reached[i] = here || parent_bit(|p| &p.reached, Some(i));
        }
        MatchState { matched, reached }
    }

    /// Whether the element whose state is `state` matches some selector of
    /// the list.
    pub fn is_match(&self, state: &MatchState) -> bool {
        self.steps
            .iter()
            .zip(&state.matched)
            .any(|(step, &m)| step.last && m)
    }
}

/// What the error messages list as supported.
const SUPPORTED: &str = "supported: *, tag, #id, .class, [attr], [attr=value], \
     descendant (space) and child (>) combinators, and lists (a, b)";

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b >= 0x80
}

fn is_css_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

impl Parser<'_> {
    fn error(&self, reason: &str) -> DomError {
        DomError::InvalidSelector(format!(
            "invalid selector {}: {reason}; {SUPPORTED}",
            quoted(self.src)
        ))
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skip whitespace; true if there was any.
    fn skip_space(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_css_space) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn ident(&mut self) -> Option<&str> {
        let start = self.pos;
        while self.peek().is_some_and(is_ident_byte) {
            self.pos += 1;
        }
        // Identifier bytes are ASCII or parts of multi-byte characters, and
        // the scan stops only at ASCII bytes, so both ends are char boundaries.
        self.src.get(start..self.pos).filter(|s| !s.is_empty())
    }

    /// The error for an unexpected byte at the current position.
    fn unexpected(&self) -> DomError {
        let rest = self.src.get(self.pos..).unwrap_or("");
        let Some(c) = rest.chars().next() else {
            return self.error("it ends where a selector was expected");
        };
        match c {
            ':' => {
                let name: String = rest
                    .chars()
                    .take_while(|&c| c == ':' || is_ident_byte_char(c))
                    .take(40)
                    .collect();
                self.error(&format!(
                    "pseudo-classes and pseudo-elements such as '{name}' are not supported"
                ))
            }
            '+' => self.error("the '+' (adjacent sibling) combinator is not supported"),
            '~' => self.error("the '~' (general sibling) combinator is not supported"),
            '>' => self.error("'>' must stand between two selectors"),
            ',' => self
                .error("a list has an empty entry (check for a leading, doubled or trailing ',')"),
            '[' => self.error("unbalanced '['"),
            ']' => self.error("unbalanced ']'"),
            '(' | ')' => self.error("parentheses (functional pseudo-classes) are not supported"),
            '|' => self.error("namespace prefixes ('|') are not supported"),
            '\\' => self.error("escapes ('\\') are not supported"),
            '*' => self.error("'*' may only start a compound selector, as in '*.a'"),
            '"' | '\'' => self.error("quoted strings are only allowed as [attr=\"value\"]"),
            '#' => self.error("'#' must be followed by an id"),
            '.' => self.error("'.' must be followed by a class name"),
            other => self.error(&format!(
                "unexpected character {other:?} at byte {}",
                self.pos
            )),
        }
    }

    fn parse_list(&mut self) -> Result<Vec<Step>, DomError> {
        if self.bytes.iter().all(|&b| is_css_space(b)) {
            return Err(self.error("the selector is empty"));
        }
        let mut steps = Vec::new();
        loop {
            self.skip_space();
            self.parse_complex(&mut steps)?;
            match self.peek() {
                None => return Ok(steps),
                Some(b',') => {
                    self.pos += 1;
                    self.skip_space();
                    if matches!(self.peek(), None | Some(b',')) {
                        return Err(self.error(
                            "a list has an empty entry (check for a leading, doubled or trailing ',')",
                        ));
                    }
                }
                Some(_) => return Err(self.unexpected()),
            }
        }
    }

    /// Parse one complex selector, stopping at the end or a ','.
    fn parse_complex(&mut self, steps: &mut Vec<Step>) -> Result<(), DomError> {
        let compound = self.parse_compound()?;
        steps.push(Step {
            compound,
            link: Link::First,
            last: false,
        });
        loop {
            let spaced = self.skip_space();
            let link = match self.peek() {
                None | Some(b',') => break,
                Some(b'>') => {
                    self.pos += 1;
                    self.skip_space();
                    if matches!(self.peek(), None | Some(b',') | Some(b'>')) {
                        return Err(self.error("'>' must be followed by a selector"));
                    }
                    Link::Child
                }
                Some(b'+' | b'~') => return Err(self.unexpected()),
                Some(_) if spaced => Link::Descendant,
                Some(_) => return Err(self.unexpected()),
            };
            let compound = self.parse_compound()?;
            steps.push(Step {
                compound,
                link,
                last: false,
            });
        }
        if let Some(step) = steps.last_mut() {
            step.last = true;
        }
        Ok(())
    }

    fn parse_compound(&mut self) -> Result<Compound, DomError> {
        let start = self.pos;
        let tag = if self.peek() == Some(b'*') {
            self.pos += 1;
            None
        } else {
            self.ident().map(str::to_ascii_lowercase)
        };
        let mut simples = Vec::new();
        loop {
            match self.peek() {
                Some(b'#') => {
                    self.pos += 1;
                    let Some(id) = self.ident() else {
                        return Err(self.error("'#' must be followed by an id"));
                    };
                    simples.push(Simple::Id(id.to_owned()));
                }
                Some(b'.') => {
                    self.pos += 1;
                    let Some(class) = self.ident() else {
                        return Err(self.error("'.' must be followed by a class name"));
                    };
                    simples.push(Simple::Class(class.to_owned()));
                }
                Some(b'[') => simples.push(self.parse_attr()?),
                _ => break,
            }
        }
        if self.pos == start {
            return Err(self.unexpected());
        }
        match self.peek() {
            None | Some(b',' | b'>' | b'+' | b'~') => {}
            Some(b) if is_css_space(b) => {}
            Some(_) => return Err(self.unexpected()),
        }
        Ok(Compound { tag, simples })
    }

    /// Parse `[attr]` or `[attr=value]`, the current byte being '['.
    fn parse_attr(&mut self) -> Result<Simple, DomError> {
        self.pos += 1;
        self.skip_space();
        let Some(name) = self.ident().map(str::to_ascii_lowercase) else {
            return Err(match self.peek() {
                None => self.error("unbalanced '['"),
                Some(_) => self.error("'[' must be followed by an attribute name"),
            });
        };
        self.skip_space();
        let value = match self.peek() {
            Some(b']') => None,
            Some(b'=') => {
                self.pos += 1;
                self.skip_space();
                let value = match self.peek() {
                    Some(q @ (b'"' | b'\'')) => self.parse_quoted(q)?,
                    Some(b) if is_ident_byte(b) => self.ident().unwrap_or_default().to_owned(),
                    None => return Err(self.error("unbalanced '['")),
                    Some(_) => {
                        return Err(self.error(
                            "'=' in an attribute selector must be followed by a quoted value or an identifier",
                        ));
                    }
                };
                self.skip_space();
                match self.peek() {
                    Some(b']') => {}
                    None => return Err(self.error("unbalanced '['")),
                    Some(b) if is_ident_byte(b) => {
                        return Err(self.error(
                            "attribute selector flags such as [attr=value i] are not supported",
                        ));
                    }
                    Some(_) => return Err(self.unexpected()),
                }
                Some(value)
            }
            Some(op @ (b'~' | b'|' | b'^' | b'$' | b'*')) => {
                let op = char::from(op);
                return Err(self.error(&format!(
                    "the attribute operator '{op}=' is not supported, only [attr] and [attr=value]"
                )));
            }
            None => return Err(self.error("unbalanced '['")),
            Some(_) => return Err(self.unexpected()),
        };
        // The current byte is ']'.
        self.pos += 1;
        Ok(Simple::Attr { name, value })
    }

    /// Parse a string quoted with `quote`, the current byte being the quote.
    fn parse_quoted(&mut self, quote: u8) -> Result<String, DomError> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error("a quoted attribute value is not terminated")),
                Some(b'\\') => {
                    return Err(self.error("escapes ('\\') are not supported in quoted values"));
                }
                Some(b) if b == quote => break,
                Some(_) => self.pos += 1,
            }
        }
        // Both ends are ASCII quote bytes, hence char boundaries.
        let value = self.src.get(start..self.pos).unwrap_or("").to_owned();
        self.pos += 1;
        Ok(value)
    }
}

fn is_ident_byte_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || !c.is_ascii()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    struct El {
        tag: &'static str,
        attrs: Vec<(&'static str, &'static str)>,
    }

    impl Subject for El {
        fn tag(&self) -> &str {
            self.tag
        }
        fn attribute(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    fn el(tag: &'static str, attrs: &[(&'static str, &'static str)]) -> El {
        El {
            tag,
            attrs: attrs.to_vec(),
        }
    }

    /// Whether the last element of `chain` (outermost first) matches.
    fn matches_chain(selector: &str, chain: &[El]) -> bool {
        let list = SelectorList::parse(selector).unwrap();
        let mut state: Option<MatchState> = None;
        for e in chain {
            state = Some(list.advance(state.as_ref(), e));
        }
        list.is_match(state.as_ref().unwrap())
    }

    fn invalid(selector: &str) -> String {
        match SelectorList::parse(selector) {
            Err(DomError::InvalidSelector(m)) => m,
            other => panic!("{selector:?} should be invalid, got {other:?}"),
        }
    }

    #[test]
    fn compounds() {
        let e = el("div", &[("id", "b"), ("class", "a  c"), ("x", "1")]);
        let chain = [e];
        for ok in [
            "*",
            "div",
            "DIV",
            "#b",
            ".a",
            ".c",
            ".a.c",
            "[x]",
            "[X]",
            "[x=1]",
            "[x='1']",
            "[x=\"1\"]",
            "[ x = \"1\" ]",
            "div.a#b[x]",
            "*.a",
            "span, div",
        ] {
            assert!(matches_chain(ok, &chain), "{ok} should match");
        }
        for no in [
            "span", "#B", ".A", ".b", "[y]", "[x=2]", "[x='1 ']", "div.a#c", "[id=B]",
        ] {
            assert!(!matches_chain(no, &chain), "{no} should not match");
        }
    }

    #[test]
    fn combinators() {
        let chain = [
            el("section", &[]),
            el("div", &[("class", "outer")]),
            el("ul", &[]),
            el("li", &[("class", "item")]),
        ];
        assert!(matches_chain("section li", &chain));
        assert!(matches_chain("div li", &chain));
        assert!(matches_chain("ul > li", &chain));
        assert!(matches_chain("ul>li", &chain));
        assert!(matches_chain(".outer > ul > .item", &chain));
        assert!(matches_chain("section .outer li", &chain));
        assert!(matches_chain("section * ul li", &chain));
        assert!(!matches_chain("div > li", &chain));
        assert!(!matches_chain("li section", &chain));
        assert!(!matches_chain("ul li > li", &chain));
        assert!(!matches_chain("section > ul > li", &chain));
        // Backtracking case: the first `div` ancestor found going up is not
        // the one that satisfies `div > ul`.
        let chain = [
            el("div", &[]),
            el("ul", &[]),
            el("div", &[]),
            el("span", &[]),
            el("p", &[]),
        ];
        assert!(matches_chain("div > ul p", &chain));
        assert!(matches_chain("div > ul div span > p", &chain));
        assert!(!matches_chain("div > ul > div > p", &chain));
    }

    #[test]
    fn invalid_selectors_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("a:hover", "':hover'"),
            ("li:first-child", "':first-child'"),
            ("p::before", "'::before'"),
            (":not(a)", "':not'"),
            ("a + b", "'+'"),
            ("a ~ b", "'~'"),
            ("a+b", "'+'"),
            ("[x", "unbalanced '['"),
            ("[x=1", "unbalanced '['"),
            ("a]", "unbalanced ']'"),
            ("[x^=1]", "'^='"),
            ("[x*=1]", "'*='"),
            ("[x~=1]", "'~='"),
            ("[x|=1]", "'|='"),
            ("[x$=1]", "'$='"),
            ("[x=1 i]", "flags"),
            ("[x='1]", "not terminated"),
            ("[x='\\31']", "escapes"),
            ("a,", "empty entry"),
            (",a", "empty entry"),
            ("a,,b", "empty entry"),
            ("> a", "'>'"),
            ("a >", "'>'"),
            ("a > > b", "'>'"),
            ("#", "'#'"),
            ("a.", "'.'"),
            ("svg|rect", "namespace"),
            ("a*", "'*'"),
            ("a!", "'!'"),
            ("[]", "attribute name"),
            ("[=x]", "attribute name"),
        ];
        for (sel, part) in cases {
            let msg = invalid(sel);
            assert!(msg.contains(part), "{sel:?}: {msg:?} should mention {part}");
            assert!(msg.contains("supported:"), "{msg}");
        }
    }

    #[test]
    fn pathological_selector_is_linear() {
        // 400 descendant steps against a 300-deep chain of elements: a
        // backtracking matcher would not finish; the state machine does
        // 400 × 300 steps.
        let sel = vec!["*"; 400].join(" ");
        let list = SelectorList::parse(&sel).unwrap();
        let e = el("div", &[]);
        let mut state: Option<MatchState> = None;
        for depth in 1..=300 {
            let next = list.advance(state.as_ref(), &e);
            assert_eq!(list.is_match(&next), depth >= 400);
            state = Some(next);
        }
        let sel = format!("{} p", vec!["div"; 400].join(" "));
        assert!(!matches_chain(&sel, &[el("div", &[]), el("p", &[])]));
    }
}

//! `kernel.dom` / `llmos.dom` through the real components: building a
//! document, scoped queries, and XSS payloads that must never survive into
//! the HTML output.

use llmos::kernel::dom::tree::{HTML_HEAD, HTML_TAIL};
use llmos::outputs::{MIME_HTML, OutputKind};
use llmos::{Outcome, Status};
use llmos_tests::run;

/// The whole HTML document of the run.
fn document(o: &Outcome) -> String {
    let out = o
        .outputs
        .iter()
        .find(|x| x.kind == OutputKind::Html)
        .unwrap_or_else(|| panic!("no html output: {o:?}"));
    String::from_utf8(out.item(MIME_HTML).expect("html").data.clone()).expect("utf-8")
}

/// The container of the run's HTML document (checking the frame around it).
fn html(o: &Outcome) -> String {
    let doc = document(o);
    let body = doc
        .strip_prefix(HTML_HEAD)
        .and_then(|rest| rest.strip_suffix(HTML_TAIL))
        .unwrap_or_else(|| panic!("not a whole document:\n{doc}"));
    body.to_string()
}

#[test]
fn the_output_is_a_whole_document_with_a_restrictive_policy() {
    let o = run(
        "javascript",
        "kernel.dom.root.appendChild(kernel.dom.createElement('p', { text: `say \"hi\" it's\\u0007 <b>` }));\n",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    let doc = document(&o);
    assert!(
        doc.starts_with("<!doctype html>\n<html><head><meta charset=\"utf-8\">"),
        "{doc}"
    );
    assert!(
        doc.contains(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             img-src data:; base-uri 'none'; form-action 'none'\">"
        ),
        "{doc}"
    );
    assert!(
        html(&o).contains("<p>say &quot;hi&quot; it&#39;s &lt;b&gt;</p>"),
        "{doc}"
    );
}

#[test]
fn javascript_builds_a_table_and_queries_it() {
    let o = run(
        "javascript",
        r##"
const d = kernel.dom;
const table = d.createElement("table", { id: "t", className: "data" });
for (const [k, v] of [["a", 1], ["b <2>", 2]]) {
  const tr = d.createElement("tr");
  tr.append(d.createElement("td", { text: k }), d.createElement("td", { text: String(v), "data-n": v }));
  table.appendChild(tr);
}
d.root.appendChild(table);
d.root.appendChild(d.createElement("a", { href: "https://example.com/?q=1&r=2", target: "_blank", text: "link" }));
const found = d.querySelectorAll("table > tr td[data-n]").map(e => e.textContent);
[found.join(","), d.querySelector("#t").tagName, d.querySelector(".missing"), table.children.length]
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("[ '1,2', 'table', null, 2 ]"));
    let h = html(&o);
    assert!(h.starts_with("<div class=\"llmos-artifact\">"), "{h}");
    assert!(
        h.contains("<table id=\"t\" class=\"data\"><tr><td>a</td><td data-n=\"1\">1</td></tr>"),
        "{h}"
    );
    assert!(h.contains("<td>b &lt;2&gt;</td>"), "{h}");
    assert!(
        h.contains("href=\"https://example.com/?q=1&amp;r=2\""),
        "{h}"
    );
    assert!(h.contains("rel=\"noopener noreferrer\""), "{h}");
}

#[test]
fn python_builds_a_list() {
    let o = run(
        "python",
        r##"
from llmos import dom
ul = dom.create_element("ul", class_="items")
for name in ["x", "y"]:
    ul.append_child(dom.create_element("li", text=name, data_name=name))
dom.root().append_child(ul)
[e.text for e in dom.query_selector_all("ul.items li")], dom.query_selector("li[data-name=y]").text
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("(['x', 'y'], 'y')"));
    assert!(
        html(&o).contains(
            "<ul class=\"items\"><li data-name=\"x\">x</li><li data-name=\"y\">y</li></ul>"
        )
    );
}

#[test]
fn a_forbidden_tag_is_an_error_with_the_artifacts_line() {
    let o = run(
        "javascript",
        "const ok = 1;\nkernel.dom.createElement('script');\n",
    );
    assert_eq!(o.status, Status::Error);
    let e = o.error.expect("error");
    assert_eq!((e.class.as_str(), e.line), ("DomError", Some(2)), "{e:?}");
    assert!(e.message.contains("script"), "{}", e.message);
}

/// OWASP-style payloads, tried as tag names, attribute names, attribute
/// values (href, src, title, class) and text. Each attempt must either fail
/// with a DomError or leave nothing executable in the HTML.
const PAYLOADS: &[&str] = &[
    "<script>alert(1)</script>",
    "script",
    "SCRIPT",
    "iframe",
    "object",
    "embed",
    "style",
    "link",
    "meta",
    "base",
    "svg onload=alert(1)",
    "img src=x onerror=alert(1)",
    "onerror",
    "onClick",
    "ONLOAD",
    "onmouseover",
    "style",
    "srcdoc",
    "formaction",
    "xlink:href",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\u{1}javascript:alert(1)",
    "javascript&#58;alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:text/html,<script>alert(1)</script>",
    "\"><script>alert(1)</script>",
    "'><img src=x onerror=alert(1)>",
    "</div><script>alert(1)</script>",
    "<iframe src=javascript:alert(1)>",
    "background:url(javascript:alert(1))",
    "expression(alert(1))",
    "<svg><script>alert(1)</script></svg>",
    "&lt;script&gt;",
    "\u{0}script",
    "<a href=\"javascript:alert(1)\">x</a>",
    "x\" onmouseover=\"alert(1)",
    "file:///etc/passwd",
];

fn payload_script_js() -> String {
    let list = serde_json::to_string(PAYLOADS).expect("json");
    format!(
        r##"
const payloads = {list};
const d = kernel.dom;
let errors = 0, attempts = 0;
function attempt(f) {{ attempts++; try {{ f(); }} catch (e) {{ if (!(e instanceof kernel.DomError)) throw e; errors++; }} }}
for (const p of payloads) {{
  attempt(() => d.root.appendChild(d.createElement(p)));
  for (const tag of ["a", "img", "div", "svg"]) {{
    attempt(() => {{ const e = d.createElement(tag); e.setAttribute(p, "x"); d.root.appendChild(e); }});
    for (const attr of ["href", "src", "title", "class", "fill", "d"]) {{
      attempt(() => {{ const e = d.createElement(tag); d.root.appendChild(e); e.setAttribute(attr, p); }});
    }}
  }}
  attempt(() => d.root.appendChild(d.createElement("p", {{ text: p }})));
}}
[attempts, errors]
"##
    )
}

fn payload_script_py() -> String {
    // A JSON string literal is also a valid Python string literal.
    let list =
        serde_json::to_string(&serde_json::to_string(PAYLOADS).expect("json")).expect("json");
    format!(
        r##"
import json
from llmos import dom, DomError
payloads = json.loads({list})
attempts = errors = 0
def attempt(f):
    global attempts, errors
    attempts += 1
    try:
        f()
    except DomError:
        errors += 1
root = dom.root()
for p in payloads:
    attempt(lambda: root.append_child(dom.create_element(p)))
    for tag in ["a", "img", "div", "svg"]:
        def bad_name(tag=tag):
            e = dom.create_element(tag)
            e.set_attribute(p, "x")
            root.append_child(e)
        attempt(bad_name)
        for attr in ["href", "src", "title", "class", "fill", "d"]:
            def bad_value(tag=tag, attr=attr):
                e = dom.create_element(tag)
                root.append_child(e)
                e.set_attribute(attr, p)
            attempt(bad_value)
    attempt(lambda: root.append_child(dom.create_element("p", text=p)))
(attempts, errors)
"##
    )
}

/// The tags of `html` with their attributes (name, unescaped-enough value).
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if rest.starts_with('/') {
            continue;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut attrs = Vec::new();
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() || rest.starts_with('>') {
                break;
            }
            let n_end = rest
                .find(|c: char| c == '=' || c.is_whitespace() || c == '>')
                .unwrap_or(rest.len());
            let an = rest[..n_end].to_ascii_lowercase();
            rest = &rest[n_end..];
            let mut value = String::new();
            if let Some(r) = rest.strip_prefix('=') {
                let (v, r) = match r.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let end = r[1..].find(q).map(|e| e + 1).unwrap_or(r.len());
                        (&r[1..end], &r[(end + 1).min(r.len())..])
                    }
                    _ => {
                        let end = r
                            .find(|c: char| c.is_whitespace() || c == '>')
                            .unwrap_or(r.len());
                        (&r[..end], &r[end..])
                    }
                };
                value = v
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'");
                rest = r;
            }
            attrs.push((an, value));
        }
        out.push((name, attrs));
    }
    out
}

/// Nothing executable in `html`: no dangerous element, no event handler
/// or style attribute, no script-capable URL or CSS in any URL-bearing or
/// presentation attribute. (Plain-text attributes such as `title` may
/// contain any text: a browser never runs them.)
fn assert_inert(html: &str) {
    const ELEMENTS: &[&str] = &[
        "script",
        "iframe",
        "frame",
        "object",
        "embed",
        "style",
        "link",
        "meta",
        "base",
        "form",
        "input",
        "foreignobject",
        "use",
        "animate",
        "set",
        "image",
        "template",
    ];
    const CODE_ATTRS: &[&str] = &["href", "src", "fill", "stroke", "d", "transform", "xmlns"];
    for (tag, attrs) in tags(html) {
        assert!(
            !ELEMENTS.contains(&tag.as_str()),
            "<{tag}> survived:\n{html}"
        );
        for (name, value) in attrs {
            assert!(
                !name.starts_with("on")
                    && !["style", "srcdoc", "formaction", "xlink:href"].contains(&name.as_str()),
                "attribute `{name}` on <{tag}> survived:\n{html}"
            );
            if CODE_ATTRS.contains(&name.as_str()) {
                let v: String = value
                    .chars()
                    .filter(|c| !c.is_whitespace() && !c.is_control())
                    .collect::<String>()
                    .to_ascii_lowercase();
                for bad in ["javascript:", "vbscript:", "data:text"] {
                    assert!(
                        !v.contains(bad),
                        "{name}=\"{value}\" on <{tag}> survived:\n{html}"
                    );
                }
                // CSS in presentation attributes (in href and src these are
                // just relative paths).
                if !["href", "src"].contains(&name.as_str()) {
                    for bad in ["expression(", "url("] {
                        assert!(
                            !v.contains(bad),
                            "{name}=\"{value}\" on <{tag}> survived:\n{html}"
                        );
                    }
                }
                if v.starts_with("data:") {
                    assert!(
                        name == "src"
                            && (v.starts_with("data:image/png")
                                || v.starts_with("data:image/svg+xml")),
                        "{name}=\"{value}\" survived"
                    );
                }
            }
        }
    }
}

#[test]
fn xss_payloads_never_survive_from_javascript() {
    let o = run("javascript", &payload_script_js());
    assert_eq!(o.status, Status::Ok, "{o:?}");
    let h = html(&o);
    assert_inert(&h);
    // Every forbidden tag and attribute was refused loudly, not dropped.
    let v = o.value.unwrap_or_default();
    let nums: Vec<u32> = v
        .trim_matches(|c| c == '[' || c == ']' || c == ' ')
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{v}");
    assert!(
        nums[1] > nums[0] / 2,
        "only {} of {} attempts were refused",
        nums[1],
        nums[0]
    );
    assert!(
        h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "text is escaped, not dropped"
    );
}

#[test]
fn xss_payloads_never_survive_from_python() {
    let o = run("python", &payload_script_py());
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_inert(&html(&o));
}

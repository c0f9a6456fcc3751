//! Circuit diagrams for `llmos:kernel/quantum` `draw`: a standalone SVG.
//!
//! # Layout
//!
//! One horizontal wire per qubit, `q0` at the top. Gates are placed in
//! layered columns: a gate goes in the first column after the last column
//! used by any qubit it covers — its own qubits and, for a two-qubit gate,
//! every qubit between them, because its vertical connector crosses those
//! wires. Each column is as wide as its widest box, so long rotation labels
//! do not overlap.
//!
//! # Glyphs
//!
//! * one-qubit gates: a labelled box (`H`, `X`, …; rotations show their angle,
//!   as a fraction of π when within 1e-9 of one with a small denominator —
//!   `RX(π/2)`, `RZ(-3π/4)` — else with two decimals, `RY(1.23)`);
//! * CNOT: control dot, vertical connector, ⊕ target;
//! * CZ: two dots joined by a connector;
//! * SWAP: two × joined by a connector;
//! * measure: a meter box (arc and needle).
//!
//! # Output
//!
//! The document starts with `<svg` (no XML declaration), declares `xmlns`,
//! `width`, `height` and `viewBox`, and has a `<title>`. Every gate is a
//! `<g class="gate KIND" data-gate="INDEX" data-column="COLUMN">`, wires are
//! `<line class="wire">` and wire labels `<text class="qubit-label">`, which
//! keeps the output easy to inspect. All text goes through [`xml_escape`].
//! Output is deterministic, and its size is linear in qubits + gates, both
//! bounded by [`QuantumLimits`] (checked with [`validate`] first).

use crate::kernel::viz::svg::escape as xml_escape;
use std::fmt::Write as _;

use super::sim::{Circuit, GateKind, QuantumError, QuantumLimits, validate};

/// Font size of all text, in px (monospace).
const FONT: f64 = 14.0;
/// Approximate advance of one monospace character at [`FONT`].
const CHAR_W: f64 = FONT * 0.6;
/// Vertical distance between wires.
const ROW: f64 = 56.0;
/// Space above the first wire and below the last.
const MARGIN_Y: f64 = 36.0;
/// Height of a gate box.
const BOX_H: f64 = 36.0;
/// Smallest gate box / column width.
const MIN_BOX_W: f64 = 36.0;
/// Horizontal space between columns.
const GAP: f64 = 16.0;
/// Radius of a control dot.
const DOT_R: f64 = 5.0;
/// Radius of the ⊕ target.
const TARGET_R: f64 = 12.0;
/// Half-size of a SWAP ×.
const CROSS: f64 = 7.0;

const INK: &str = "#222222";
const WIRE: &str = "#555555";

/// Draws `circuit` as an SVG document (see the module docs for the layout).
/// Fails with the same errors as [`validate`].
pub fn draw_svg(circuit: &Circuit, limits: &QuantumLimits) -> Result<String, QuantumError> {
    validate(circuit, limits)?;
    let n = circuit.qubits;

    // Column of each gate, its span, and its label.
    struct Placed {
        kind: GateKind,
        lo: u32,
        hi: u32,
        qubits: [u32; 2],
        label: String,
        column: usize,
    }
    let mut next_free = vec![0usize; n as usize];
    let mut widths: Vec<f64> = Vec::new();
    let mut placed = Vec::with_capacity(circuit.gates.len());
    for gate in &circuit.gates {
        // `validate` guarantees 1 or 2 in-range qubits.
        let (a, b) = match *gate.qubits.as_slice() {
            [a] => (a, a),
            [a, b] => (a, b),
            _ => continue,
        };
        let (lo, hi) = (a.min(b), a.max(b));
        let span = next_free
            .get_mut(lo as usize..=hi as usize)
            .unwrap_or_default();
        let column = span.iter().copied().max().unwrap_or(0);
        span.iter_mut().for_each(|c| *c = column + 1);
        let label = label(gate.kind, gate.theta);
        let width = if gate.kind.arity() == 1 {
            box_width(&label)
        } else {
            MIN_BOX_W
        };
        if widths.len() <= column {
            widths.resize(column + 1, MIN_BOX_W);
        }
        if let Some(w) = widths.get_mut(column) {
            *w = w.max(width);
        }
        placed.push(Placed {
            kind: gate.kind,
            lo,
            hi,
            qubits: [a, b],
            label,
            column,
        });
    }

    // Column centres.
    let left = text_width(&format!("q{}", n.saturating_sub(1))) + 2.0 * GAP;
    let mut centres = Vec::with_capacity(widths.len());
    let mut x = left + GAP;
    for w in &widths {
        centres.push(x + w / 2.0);
        x += w + GAP;
    }
    let width = (x + GAP).max(left + 4.0 * GAP).ceil();
    let height = (2.0 * MARGIN_Y + f64::from(n - 1) * ROW).ceil();
    let wire_y = |q: u32| MARGIN_Y + f64::from(q) * ROW;

    let mut svg = String::with_capacity(1024 + 256 * n as usize + 640 * placed.len());
    let (w, h) = (num(width), num(height));
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="{}">"#,
        num(FONT)
    );
    let title = format!(
        "Quantum circuit: {n} qubit{}, {} gate{}",
        if n == 1 { "" } else { "s" },
        placed.len(),
        if placed.len() == 1 { "" } else { "s" }
    );
    let _ = write!(svg, "<title>{}</title>", xml_escape(&title));
    let _ = write!(svg, r##"<rect width="{w}" height="{h}" fill="#ffffff"/>"##);

    svg.push_str(r#"<g class="wires">"#);
    for q in 0..n {
        let y = num(wire_y(q));
        let _ = write!(
            svg,
            r#"<line class="wire" x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{WIRE}" stroke-width="1.5"/>"#,
            num(left),
            num(width - GAP)
        );
        let _ = write!(
            svg,
            r#"<text class="qubit-label" x="{}" y="{}" text-anchor="end" fill="{INK}">{}</text>"#,
            num(left - GAP / 2.0),
            num(wire_y(q) + FONT * 0.35),
            xml_escape(&format!("q{q}"))
        );
    }
    svg.push_str("</g>");

    for (index, g) in placed.iter().enumerate() {
        let cx = centres.get(g.column).copied().unwrap_or(left);
        let _ = write!(
            svg,
            r#"<g class="gate {}" data-gate="{index}" data-column="{}">"#,
            g.kind.name(),
            g.column
        );
        let [a, b] = g.qubits;
        let (ya, yb) = (wire_y(a), wire_y(b));
        match g.kind {
            GateKind::Cnot | GateKind::Cz | GateKind::Swap => {
                connector(&mut svg, cx, wire_y(g.lo), wire_y(g.hi));
                match g.kind {
                    GateKind::Cnot => {
                        dot(&mut svg, cx, ya);
                        target(&mut svg, cx, yb);
                    }
                    GateKind::Cz => {
                        dot(&mut svg, cx, ya);
                        dot(&mut svg, cx, yb);
                    }
                    _ => {
                        cross(&mut svg, cx, ya);
                        cross(&mut svg, cx, yb);
                    }
                }
            }
            GateKind::Measure => meter(&mut svg, cx, ya),
            _ => labelled_box(&mut svg, cx, ya, &g.label, g.kind.is_rotation()),
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    Ok(svg)
}

/// The text shown in a one-qubit gate's box (empty for other gates).
fn label(kind: GateKind, theta: Option<f64>) -> String {
    let base = match kind {
        GateKind::H => "H",
        GateKind::X => "X",
        GateKind::Y => "Y",
        GateKind::Z => "Z",
        GateKind::S => "S",
        GateKind::T => "T",
        GateKind::Rx => "RX",
        GateKind::Ry => "RY",
        GateKind::Rz => "RZ",
        GateKind::Cnot | GateKind::Cz | GateKind::Swap | GateKind::Measure => "",
    };
    match (kind.is_rotation(), theta) {
        (true, Some(t)) => format!("{base}({})", format_angle(t)),
        _ => base.to_string(),
    }
}

/// An angle in radians for a label: `π/2`, `-3π/4`, `2π`, `0` when within
/// 1e-9 (in units of π) of a fraction with denominator 1, 2, 3, 4, 6, 8, 12
/// or 16 and numerator at most 64 in size; otherwise two decimals (trailing
/// zeros trimmed), or scientific notation from 10⁴ on.
fn format_angle(theta: f64) -> String {
    let r = theta / std::f64::consts::PI;
    for den in [1i64, 2, 3, 4, 6, 8, 12, 16] {
        let scaled = r * den as f64;
        let rounded = scaled.round();
        if rounded.abs() <= 64.0 && (scaled - rounded).abs() < 1e-9 * den as f64 {
            let numer = rounded as i64;
            let sign = if numer < 0 { "-" } else { "" };
            let k = numer.unsigned_abs();
            return match (k, den) {
                (0, _) => "0".to_string(),
                (1, 1) => format!("{sign}π"),
                (_, 1) => format!("{sign}{k}π"),
                (1, _) => format!("{sign}π/{den}"),
                _ => format!("{sign}{k}π/{den}"),
            };
        }
    }
    if !theta.is_finite() || theta.abs() >= 1e4 {
        return format!("{theta:.2e}");
    }
    let s = format!("{theta:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Approximate rendered width of `text` in the monospace font.
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_W
}

/// Width of the box for a label.
fn box_width(label: &str) -> f64 {
    (text_width(label) + 16.0).max(MIN_BOX_W)
}

/// A coordinate: at most two decimals, trailing zeros trimmed.
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn labelled_box(svg: &mut String, cx: f64, cy: f64, label: &str, rotation: bool) {
    let w = box_width(label);
    let (fill, stroke) = if rotation {
        ("#fff1d6", "#a86500")
    } else {
        ("#dde9ff", "#2b5797")
    };
    let _ = write!(
        svg,
        r#"<rect class="box" x="{}" y="{}" width="{}" height="{}" rx="4" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>"#,
        num(cx - w / 2.0),
        num(cy - BOX_H / 2.0),
        num(w),
        num(BOX_H)
    );
    let _ = write!(
        svg,
        r#"<text class="label" x="{}" y="{}" text-anchor="middle" fill="{INK}">{}</text>"#,
        num(cx),
        num(cy + FONT * 0.35),
        xml_escape(label)
    );
}

fn meter(svg: &mut String, cx: f64, cy: f64) {
    let _ = write!(
        svg,
        r##"<rect class="box meter" x="{}" y="{}" width="{}" height="{}" rx="4" fill="#eeeeee" stroke="{INK}" stroke-width="1.5"/>"##,
        num(cx - MIN_BOX_W / 2.0),
        num(cy - BOX_H / 2.0),
        num(MIN_BOX_W),
        num(BOX_H)
    );
    let _ = write!(
        svg,
        r#"<path d="M {} {} A 11 11 0 0 1 {} {}" fill="none" stroke="{INK}" stroke-width="1.5"/>"#,
        num(cx - 11.0),
        num(cy + 7.0),
        num(cx + 11.0),
        num(cy + 7.0)
    );
    let _ = write!(
        svg,
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{INK}" stroke-width="1.5"/>"#,
        num(cx),
        num(cy + 7.0),
        num(cx + 8.0),
        num(cy - 9.0)
    );
}

fn connector(svg: &mut String, cx: f64, y1: f64, y2: f64) {
    let _ = write!(
        svg,
        r#"<line class="connector" x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{INK}" stroke-width="1.5"/>"#,
        num(y1),
        num(y2),
        x = num(cx)
    );
}

fn dot(svg: &mut String, cx: f64, cy: f64) {
    let _ = write!(
        svg,
        r#"<circle class="control" cx="{}" cy="{}" r="{}" fill="{INK}"/>"#,
        num(cx),
        num(cy),
        num(DOT_R)
    );
}

fn target(svg: &mut String, cx: f64, cy: f64) {
    let _ = write!(
        svg,
        r##"<circle class="target" cx="{}" cy="{}" r="{}" fill="#ffffff" stroke="{INK}" stroke-width="1.5"/>"##,
        num(cx),
        num(cy),
        num(TARGET_R)
    );
    let _ = write!(
        svg,
        r#"<path d="M {} {y} H {} M {x} {} V {}" stroke="{INK}" stroke-width="1.5"/>"#,
        num(cx - TARGET_R),
        num(cx + TARGET_R),
        num(cy - TARGET_R),
        num(cy + TARGET_R),
        x = num(cx),
        y = num(cy)
    );
}

fn cross(svg: &mut String, cx: f64, cy: f64) {
    let _ = write!(
        svg,
        r#"<path class="cross" d="M {} {} L {} {} M {} {} L {} {}" stroke="{INK}" stroke-width="2"/>"#,
        num(cx - CROSS),
        num(cy - CROSS),
        num(cx + CROSS),
        num(cy + CROSS),
        num(cx - CROSS),
        num(cy + CROSS),
        num(cx + CROSS),
        num(cy - CROSS)
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::sim::{ErrorCode, Gate};
    use super::*;
    use std::f64::consts::PI;

    fn limits() -> QuantumLimits {
        QuantumLimits {
            max_qubits: 8,
            max_gates: 100,
            max_shots: 10,
        }
    }

    fn g(kind: GateKind, qubits: &[u32]) -> Gate {
        Gate {
            kind,
            qubits: qubits.to_vec(),
            theta: None,
        }
    }

    fn rot(kind: GateKind, q: u32, theta: f64) -> Gate {
        Gate {
            kind,
            qubits: vec![q],
            theta: Some(theta),
        }
    }

    fn has_class(node: &roxmltree::Node, class: &str) -> bool {
        node.attribute("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
    }

    fn count_class(doc: &roxmltree::Document, tag: &str, class: &str) -> usize {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag) && has_class(n, class))
            .count()
    }

    /// (kind, column) of every gate group, in gate order.
    fn gate_columns(doc: &roxmltree::Document) -> Vec<(String, usize)> {
        doc.descendants()
            .filter(|n| n.has_tag_name("g") && has_class(n, "gate"))
            .map(|n| {
                let class = n.attribute("class").unwrap();
                let kind = class.split_whitespace().nth(1).unwrap().to_string();
                (kind, n.attribute("data-column").unwrap().parse().unwrap())
            })
            .collect()
    }

    fn sample() -> Circuit {
        Circuit {
            qubits: 3,
            gates: vec![
                g(GateKind::H, &[0]),
                g(GateKind::Cnot, &[0, 1]),
                rot(GateKind::Rx, 2, PI / 2.0),
                g(GateKind::Cz, &[1, 2]),
                g(GateKind::Swap, &[2, 0]),
                rot(GateKind::Ry, 1, 1.234),
                g(GateKind::T, &[2]),
                g(GateKind::Measure, &[0]),
                g(GateKind::Measure, &[1]),
            ],
        }
    }

    #[test]
    fn sample_circuit_structure() {
        let svg = draw_svg(&sample(), &limits()).unwrap();
        assert!(svg.starts_with("<svg"));
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let root = doc.root_element();
        assert!(root.has_tag_name(("http://www.w3.org/2000/svg", "svg")));
        let (w, h) = (
            root.attribute("width").unwrap(),
            root.attribute("height").unwrap(),
        );
        assert_eq!(root.attribute("viewBox").unwrap(), format!("0 0 {w} {h}"));
        let (w, h): (f64, f64) = (w.parse().unwrap(), h.parse().unwrap());
        assert!(w > 100.0 && h > 100.0);

        let title = doc.descendants().find(|n| n.has_tag_name("title")).unwrap();
        assert_eq!(title.text(), Some("Quantum circuit: 3 qubits, 9 gates"));

        // Wires and their labels, top to bottom.
        assert_eq!(count_class(&doc, "line", "wire"), 3);
        let labels: Vec<&str> = doc
            .descendants()
            .filter(|n| has_class(n, "qubit-label"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(labels, ["q0", "q1", "q2"]);
        let wire_ys: Vec<f64> = doc
            .descendants()
            .filter(|n| has_class(n, "wire"))
            .map(|n| n.attribute("y1").unwrap().parse().unwrap())
            .collect();
        assert!(wire_ys.windows(2).all(|p| p[0] < p[1]));

        // One group per gate; boxes for one-qubit gates and meters.
        assert_eq!(gate_columns(&doc).len(), 9);
        assert_eq!(count_class(&doc, "rect", "box"), 6);
        assert_eq!(count_class(&doc, "rect", "meter"), 2);
        let gate_labels: Vec<&str> = doc
            .descendants()
            .filter(|n| has_class(n, "label"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(gate_labels, ["H", "RX(π/2)", "RY(1.23)", "T"]);
        // CNOT: a dot and a ⊕; CZ: two dots; SWAP: two crosses.
        assert_eq!(count_class(&doc, "circle", "control"), 3);
        assert_eq!(count_class(&doc, "circle", "target"), 1);
        assert_eq!(count_class(&doc, "path", "cross"), 2);
        assert_eq!(count_class(&doc, "line", "connector"), 3);

        // Everything lies inside the canvas.
        for n in doc.descendants().filter(|n| n.has_tag_name("rect")) {
            let x: f64 = n.attribute("x").map_or(0.0, |v| v.parse().unwrap());
            let bw: f64 = n.attribute("width").unwrap().parse().unwrap();
            assert!(
                x >= 0.0 && x + bw <= w,
                "rect at {x} width {bw} outside {w}"
            );
        }
    }

    #[test]
    fn column_layering() {
        let circuit = Circuit {
            qubits: 4,
            gates: vec![
                g(GateKind::H, &[0]),       // column 0
                g(GateKind::H, &[1]),       // column 0
                g(GateKind::Cnot, &[0, 2]), // column 1: crosses q1
                g(GateKind::X, &[1]),       // column 2: q1 is under the connector
                g(GateKind::H, &[3]),       // column 0
                g(GateKind::Swap, &[3, 2]), // column 2
                g(GateKind::Measure, &[0]), // column 2
                g(GateKind::Cz, &[0, 3]),   // column 3
            ],
        };
        let svg = draw_svg(&circuit, &limits()).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let columns: Vec<usize> = gate_columns(&doc).into_iter().map(|(_, c)| c).collect();
        assert_eq!(columns, [0, 0, 1, 2, 0, 2, 2, 3]);
        let kinds: Vec<String> = gate_columns(&doc).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, ["h", "h", "cnot", "x", "h", "swap", "measure", "cz"]);

        // Gates in later columns are drawn further right.
        let xs: Vec<f64> = doc
            .descendants()
            .filter(|n| n.has_tag_name("line") && has_class(n, "connector"))
            .map(|n| n.attribute("x1").unwrap().parse().unwrap())
            .collect();
        assert_eq!(xs.len(), 3);
        assert!(xs[0] < xs[1] && xs[1] < xs[2], "{xs:?}");
    }

    #[test]
    fn wide_labels_widen_their_column() {
        let narrow = Circuit {
            qubits: 1,
            gates: vec![g(GateKind::H, &[0])],
        };
        let wide = Circuit {
            qubits: 1,
            gates: vec![rot(GateKind::Rz, 0, 1234.5678)],
        };
        let width = |c: &Circuit| -> f64 {
            let svg = draw_svg(c, &limits()).unwrap();
            let doc = roxmltree::Document::parse(&svg).unwrap();
            doc.root_element()
                .attribute("width")
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(width(&wide) > width(&narrow) + 40.0);
    }

    #[test]
    fn angle_labels() {
        assert_eq!(format_angle(PI / 2.0), "π/2");
        assert_eq!(format_angle(-PI / 4.0), "-π/4");
        assert_eq!(format_angle(3.0 * PI / 4.0), "3π/4");
        assert_eq!(format_angle(PI), "π");
        assert_eq!(format_angle(-PI), "-π");
        assert_eq!(format_angle(2.0 * PI), "2π");
        assert_eq!(format_angle(PI / 3.0), "π/3");
        assert_eq!(format_angle(2.0 * PI / 6.0), "π/3");
        assert_eq!(format_angle(5.0 * PI / 12.0), "5π/12");
        assert_eq!(format_angle(0.0), "0");
        assert_eq!(format_angle(1.57), "1.57");
        assert_eq!(format_angle(1.5), "1.5");
        assert_eq!(format_angle(-0.001), "0");
        assert_eq!(format_angle(-2.0), "-2");
        assert_eq!(format_angle(1e300), "1.00e300");
        assert_eq!(label(GateKind::Ry, Some(PI / 8.0)), "RY(π/8)");
        assert_eq!(label(GateKind::S, None), "S");
    }

    #[test]
    fn escaping_and_determinism() {
        assert_eq!(
            xml_escape(r#"<a & 'b' "c">"#),
            "&lt;a &amp; &apos;b&apos; &quot;c&quot;&gt;"
        );
        let a = draw_svg(&sample(), &limits()).unwrap();
        let b = draw_svg(&sample(), &limits()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn size_is_bounded_by_the_limits() {
        let l = limits();
        let gates = (0..l.max_gates)
            .map(|i| {
                let q = (i % 8) as u32;
                match i % 3 {
                    0 => rot(GateKind::Rx, q, -1234.5678),
                    1 => g(GateKind::Cnot, &[q, 7 - q.min(6)]),
                    _ => g(GateKind::Measure, &[q]),
                }
            })
            .collect();
        let circuit = Circuit {
            qubits: l.max_qubits,
            gates,
        };
        let svg = draw_svg(&circuit, &l).unwrap();
        assert!(
            svg.len() < 2048 + 300 * 8 + 800 * l.max_gates,
            "{} bytes",
            svg.len()
        );
        roxmltree::Document::parse(&svg).unwrap();
    }

    #[test]
    fn minimal_and_invalid_circuits() {
        let svg = draw_svg(
            &Circuit {
                qubits: 1,
                gates: vec![],
            },
            &limits(),
        )
        .unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert_eq!(count_class(&doc, "line", "wire"), 1);
        assert!(gate_columns(&doc).is_empty());
        let title = doc.descendants().find(|n| n.has_tag_name("title")).unwrap();
        assert_eq!(title.text(), Some("Quantum circuit: 1 qubit, 0 gates"));

        let bad = Circuit {
            qubits: 2,
            gates: vec![g(GateKind::Cnot, &[0, 2])],
        };
        assert_eq!(
            draw_svg(&bad, &limits()).unwrap_err().code(),
            ErrorCode::InvalidQubit
        );
        let bad = Circuit {
            qubits: 9,
            gates: vec![],
        };
        assert_eq!(
            draw_svg(&bad, &limits()).unwrap_err().code(),
            ErrorCode::TooManyQubits
        );
    }
}

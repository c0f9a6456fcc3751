//! SVG → PNG rasterization and text measurement, both on one embedded font.
//!
//! The PNG is rendered from the very SVG string that is returned, with
//! `resvg` (usvg + tiny-skia), so the two always show the same picture.
//!
//! Fonts: the font database given to usvg holds only DejaVu Sans (regular
//! and bold), embedded from the `dejavu` crate (fonts under the Bitstream
//! Vera / DejaVu licence, a permissive open licence; the crate itself is
//! MIT/Apache-2.0). System fonts are never loaded, so text renders the same
//! on every machine. Every SVG this engine writes names that family
//! ([`FONT_FAMILY`]).
//!
//! Layout code measures text with the same font's advance widths (via
//! `skrifa`), so labels can be fitted and truncated to a pixel budget.
//!
//! The usvg image resolver is disabled: the SVGs written here never contain
//! `<image>`, and even if they did nothing would be loaded from disk.

#[cfg(feature = "viz")]
use std::sync::Arc;
use std::sync::OnceLock;
#[cfg(feature = "viz")]
use std::time::{Duration, Instant};

#[cfg(feature = "viz")]
use resvg::{tiny_skia, usvg};
use skrifa::MetadataProvider;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;

#[cfg(feature = "viz")]
use super::svg::FONT_FAMILY;
use super::types::{Rendered, VizError};
use crate::meter::Meter;
#[cfg(feature = "viz")]
use crate::meter::{HostLimit, cost};

/// DejaVu Sans regular, as embedded by the `dejavu` crate.
fn regular_font() -> &'static [u8] {
    dejavu::sans::regular()
}

/// DejaVu Sans bold, as embedded by the `dejavu` crate.
fn bold_font() -> &'static [u8] {
    dejavu::sans::bold()
}

/// The shared font database: the embedded faces and nothing else.
#[cfg(feature = "viz")]
fn font_db() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        for data in [regular_font(), bold_font()] {
            db.load_font_source(usvg::fontdb::Source::Binary(Arc::new(data)));
        }
        db.set_sans_serif_family(FONT_FAMILY);
        db.set_serif_family(FONT_FAMILY);
        db.set_monospace_family(FONT_FAMILY);
        db.set_cursive_family(FONT_FAMILY);
        db.set_fantasy_family(FONT_FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// Rasterize `svg` (written by this engine) to a `width` x `height` PNG.
#[cfg(feature = "viz")]
pub fn rasterize(svg: &str, width: u32, height: u32) -> Result<Vec<u8>, VizError> {
    let opt = usvg::Options {
        font_family: FONT_FAMILY.to_string(),
        fontdb: font_db(),
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: Box::new(|_, _, _| None),
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt)
        .map_err(|e| VizError::InvalidArgument(format!("could not render the picture: {e}")))?;
    let mut pixmap = tiny_skia::Pixmap::new(width, height).ok_or_else(|| {
        VizError::TooLarge(format!("could not allocate a {width}x{height} picture"))
    })?;
    resvg::render(
        &tree,
        tiny_skia::Transform::identity(),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| VizError::InvalidArgument(format!("could not encode the PNG: {e}")))
}

/// Nanoseconds one unit of drawing work ([`DrawCost`]) takes at most on the
/// reference machine (measured: see `crate::meter`'s cost model). Used to
/// refuse a render that could not finish before the run's deadline.
pub const NS_PER_UNIT: f64 = 3.0;
/// Units per picture pixel for clearing, compositing and PNG encoding.
pub const PICTURE_UNITS_PER_PIXEL: f64 = 4.0;
/// Units per byte of SVG parsed by usvg.
pub const PARSE_UNITS_PER_BYTE: f64 = 2.0;

/// Estimated work, in [`DrawCost`] units, of rasterizing an SVG of
/// `svg_bytes` bytes whose marks cost `draw_units`, on a `width` x `height`
/// picture, and encoding it as PNG.
pub fn raster_units(draw_units: f64, svg_bytes: usize, width: u32, height: u32) -> f64 {
    let pixels = f64::from(width) * f64::from(height);
    let u = draw_units + PICTURE_UNITS_PER_PIXEL * pixels + PARSE_UNITS_PER_BYTE * svg_bytes as f64;
    if u.is_finite() { u.max(0.0) } else { f64::MAX }
}

/// Bytes a render holds on the host while it runs: the pixmap, the PNG
/// being encoded (at most about the pixmap again) and the parsed tree
/// (bounded by a few times the SVG).
pub fn raster_bytes(svg_bytes: usize, width: u32, height: u32) -> u64 {
    let pixels = u64::from(width) * u64::from(height);
    pixels
        .saturating_mul(8)
        .saturating_add((svg_bytes as u64).saturating_mul(4))
}

/// Pay for, then do, a render of `draw_units` of marks (see
/// [`raster_units`]): the run's fuel is charged *before* resvg runs (it
/// cannot be interrupted), the deadline must leave room for the estimated
/// time with a 2× margin, and the transient bytes are reserved in the run's
/// host-memory budget.
#[cfg(feature = "viz")]
pub fn metered_rasterize(
    svg: &str,
    width: u32,
    height: u32,
    draw_units: f64,
    meter: &mut Meter,
) -> Result<Vec<u8>, VizError> {
    let units = raster_units(draw_units, svg.len(), width, height);
    let fuel = units * cost::PER_PIXEL as f64;
    meter.charge(if fuel < u64::MAX as f64 {
        fuel as u64
    } else {
        u64::MAX
    })?;
    // Half again as long as estimated must still end before the deadline.
    let est = Duration::from_secs_f64((units * NS_PER_UNIT * 1.5e-9).min(1e6));
    if Instant::now()
        .checked_add(est)
        .is_none_or(|end| end >= meter.deadline())
    {
        return Err(VizError::Limit(HostLimit::Deadline));
    }
    let transient = raster_bytes(svg.len(), width, height);
    meter.reserve(transient)?;
    let png = rasterize(svg, width, height);
    meter.release(transient);
    meter.check_time()?;
    png
}

/// A build without the `viz` feature has no rasterizer: pictures are SVG
/// only (an empty PNG, which is not made an output).
#[cfg(not(feature = "viz"))]
pub fn metered_rasterize(
    _svg: &str,
    _width: u32,
    _height: u32,
    _draw_units: f64,
    meter: &mut Meter,
) -> Result<Vec<u8>, VizError> {
    meter.check_time()?;
    Ok(Vec::new())
}

/// Rasterize `svg` (whose marks cost `draw_units`, see [`DrawCost`]) within
/// the run's budgets, and bundle it with its PNG and `summary`.
pub fn finish(
    svg: String,
    width: u32,
    height: u32,
    summary: String,
    draw_units: f64,
    meter: &mut Meter,
) -> Result<Rendered, VizError> {
    let png = metered_rasterize(&svg, width, height, draw_units, meter)?;
    Ok(Rendered {
        svg,
        png,
        width,
        height,
        summary,
    })
}

/// Estimated rasterization work, in pixel units (1 unit ≈ 3 ns on the
/// reference machine, where translucent fill costs ~1 unit per pixel).
///
/// Measured with tiny-skia: a shape costs ~1500 units whatever its size
/// (parsing + setup), a text character ~5000 (text at 40 px measured at
/// ~6 ns per old 2000-unit character), and a stroke ~40 units per
/// pixel of length (anti-aliased edges are walked row by row) plus its
/// area. Geometry is clipped to the picture first, so off-canvas parts cost
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawCost {
    used: f64,
    max: f64,
    /// Width and height of the picture, in pixels.
    width: f64,
    height: f64,
}

/// Cost of any one shape, before its pixels.
pub const SHAPE_COST: f64 = 1500.0;
/// Cost of one text character.
pub const CHAR_COST: f64 = 5000.0;
/// Cost per pixel of stroke length.
const STROKE_LENGTH_COST: f64 = 40.0;

impl DrawCost {
    /// A budget of `max` units for a `width` x `height` picture.
    pub fn new(max: u64, width: u32, height: u32) -> DrawCost {
        DrawCost {
            used: 0.0,
            max: max as f64,
            width: f64::from(width),
            height: f64::from(height),
        }
    }

    /// Units used so far.
    pub fn used(&self) -> f64 {
        self.used
    }

    /// The budget.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// Whether adding `cost` would exceed the budget.
    pub fn exceeds(&self, cost: f64) -> bool {
        let total = self.used + cost;
        total.is_nan() || total > self.max
    }

    /// Add `cost` (callers check [`DrawCost::exceeds`] first when they
    /// must refuse).
    pub fn add(&mut self, cost: f64) {
        self.used += cost;
    }

    /// Cost of filling a shape whose bounding box is `[x0, x1] × [y0, y1]`.
    pub fn fill(&self, x0: f64, y0: f64, x1: f64, y1: f64) -> f64 {
        let w = (x1.min(self.width) - x0.max(0.0)).max(0.0);
        let h = (y1.min(self.height) - y0.max(0.0)).max(0.0);
        if w.is_finite() && h.is_finite() {
            w * h
        } else {
            self.width * self.height
        }
    }

    /// Cost of stroking `length` pixels (already clipped) at `width`.
    pub fn stroke(&self, length: f64, width: f64) -> f64 {
        let area = (length * width).min(self.width * self.height);
        length * STROKE_LENGTH_COST + area
    }

    /// Length of the part of segment `p`–`q` within the picture grown by
    /// `pad` on every side (Liang–Barsky clipping).
    pub fn clipped_length(&self, p: (f64, f64), q: (f64, f64), pad: f64) -> f64 {
        // Far-away coordinates are pulled in so differences stay finite;
        // this only bends parts of the segment that are off the picture.
        let c = |v: f64| v.clamp(-1e12, 1e12);
        let (x1, y1, x2, y2) = (c(p.0), c(p.1), c(q.0), c(q.1));
        let (dx, dy) = (x2 - x1, y2 - y1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        let pad = pad.clamp(0.0, 1e6);
        for (pp, qq) in [
            (-dx, x1 + pad),
            (dx, self.width + pad - x1),
            (-dy, y1 + pad),
            (dy, self.height + pad - y1),
        ] {
            if pp == 0.0 {
                if qq < 0.0 {
                    return 0.0;
                }
            } else {
                let r = qq / pp;
                if pp < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        if t1 <= t0 {
            return 0.0;
        }
        (t1 - t0) * dx.hypot(dy)
    }
}

/// Advance widths of one face, in em units, with a fast path for ASCII.
struct FaceMetrics {
    data: &'static [u8],
    ascii: [f32; 128],
}

/// Width of a glyph the font lacks, in em (resvg draws nothing for it, but
/// layout keeps room so truncation stays conservative).
const MISSING_GLYPH_EM: f32 = 0.6;

fn units_per_em(font: &skrifa::FontRef<'_>) -> f32 {
    let upem = font
        .metrics(Size::unscaled(), LocationRef::default())
        .units_per_em;
    f32::from(upem.max(1))
}

impl FaceMetrics {
    fn load(data: &'static [u8]) -> FaceMetrics {
        let mut ascii = [MISSING_GLYPH_EM; 128];
        if let Ok(font) = skrifa::FontRef::new(data) {
            let upem = units_per_em(&font);
            let charmap = font.charmap();
            let gm = GlyphMetrics::new(&font, Size::unscaled(), LocationRef::default());
            for (c, slot) in (0u32..).zip(ascii.iter_mut()) {
                if let Some(w) = charmap.map(c).and_then(|g| gm.advance_width(g)) {
                    *slot = w / upem;
                }
            }
        }
        FaceMetrics { data, ascii }
    }

    /// Width of `text` in em (sum of advances; no kerning).
    fn width_em(&self, text: &str) -> f64 {
        let mut total = 0.0f64;
        let mut other: Option<(skrifa::FontRef<'static>, f32)> = None;
        for c in text.chars() {
            let code = c as u32;
            if let Some(w) = usize::try_from(code).ok().and_then(|i| self.ascii.get(i)) {
                total += f64::from(*w);
                continue;
            }
            if other.is_none() {
                other = skrifa::FontRef::new(self.data).ok().map(|f| {
                    let upem = units_per_em(&f);
                    (f, upem)
                });
            }
            let w = other
                .as_ref()
                .and_then(|(font, upem)| {
                    let gid = font.charmap().map(c)?;
                    let gm = GlyphMetrics::new(font, Size::unscaled(), LocationRef::default());
                    gm.advance_width(gid).map(|w| w / upem)
                })
                .unwrap_or(MISSING_GLYPH_EM);
            total += f64::from(w);
        }
        total
    }
}

fn face(bold: bool) -> &'static FaceMetrics {
    static REGULAR: OnceLock<FaceMetrics> = OnceLock::new();
    static BOLD: OnceLock<FaceMetrics> = OnceLock::new();
    if bold {
        BOLD.get_or_init(|| FaceMetrics::load(bold_font()))
    } else {
        REGULAR.get_or_init(|| FaceMetrics::load(regular_font()))
    }
}

/// Width in pixels of `text` set in the embedded font at `size` pixels.
pub fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    face(bold).width_em(text) * size
}

/// `text` cut (with a trailing `…`) so that it is at most `max_width`
/// pixels wide at `size`; returned unchanged if it already fits. Returns an
/// empty string if not even `…` fits.
pub fn fit_text(text: &str, size: f64, bold: bool, max_width: f64) -> String {
    let f = face(bold);
    if f.width_em(text) * size <= max_width {
        return text.to_string();
    }
    let budget = max_width / size - f.width_em("…");
    if budget < 0.0 {
        return String::new();
    }
    let mut used = 0.0;
    let mut out = String::new();
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let w = f.width_em(c.encode_utf8(&mut buf));
        if used + w > budget {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(all(test, feature = "viz"))] // the tests read the rendered PNGs
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::color::Color;
    use super::super::svg::SvgWriter;
    use super::*;

    #[test]
    fn font_db_has_only_the_embedded_faces() {
        let db = font_db();
        assert_eq!(db.len(), 2);
        for f in db.faces() {
            assert!(
                f.families.iter().any(|(n, _)| n == FONT_FAMILY),
                "{:?}",
                f.families
            );
        }
    }

    #[test]
    fn text_metrics() {
        let w = text_width("0123456789", 10.0, false);
        // DejaVu Sans digits are 0.636 em wide.
        assert!((w - 63.6).abs() < 0.5, "{w}");
        assert!(text_width("Hello", 12.0, true) > text_width("Hello", 12.0, false));
        assert!(text_width("αβγ", 10.0, false) > 10.0);
        assert_eq!(text_width("", 10.0, false), 0.0);
    }

    #[test]
    fn draw_cost_clips_to_the_picture() {
        let c = DrawCost::new(1000, 100, 50);
        assert_eq!(c.fill(-10.0, -10.0, 1e300, 20.0), 100.0 * 20.0);
        assert_eq!(c.fill(200.0, 0.0, 300.0, 10.0), 0.0);
        assert_eq!(c.fill(f64::MIN, f64::MIN, f64::MAX, f64::MAX), 5000.0);
        assert!((c.clipped_length((0.0, 0.0), (100.0, 0.0), 0.0) - 100.0).abs() < 1e-9);
        assert!((c.clipped_length((-1e300, 25.0), (1e300, 25.0), 0.0) - 100.0).abs() < 0.01);
        assert_eq!(c.clipped_length((-50.0, -50.0), (-10.0, -10.0), 0.0), 0.0);
        assert!((c.clipped_length((50.0, -100.0), (50.0, 100.0), 5.0) - 60.0).abs() < 1e-9);
        assert_eq!(c.stroke(10.0, 2.0), 10.0 * 40.0 + 20.0);
        let mut c = c;
        assert!(!c.exceeds(1000.0));
        c.add(600.0);
        assert!(c.exceeds(401.0) && !c.exceeds(400.0));
        assert!(c.exceeds(f64::NAN));
    }

    #[test]
    fn fitting() {
        assert_eq!(fit_text("short", 10.0, false, 100.0), "short");
        let cut = fit_text("a rather long category label", 10.0, false, 50.0);
        assert!(cut.ends_with('…'), "{cut}");
        assert!(text_width(&cut, 10.0, false) <= 50.0);
        assert_eq!(fit_text("abc", 10.0, false, 1.0), "");
    }

    #[test]
    fn rasterizes_text_with_embedded_font() {
        let mut w = SvgWriter::new(100, 40, Color::WHITE);
        w.tag("text")
            .num("x", 5.0)
            .num("y", 30.0)
            .num("font-size", 24.0)
            .text("Hg");
        let png = rasterize(&w.finish(), 100, 40).unwrap();
        let pm = tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((pm.width(), pm.height()), (100, 40));
        let dark = pm
            .pixels()
            .iter()
            .filter(|p| p.red() < 100 && p.alpha() == 255)
            .count();
        assert!(
            dark > 20,
            "only {dark} dark pixels: the font did not render"
        );
    }

    /// Times each engine against the cost model; prints the fuel charged
    /// per nanosecond of host work (the guest runs at about 10 fuel/ns).
    /// `cargo test --release -p llmos --lib calibrate -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn calibrate_engines() {
        use crate::kernel::dom::tree::{Document, DomLimits};
        use crate::kernel::quantum::sim::{self, Circuit, Gate, GateKind, QuantumLimits};
        use crate::kernel::viz::canvas::{Canvas, Paint};
        use crate::kernel::viz::types::VizLimits;
        use crate::meter::{Meter, cost};
        use std::time::Instant;
        let limits = VizLimits {
            max_draw_cost: u64::MAX,
            ..crate::limits::Quotas::default().viz
        };
        let report = |what: &str, fuel: f64, ns: f64| {
            println!(
                "{what:40} fuel {fuel:12.3e}  time {:8.1} ms  fuel/ns {:6.2}",
                ns / 1e6,
                fuel / ns
            );
        };
        // Canvas: big translucent circles, thin long lines, small shapes, text.
        for (what, n) in [
            ("circles", 200usize),
            ("lines", 3000),
            ("small rects", 50_000),
            ("text", 400),
        ] {
            let mut c = Canvas::new(2000, 2000, &limits).unwrap();
            c.fill_color("rgba(200,10,10,0.5)").unwrap();
            for i in 0..n {
                let f = i as f64;
                match what {
                    "circles" => c
                        .circle(1000.0, 1000.0, 900.0 + f, Paint::FillAndStroke)
                        .unwrap(),
                    "lines" => c
                        .line(0.0, f % 2000.0, 2000.0, 2000.0 - f % 2000.0)
                        .unwrap(),
                    "small rects" => c
                        .rect(f % 1990.0, (f * 7.0) % 1990.0, 5.0, 5.0, Paint::Fill)
                        .unwrap(),
                    _ => c
                        .text(10.0, 20.0 + f * 4.0, &"W".repeat(100), 40.0)
                        .unwrap(),
                }
            }
            let units = c.draw_units();
            let t = Instant::now();
            let r = c.render(&mut Meter::unlimited()).unwrap();
            let ns = t.elapsed().as_nanos() as f64;
            let total = raster_units(units, r.svg.len(), 2000, 2000);
            report(
                &format!("canvas {what} ({:.2e} units)", total),
                total * cost::PER_PIXEL as f64,
                ns,
            );
            println!("    ns/unit {:.2}", ns / total);
        }
        // Empty big picture: clearing + PNG encoding.
        let c = Canvas::new(2000, 2000, &limits).unwrap();
        let t = Instant::now();
        let r = c.render(&mut Meter::unlimited()).unwrap();
        let ns = t.elapsed().as_nanos() as f64;
        let total = raster_units(0.0, r.svg.len(), 2000, 2000);
        report("canvas empty 2000x2000", total * cost::PER_PIXEL as f64, ns);
        println!("    ns/unit {:.2}", ns / total);
        // Chart: 200k points.
        let data: Vec<String> = (0..200_000)
            .map(|i| format!("[{i},{}]", (i * 7919) % 1000))
            .collect();
        let data = format!("[{}]", data.join(","));
        for kind in ["line", "scatter"] {
            let opts = format!("{{\"kind\": \"{kind}\"}}");
            let mut m = Meter::new(
                Instant::now(),
                std::time::Duration::from_secs(3600),
                Some(u64::MAX / 2),
                u64::MAX,
            );
            let t = Instant::now();
            let r = super::super::chart::plot(&data, &opts, &limits, &mut m);
            let ns = t.elapsed().as_nanos() as f64;
            println!("chart {kind}: {:?}", r.as_ref().err());
            report(&format!("chart {kind} 200k"), m.host_fuel() as f64, ns);
        }
        // Quantum: 16 qubits, 2000 gates; 1e6 shots.
        let gates: Vec<Gate> = (0..2000u32)
            .map(|i| Gate {
                kind: if i % 2 == 0 {
                    GateKind::H
                } else {
                    GateKind::Cnot
                },
                qubits: if i % 2 == 0 {
                    vec![i % 16]
                } else {
                    vec![i % 16, (i + 1) % 16]
                },
                theta: None,
            })
            .collect();
        let ql = QuantumLimits {
            max_qubits: 16,
            max_gates: 10_000,
            max_shots: 1_000_000,
        };
        let c = Circuit { qubits: 16, gates };
        let t = Instant::now();
        sim::simulate(&c, 0, 1, &ql, &mut Meter::unlimited()).unwrap();
        let ns = t.elapsed().as_nanos() as f64;
        report(
            "quantum 16q x 2000 gates",
            2000.0 * 65536.0 * cost::PER_AMPLITUDE as f64,
            ns,
        );
        let c = Circuit {
            qubits: 16,
            gates: (0..16)
                .map(|q| Gate {
                    kind: GateKind::H,
                    qubits: vec![q],
                    theta: None,
                })
                .collect(),
        };
        let t = Instant::now();
        sim::simulate(&c, 1_000_000, 1, &ql, &mut Meter::unlimited()).unwrap();
        let ns = t.elapsed().as_nanos() as f64;
        let mut m = Meter::new(
            Instant::now(),
            std::time::Duration::from_secs(3600),
            Some(u64::MAX / 2),
            u64::MAX,
        );
        sim::simulate(&c, 1_000_000, 1, &ql, &mut m).unwrap();
        report("quantum 16 H + 1e6 shots", m.host_fuel() as f64, ns);
        // DOM: 10k nodes, `*` selector.
        let mut d = Document::new(DomLimits {
            max_nodes: 10_000,
            max_bytes: 4 << 20,
            max_depth: 64,
            max_selector_bytes: 1024,
        });
        let root = d.root();
        let mut parent = root;
        for i in 0..10_000 {
            let e = d.create_element("div").unwrap();
            d.set_attribute(e, "class", "x y z").unwrap();
            d.append_child(if i % 50 == 0 { root } else { parent }, e)
                .unwrap();
            if i % 50 == 0 {
                parent = e;
            }
        }
        for sel in ["*", "div * > div.x"] {
            let t = Instant::now();
            for _ in 0..10 {
                d.query_selector_all(root, sel).unwrap();
            }
            let ns = t.elapsed().as_nanos() as f64;
            let per = crate::kernel::dom::walk_fuel(10_001, sel.len());
            report(
                &format!("dom 10 x {sel:?} on 10k nodes"),
                10.0 * per as f64,
                ns,
            );
        }
        let t = Instant::now();
        let html = d.to_html_document();
        let ns = t.elapsed().as_nanos() as f64;
        report(
            "dom serialize 10k nodes",
            html.len() as f64 * cost::PER_BYTE as f64,
            ns,
        );
    }
}

//! A bounded drawing canvas: operations are validated and recorded in
//! order, then rendered to SVG + PNG on demand.
//!
//! State (fill colour, stroke colour, line width; black, black, 1 px by
//! default) is captured into each operation when it is recorded, so later
//! state changes never alter earlier shapes. Colours are parsed strictly
//! (see `color.rs`) and written in canonical form; text is XML-escaped by
//! the SVG writer. Every number must be finite; sizes are non-negative.
//!
//! Bounds, all from [`VizLimits`]: the canvas side (`max_canvas_side`),
//! drawing operations (`max_ops`; state setters are not counted since they
//! store nothing), path points summed over all paths (`max_points`) and text
//! bytes summed over all `text` calls (`max_text_bytes`), at most 4096
//! characters per `text` call, and the estimated rasterization work of all
//! operations (`max_draw_cost`, see `render::DrawCost`: long strokes and
//! large fills cost most, off-canvas parts nothing). A rejected call records
//! nothing.
//!
//! [`Canvas::render`] can be called any number of times; operations recorded
//! after a render draw on top of the earlier ones in the next render.
//!
//! Host budgets: the canvas counts the bytes it keeps ([`Canvas::bytes`]:
//! each operation's size plus its path data or text), which the binding
//! reserves in the run's [`Meter`] as operations are recorded (undoing an
//! operation the budget refuses with [`Canvas::rollback`]) and releases when
//! the canvas is dropped. [`Canvas::render`] pays for its rasterizing out of
//! the run's fuel before resvg runs, and checks the run's deadline (see
//! `render::metered_rasterize`); `max_draw_cost` still bounds one canvas,
//! the run's fuel and deadline bound all of them together.

use super::color::{Color, parse_color};
use super::render::{self, CHAR_COST, DrawCost, SHAPE_COST};
use super::svg::{PathData, Style, SvgWriter};
use super::types::{Rendered, VizError, VizLimits};
use crate::meter::Meter;

/// How a closed shape is painted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// Filled with the fill colour.
    Fill,
    /// Outlined with the stroke colour and line width.
    Stroke,
    /// Filled, then outlined.
    FillAndStroke,
}

/// Largest accepted line width, in pixels.
const MAX_LINE_WIDTH: f64 = 1000.0;
/// Largest accepted text size, in pixels.
const MAX_TEXT_SIZE: f64 = 500.0;
/// Most characters in one `text` call: the text layout engine slows down
/// more than linearly on very long runs (8,000 characters take ~70 ms,
/// 1,000,000 take minutes), and no line that long fits on a canvas anyway.
const MAX_TEXT_CHARS: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Rect {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        style: Style,
    },
    Line {
        x1: f64,
        y1: f64,
        x2: f64,
        y2: f64,
        style: Style,
    },
    Circle {
        cx: f64,
        cy: f64,
        r: f64,
        style: Style,
    },
    Path {
        d: String,
        style: Style,
    },
    Text {
        x: f64,
        y: f64,
        text: String,
        size: f64,
        color: Color,
    },
}

/// A recorded drawing of at most `max_canvas_side` pixels a side.
#[derive(Debug, Clone)]
pub struct Canvas {
    width: u32,
    height: u32,
    max_ops: usize,
    max_points: usize,
    max_text_bytes: usize,
    fill: Color,
    stroke: Color,
    line_width: f64,
    ops: Vec<Op>,
    points: usize,
    text_bytes: usize,
    cost: DrawCost,
    /// Host bytes the recorded operations keep (see [`Canvas::bytes`]).
    bytes: u64,
}

/// What [`Canvas::rollback`] restores: the canvas as it was before a call.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    ops: usize,
    points: usize,
    text_bytes: usize,
    cost: DrawCost,
    bytes: u64,
}

impl Checkpoint {
    /// [`Canvas::bytes`] when the checkpoint was taken.
    pub fn bytes_before(&self) -> u64 {
        self.bytes
    }
}

/// Host bytes one recorded operation keeps: its slot plus its heap data.
fn op_bytes(op: &Op) -> u64 {
    let heap = match op {
        Op::Path { d, .. } => d.capacity(),
        Op::Text { text, .. } => text.capacity(),
        _ => 0,
    };
    (std::mem::size_of::<Op>() + heap) as u64
}

fn arg_err(msg: String) -> VizError {
    VizError::InvalidArgument(msg)
}

/// `v` if finite, else an error naming `name`.
fn finite(name: &str, v: f64) -> Result<f64, VizError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(arg_err(format!(
            "{name} is {v}: every coordinate and size must be a finite number"
        )))
    }
}

/// `v` if finite and >= 0, else an error naming `name`.
fn size(name: &str, v: f64) -> Result<f64, VizError> {
    let v = finite(name, v)?;
    if v < 0.0 {
        return Err(arg_err(format!("{name} is {v}: it must be zero or more")));
    }
    Ok(v)
}

impl Canvas {
    /// A blank white canvas of `width` x `height` pixels.
    pub fn new(width: u32, height: u32, limits: &VizLimits) -> Result<Canvas, VizError> {
        let max = limits.max_canvas_side;
        if width == 0 || height == 0 {
            return Err(arg_err(format!(
                "canvas {width}x{height} is empty: width and height must be 1 to {max} pixels"
            )));
        }
        if width > max || height > max {
            return Err(VizError::TooLarge(format!(
                "canvas {width}x{height} is too large: at most {max}x{max} pixels"
            )));
        }
        Ok(Canvas {
            width,
            height,
            max_ops: limits.max_ops,
            max_points: limits.max_points,
            max_text_bytes: limits.max_text_bytes,
            fill: Color::BLACK,
            stroke: Color::BLACK,
            line_width: 1.0,
            ops: Vec::new(),
            points: 0,
            text_bytes: 0,
            cost: DrawCost::new(limits.max_draw_cost, width, height),
            bytes: 0,
        })
    }

    /// Host bytes kept by the recorded operations (each operation's slot
    /// and its path data or text; the vector's spare capacity is not
    /// counted).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The canvas as it is now, for [`Canvas::rollback`].
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            ops: self.ops.len(),
            points: self.points,
            text_bytes: self.text_bytes,
            cost: self.cost,
            bytes: self.bytes,
        }
    }

    /// Forget every operation recorded since `cp` was taken (state setters
    /// are kept: they store nothing).
    pub fn rollback(&mut self, cp: Checkpoint) {
        self.ops.truncate(cp.ops);
        self.points = cp.points;
        self.text_bytes = cp.text_bytes;
        self.cost = cp.cost;
        self.bytes = cp.bytes;
    }

    /// Estimated rasterization work of the recorded operations, in
    /// [`DrawCost`] units.
    pub fn draw_units(&self) -> f64 {
        self.cost.used()
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of drawing operations recorded so far.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Set the fill colour (also the text colour).
    pub fn fill_color(&mut self, color: &str) -> Result<(), VizError> {
        self.fill = parse_color(color).map_err(arg_err)?;
        Ok(())
    }

    /// Set the stroke colour.
    pub fn stroke_color(&mut self, color: &str) -> Result<(), VizError> {
        self.stroke = parse_color(color).map_err(arg_err)?;
        Ok(())
    }

    /// Set the stroke width in pixels, `0 < width <= 1000`.
    pub fn line_width(&mut self, width: f64) -> Result<(), VizError> {
        let w = finite("line width", width)?;
        if w <= 0.0 || w > MAX_LINE_WIDTH {
            return Err(arg_err(format!(
                "line width {w} is out of range: it must be more than 0 and at most \
                 {MAX_LINE_WIDTH} pixels"
            )));
        }
        self.line_width = w;
        Ok(())
    }

    /// A rectangle with its top-left corner at (x, y).
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, paint: Paint) -> Result<(), VizError> {
        let (x, y) = (finite("x", x)?, finite("y", y)?);
        let (w, h) = (size("width", w)?, size("height", h)?);
        let style = self.style(paint);
        let pad = self.pad(&style);
        let mut cost = SHAPE_COST;
        if style.fill.is_some() {
            cost += self.cost.fill(x - pad, y - pad, x + w + pad, y + h + pad);
        }
        if style.stroke.is_some() {
            let (x1, y1) = (x + w, y + h);
            let edges = [
                ((x, y), (x1, y)),
                ((x1, y), (x1, y1)),
                ((x1, y1), (x, y1)),
                ((x, y1), (x, y)),
            ];
            let len: f64 = edges
                .iter()
                .map(|(p, q)| self.cost.clipped_length(*p, *q, pad))
                .sum();
            cost += self.cost.stroke(len, self.line_width);
        }
        self.push(Op::Rect { x, y, w, h, style }, cost, "rect")
    }

    /// A straight line, stroked with the stroke colour and line width.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64) -> Result<(), VizError> {
        let (x1, y1) = (finite("x1", x1)?, finite("y1", y1)?);
        let (x2, y2) = (finite("x2", x2)?, finite("y2", y2)?);
        let style = self.style(Paint::Stroke);
        let len = self
            .cost
            .clipped_length((x1, y1), (x2, y2), self.pad(&style));
        let cost = SHAPE_COST + self.cost.stroke(len, self.line_width);
        let op = Op::Line {
            x1,
            y1,
            x2,
            y2,
            style,
        };
        self.push(op, cost, "line")
    }

    /// A circle centred on (cx, cy) with radius `r >= 0`.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, paint: Paint) -> Result<(), VizError> {
        let (cx, cy, r) = (finite("cx", cx)?, finite("cy", cy)?, size("radius", r)?);
        let style = self.style(paint);
        let pad = self.pad(&style);
        let mut cost = SHAPE_COST;
        if style.fill.is_some() {
            cost += self
                .cost
                .fill(cx - r - pad, cy - r - pad, cx + r + pad, cy + r + pad);
        }
        if style.stroke.is_some() {
            // A convex arc inside the (padded) canvas is no longer than the
            // canvas's perimeter.
            let (w, h) = (f64::from(self.width), f64::from(self.height));
            let len = (std::f64::consts::TAU * r).min(2.0 * (w + h) + 8.0 * pad);
            cost += self.cost.stroke(len, self.line_width);
        }
        self.push(Op::Circle { cx, cy, r, style }, cost, "circle")
    }

    /// A polyline through `points` (at least 2), closed into a polygon if
    /// `closed`.
    pub fn path(
        &mut self,
        points: &[(f64, f64)],
        closed: bool,
        paint: Paint,
    ) -> Result<(), VizError> {
        if points.len() < 2 {
            return Err(arg_err(format!(
                "a path needs at least 2 points, got {}",
                points.len()
            )));
        }
        let total = self.points.saturating_add(points.len());
        if total > self.max_points {
            return Err(VizError::TooLarge(format!(
                "this path of {} points would bring the canvas to {total} path points: at most \
                 {} in all",
                points.len(),
                self.max_points
            )));
        }
        self.check_op_room()?;
        let style = self.style(paint);
        let pad = self.pad(&style);
        let mut d = PathData::new();
        let mut length = 0.0;
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        let mut prev: Option<(f64, f64)> = None;
        for (i, (x, y)) in points.iter().enumerate() {
            let x = finite(&format!("points[{i}].x"), *x)?;
            let y = finite(&format!("points[{i}].y"), *y)?;
            match prev {
                None => d.move_to(x, y),
                Some(p) => {
                    d.line_to(x, y);
                    length += self.cost.clipped_length(p, (x, y), pad);
                }
            }
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            prev = Some((x, y));
        }
        if closed {
            d.close();
            if let (Some(first), Some(last)) = (points.first(), prev) {
                length += self.cost.clipped_length(last, *first, pad);
            }
        }
        let mut cost = SHAPE_COST;
        if style.fill.is_some() {
            cost += self.cost.fill(x0 - pad, y0 - pad, x1 + pad, y1 + pad);
        }
        if style.stroke.is_some() {
            cost += self.cost.stroke(length, self.line_width);
        }
        let op = Op::Path {
            d: d.as_str().to_string(),
            style,
        };
        self.push(op, cost, "path")?;
        self.points = total;
        Ok(())
    }

    /// Text with its baseline starting at (x, y), `size` pixels high
    /// (`0 < size <= 500`), in the fill colour.
    pub fn text(&mut self, x: f64, y: f64, text: &str, size: f64) -> Result<(), VizError> {
        let x = finite("x", x)?;
        let y = finite("y", y)?;
        let s = finite("text size", size)?;
        if s <= 0.0 || s > MAX_TEXT_SIZE {
            return Err(arg_err(format!(
                "text size {s} is out of range: it must be more than 0 and at most \
                 {MAX_TEXT_SIZE} pixels"
            )));
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(VizError::TooLarge(format!(
                "this text has {chars} characters: one text call draws at most {MAX_TEXT_CHARS} \
                 (split longer text over several calls, one per line)"
            )));
        }
        let total = self.text_bytes.saturating_add(text.len());
        if total > self.max_text_bytes {
            return Err(VizError::TooLarge(format!(
                "this text of {} bytes would bring the canvas to {total} bytes of text: at most \
                 {} in all",
                text.len(),
                self.max_text_bytes
            )));
        }
        self.check_op_room()?;
        let cost = SHAPE_COST + CHAR_COST * chars as f64;
        let op = Op::Text {
            x,
            y,
            text: text.to_string(),
            size: s,
            color: self.fill,
        };
        self.push(op, cost, "text")?;
        self.text_bytes = total;
        Ok(())
    }

    /// Render every operation so far, in order, over a white background,
    /// within the run's budgets (`meter`: fuel charged before rasterizing,
    /// the deadline checked while writing and before rasterizing, transient
    /// bytes reserved).
    pub fn render(&self, meter: &mut Meter) -> Result<Rendered, VizError> {
        meter.check_time()?;
        let mut w = SvgWriter::new(self.width, self.height, Color::WHITE);
        for (i, op) in self.ops.iter().enumerate() {
            if i % 4096 == 4095 {
                meter.check_time()?;
            }
            match op {
                Op::Rect {
                    x,
                    y,
                    w: rw,
                    h,
                    style,
                } => w
                    .tag("rect")
                    .num("x", *x)
                    .num("y", *y)
                    .num("width", *rw)
                    .num("height", *h)
                    .style(style)
                    .close(),
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    style,
                } => w
                    .tag("line")
                    .num("x1", *x1)
                    .num("y1", *y1)
                    .num("x2", *x2)
                    .num("y2", *y2)
                    .style(style)
                    .attr("stroke-linecap", "round")
                    .close(),
                Op::Circle { cx, cy, r, style } => w
                    .tag("circle")
                    .num("cx", *cx)
                    .num("cy", *cy)
                    .num("r", *r)
                    .style(style)
                    .close(),
                Op::Path { d, style } => w
                    .tag("path")
                    .attr("d", d)
                    .style(style)
                    .attr("stroke-linejoin", "round")
                    .close(),
                Op::Text {
                    x,
                    y,
                    text,
                    size,
                    color,
                } => w
                    .tag("text")
                    .attr("xml:space", "preserve")
                    .num("x", *x)
                    .num("y", *y)
                    .num("font-size", *size)
                    .style(&Style::fill(*color))
                    .text(text),
            }
        }
        let summary = format!(
            "canvas {}x{}: {} drawing operation{}",
            self.width,
            self.height,
            self.ops.len(),
            if self.ops.len() == 1 { "" } else { "s" }
        );
        render::finish(
            w.finish(),
            self.width,
            self.height,
            summary,
            self.cost.used(),
            meter,
        )
    }

    fn style(&self, paint: Paint) -> Style {
        Style {
            fill: matches!(paint, Paint::Fill | Paint::FillAndStroke).then_some(self.fill),
            stroke: matches!(paint, Paint::Stroke | Paint::FillAndStroke).then_some(self.stroke),
            stroke_width: self.line_width,
        }
    }

    fn check_op_room(&self) -> Result<(), VizError> {
        if self.ops.len() >= self.max_ops {
            return Err(VizError::TooLarge(format!(
                "the canvas already has {} drawing operations: at most {} per canvas",
                self.ops.len(),
                self.max_ops
            )));
        }
        Ok(())
    }

    /// Half the stroke width when `style` strokes: how far it reaches out.
    fn pad(&self, style: &Style) -> f64 {
        if style.stroke.is_some() {
            self.line_width / 2.0
        } else {
            0.0
        }
    }

    /// Record `op`, whose estimated drawing work is `cost`, if both the
    /// operation count and the work budget allow.
    fn push(&mut self, op: Op, cost: f64, what: &str) -> Result<(), VizError> {
        self.check_op_room()?;
        if self.cost.exceeds(cost) {
            let full = (self.cost.max() / (f64::from(self.width) * f64::from(self.height))).floor();
            return Err(VizError::TooLarge(format!(
                "this {what} would bring the canvas's estimated drawing work to {:.3e} units: at \
                 most {:.3e} are allowed (about {full} fills of the whole canvas). Long strokes, \
                 large fills and many shapes cost most: draw fewer, smaller or thinner shapes",
                self.cost.used() + cost,
                self.cost.max()
            )));
        }
        self.cost.add(cost);
        self.bytes = self.bytes.saturating_add(op_bytes(&op));
        self.ops.push(op);
        Ok(())
    }
}

#[cfg(all(test, feature = "viz"))] // the tests read the rendered PNGs
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use resvg::tiny_skia::Pixmap;
    use resvg::usvg::roxmltree::Document;

    fn limits() -> VizLimits {
        VizLimits {
            max_canvas_side: 2000,
            max_points: 100,
            max_ops: 10,
            max_text_bytes: 50,
            max_scene_items: 100,
            max_json_bytes: 1000,
            max_draw_cost: 300_000_000,
        }
    }

    fn canvas(w: u32, h: u32) -> Canvas {
        Canvas::new(w, h, &limits()).unwrap()
    }

    fn rgb(pm: &Pixmap, x: u32, y: u32) -> (u8, u8, u8) {
        let p = pm.pixel(x, y).unwrap();
        (p.red(), p.green(), p.blue())
    }

    fn arg_msg(r: Result<(), VizError>) -> String {
        match r {
            Err(VizError::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn too_large_msg<T: std::fmt::Debug>(r: Result<T, VizError>) -> String {
        match r {
            Err(VizError::TooLarge(m)) => m,
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn red_rect_on_white() {
        let mut c = canvas(100, 80);
        c.fill_color("red").unwrap();
        c.rect(10.0, 20.0, 30.0, 15.0, Paint::Fill).unwrap();
        let r = c.render(&mut Meter::unlimited()).unwrap();
        assert_eq!((r.width, r.height), (100, 80));
        assert_eq!(r.summary, "canvas 100x80: 1 drawing operation");
        let pm = Pixmap::decode_png(&r.png).unwrap();
        assert_eq!((pm.width(), pm.height()), (100, 80));
        assert_eq!(rgb(&pm, 25, 27), (255, 0, 0));
        assert_eq!(rgb(&pm, 5, 5), (255, 255, 255));
        assert_eq!(rgb(&pm, 45, 27), (255, 255, 255));
        assert_eq!(rgb(&pm, 25, 40), (255, 255, 255));
        let doc = Document::parse(&r.svg).unwrap();
        let rects: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .collect();
        assert_eq!(rects.len(), 2, "background + rect");
        assert_eq!(rects[1].attribute("fill"), Some("#ff0000"));
        assert_eq!(rects[1].attribute("x"), Some("10"));
    }

    #[test]
    fn shapes_lines_and_paths() {
        let mut c = canvas(100, 100);
        c.stroke_color("#00f").unwrap();
        c.line_width(4.0).unwrap();
        c.line(0.0, 50.0, 100.0, 50.0).unwrap();
        c.fill_color("rgb(0, 128, 0)").unwrap();
        c.circle(20.0, 20.0, 10.0, Paint::Fill).unwrap();
        c.path(
            &[(60.0, 60.0), (90.0, 60.0), (90.0, 90.0)],
            true,
            Paint::FillAndStroke,
        )
        .unwrap();
        let r = c.render(&mut Meter::unlimited()).unwrap();
        let pm = Pixmap::decode_png(&r.png).unwrap();
        assert_eq!(rgb(&pm, 10, 50), (0, 0, 255), "stroked line");
        assert_eq!(rgb(&pm, 20, 20), (0, 128, 0), "filled circle");
        assert_eq!(rgb(&pm, 85, 70), (0, 128, 0), "filled triangle");
        assert_eq!(rgb(&pm, 65, 85), (255, 255, 255), "outside the triangle");
        let doc = Document::parse(&r.svg).unwrap();
        let path = doc.descendants().find(|n| n.has_tag_name("path")).unwrap();
        assert_eq!(path.attribute("d"), Some("M60 60L90 60L90 90Z"));
        assert_eq!(path.attribute("stroke"), Some("#0000ff"));
        assert_eq!(path.attribute("stroke-width"), Some("4"));
    }

    #[test]
    fn text_uses_the_embedded_font() {
        let mut c = canvas(200, 60);
        c.fill_color("black").unwrap();
        c.text(10.0, 40.0, "Hello <&> \"world\"", 24.0).unwrap();
        let r = c.render(&mut Meter::unlimited()).unwrap();
        let doc = Document::parse(&r.svg).unwrap();
        let t = doc.descendants().find(|n| n.has_tag_name("text")).unwrap();
        assert_eq!(t.text(), Some("Hello <&> \"world\""));
        let pm = Pixmap::decode_png(&r.png).unwrap();
        let mut dark = 0;
        for y in 15..45 {
            for x in 10..190 {
                if rgb(&pm, x, y).0 < 80 {
                    dark += 1;
                }
            }
        }
        assert!(
            dark > 200,
            "only {dark} dark pixels where the text should be"
        );
        // Nothing above the text.
        assert!((0..200).all(|x| rgb(&pm, x, 3) == (255, 255, 255)));
    }

    #[test]
    fn state_is_captured_and_render_repeats() {
        let mut c = canvas(50, 50);
        c.fill_color("red").unwrap();
        c.rect(0.0, 0.0, 20.0, 20.0, Paint::Fill).unwrap();
        c.fill_color("blue").unwrap();
        let first = Pixmap::decode_png(&c.render(&mut Meter::unlimited()).unwrap().png).unwrap();
        assert_eq!(rgb(&first, 10, 10), (255, 0, 0), "colour set after a rect");
        c.rect(5.0, 5.0, 10.0, 10.0, Paint::Fill).unwrap();
        let second = Pixmap::decode_png(&c.render(&mut Meter::unlimited()).unwrap().png).unwrap();
        assert_eq!(rgb(&second, 10, 10), (0, 0, 255), "later ops draw on top");
        assert_eq!(rgb(&second, 2, 2), (255, 0, 0));
        assert_eq!(c.op_count(), 2);
    }

    #[test]
    fn translucent_colours_are_canonical() {
        let mut c = canvas(10, 10);
        c.fill_color("rgba(255, 0, 0, 0.5)").unwrap();
        c.stroke_color("#00ff0080").unwrap();
        c.rect(0.0, 0.0, 10.0, 10.0, Paint::FillAndStroke).unwrap();
        let svg = c.render(&mut Meter::unlimited()).unwrap().svg;
        assert!(
            svg.contains(r##"fill="#ff0000" fill-opacity="0.5" stroke="#00ff00" stroke-width="1" stroke-opacity="0.502""##),
            "{svg}"
        );
    }

    #[test]
    fn canvas_size_bounds() {
        let m = too_large_msg(Canvas::new(5000, 300, &limits()));
        assert_eq!(m, "canvas 5000x300 is too large: at most 2000x2000 pixels");
        too_large_msg(Canvas::new(300, 2001, &limits()));
        assert!(matches!(
            Canvas::new(0, 10, &limits()),
            Err(VizError::InvalidArgument(m)) if m.contains("1 to 2000 pixels")
        ));
        assert!(Canvas::new(2000, 2000, &limits()).is_ok());
    }

    #[test]
    fn non_finite_and_negative_arguments() {
        let mut c = canvas(10, 10);
        let m = arg_msg(c.rect(f64::NAN, 0.0, 1.0, 1.0, Paint::Fill));
        assert!(m.starts_with("x is NaN"), "{m}");
        let m = arg_msg(c.line(0.0, 0.0, f64::INFINITY, 0.0));
        assert!(m.starts_with("x2 is inf"), "{m}");
        let m = arg_msg(c.circle(0.0, 0.0, -1.0, Paint::Fill));
        assert!(
            m.starts_with("radius is -1: it must be zero or more"),
            "{m}"
        );
        let m = arg_msg(c.rect(0.0, 0.0, -2.0, 1.0, Paint::Stroke));
        assert!(m.starts_with("width is -2"), "{m}");
        let m = arg_msg(c.path(
            &[(0.0, 0.0), (1.0, f64::NEG_INFINITY)],
            false,
            Paint::Stroke,
        ));
        assert!(m.starts_with("points[1].y is -inf"), "{m}");
        let m = arg_msg(c.path(&[(0.0, 0.0)], false, Paint::Stroke));
        assert!(m.contains("at least 2 points"), "{m}");
        let m = arg_msg(c.text(0.0, f64::NAN, "a", 10.0));
        assert!(m.starts_with("y is NaN"), "{m}");
        let m = arg_msg(c.line_width(0.0));
        assert!(m.contains("more than 0 and at most 1000"), "{m}");
        arg_msg(c.line_width(1000.5));
        arg_msg(c.line_width(f64::NAN));
        let m = arg_msg(c.text(0.0, 0.0, "a", 0.0));
        assert!(m.contains("text size 0 is out of range"), "{m}");
        arg_msg(c.text(0.0, 0.0, "a", 501.0));
        assert!(c.line_width(1000.0).is_ok());
        assert!(c.text(0.0, 0.0, "a", 500.0).is_ok());
        assert_eq!(c.op_count(), 1, "rejected calls record nothing");
    }

    #[test]
    fn bad_colours() {
        let mut c = canvas(10, 10);
        for bad in ["reddish", "#12345", "rgb(1,2)", "", "url(#a)"] {
            let m = arg_msg(c.fill_color(bad));
            assert!(m.contains("rgba(r, g, b, a)"), "{m}");
            arg_msg(c.stroke_color(bad));
        }
        // The previous colour stays.
        c.rect(0.0, 0.0, 10.0, 10.0, Paint::Fill).unwrap();
        assert!(
            c.render(&mut Meter::unlimited())
                .unwrap()
                .svg
                .contains("fill=\"#000000\"")
        );
    }

    #[test]
    fn operation_text_and_point_bounds() {
        let mut c = canvas(10, 10);
        for i in 0..10 {
            c.line(0.0, f64::from(i), 10.0, 0.0).unwrap();
        }
        let m = too_large_msg(c.rect(0.0, 0.0, 1.0, 1.0, Paint::Fill));
        assert!(m.contains("at most 10 per canvas"), "{m}");
        too_large_msg(c.text(0.0, 0.0, "x", 5.0));
        // Setting state is still fine.
        c.fill_color("red").unwrap();

        let mut c = canvas(10, 10);
        c.text(0.0, 5.0, &"a".repeat(40), 5.0).unwrap();
        let m = too_large_msg(c.text(0.0, 5.0, &"b".repeat(11), 5.0));
        assert!(m.contains("at most 50 in all"), "{m}");
        c.text(0.0, 5.0, &"b".repeat(10), 5.0).unwrap();

        let mut c = canvas(10, 10);
        let pts: Vec<(f64, f64)> = (0..60).map(|i| (f64::from(i), 1.0)).collect();
        c.path(&pts, false, Paint::Stroke).unwrap();
        let m = too_large_msg(c.path(&pts, false, Paint::Stroke));
        assert!(m.contains("at most 100 in all"), "{m}");
        c.path(&pts[..40], false, Paint::Stroke).unwrap();
    }

    #[test]
    fn drawing_work_is_bounded() {
        let small = VizLimits {
            max_draw_cost: 50_000,
            max_ops: 1000,
            ..limits()
        };
        let mut c = Canvas::new(2000, 2000, &small).unwrap();
        // A 2000 px stroke costs 40 units per pixel: too much.
        let m = too_large_msg(c.line(0.0, 500.0, 2000.0, 500.0));
        assert!(
            m.contains("estimated drawing work") && m.contains("at most 5.000e4"),
            "{m}"
        );
        // Off-canvas geometry costs only its per-shape overhead.
        for _ in 0..10 {
            c.line(-1e9, -1e9, -1e6, 5e8).unwrap();
            c.rect(5000.0, 0.0, 1e9, 1e9, Paint::Fill).unwrap();
        }
        // A full-canvas fill is a million pixels.
        too_large_msg(c.rect(0.0, 0.0, 1000.0, 1000.0, Paint::Fill));
        c.rect(0.0, 0.0, 100.0, 100.0, Paint::Fill).unwrap();
        let m = too_large_msg(c.text(0.0, 10.0, &"x".repeat(40), 10.0));
        assert!(m.contains("this text would bring"), "{m}");
        assert_eq!(c.op_count(), 21);
    }

    #[test]
    fn long_text_calls_are_refused() {
        let roomy = VizLimits {
            max_text_bytes: 100_000,
            ..limits()
        };
        let mut c = Canvas::new(100, 100, &roomy).unwrap();
        let m = too_large_msg(c.text(0.0, 10.0, &"é".repeat(4097), 10.0));
        assert!(
            m.contains("4097 characters: one text call draws at most 4096"),
            "{m}"
        );
        c.text(0.0, 10.0, &"é".repeat(4096), 10.0).unwrap();
    }

    #[test]
    fn huge_finite_coordinates_do_not_break_rendering() {
        let mut c = canvas(50, 50);
        c.fill_color("red").unwrap();
        c.line_width(1000.0).unwrap();
        c.rect(-1e300, -1e300, 1e300, 1e300, Paint::FillAndStroke)
            .unwrap();
        c.circle(25.0, 25.0, 1e300, Paint::FillAndStroke).unwrap();
        c.line(-1e308, -1e308, 1e308, 1e308).unwrap();
        c.path(
            &[(-1e308, 0.0), (1e308, 50.0), (0.0, 1e308)],
            true,
            Paint::FillAndStroke,
        )
        .unwrap();
        c.text(1e300, 1e300, "far away", 500.0).unwrap();
        c.circle(1e15, 1e15, 1e15, Paint::Stroke).unwrap();
        let r = c.render(&mut Meter::unlimited()).unwrap();
        assert_eq!((r.width, r.height), (50, 50));
    }
}

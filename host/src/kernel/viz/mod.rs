//! `llmos:kernel/viz`: charts, canvases and 3D scenes as run outputs.
//!
//! The engine renders on the host: [`chart`] draws `plot` charts and
//! [`canvas`] records drawing operations, both to SVG written by [`svg`] and
//! rasterized to PNG by [`render`] (resvg, with an embedded font so pictures
//! are identical on every machine); [`scene`] validates 3D scenes. This
//! module binds the engine to the WIT interface: canvases are resources in
//! the run's `ResourceTable`, and each rendered picture becomes an output.
//!
//! Host budgets (see [`crate::meter`]): every call pays [`cost::CALL`] plus
//! its bytes; the bytes each canvas records are reserved in the run's host
//! memory as they are recorded and released when it is dropped; rendering
//! pays for its estimated rasterizing before resvg runs. Past the run's
//! host-memory budget a call fails with `too-large` (catchable); past its
//! fuel or deadline the run ends (`out_of_fuel`, `timeout`).

pub mod canvas;
pub mod chart;
pub mod color;
pub mod render;
pub mod scene;
pub mod svg;
pub mod types;

pub use types::{Rendered, VizError as EngineError, VizLimits};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::bindings::viz::{self as wit, ErrorCode, Paint, Point, VizError};
use crate::meter::{Meter, cost};
use crate::outputs::{MIME_PNG, MIME_SCENE, MIME_SVG, OutputKind, Outputs};
use canvas::Canvas;

/// Per-run state of the viz API.
#[derive(Debug)]
pub struct VizCtx {
    limits: VizLimits,
    max_canvases: usize,
    /// Canvases alive in this run (bounded by `max_canvases`).
    canvases: usize,
}

impl VizCtx {
    /// A run's viz state under these quotas.
    pub fn new(limits: VizLimits, max_canvases: usize) -> Self {
        VizCtx {
            limits,
            max_canvases,
            canvases: 0,
        }
    }
}

/// What the viz API touches: its context, the run's resource table (canvas
/// handles) and the run's outputs.
pub struct VizView<'a> {
    /// The run's canvas count and quotas.
    pub ctx: &'a mut VizCtx,
    /// The run's resource table (canvas handles).
    pub table: &'a mut ResourceTable,
    /// The run's outputs (pictures, scenes).
    pub outputs: &'a mut Outputs,
    /// The run's accounting of host work.
    pub meter: &'a mut Meter,
}

/// An engine result as a binding result: running out of the run's fuel or
/// time is a trap, every other error is the guest's `viz-error`.
fn split<T>(r: Result<T, EngineError>) -> wasmtime::Result<Result<T, VizError>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(EngineError::Limit(l)) => Err(l.into()),
        Err(e) => Ok(Err(guest_error(e))),
    }
}

fn guest_error(e: EngineError) -> VizError {
    let code = match e.code() {
        types::VizErrorCode::InvalidData => ErrorCode::InvalidData,
        types::VizErrorCode::InvalidOptions => ErrorCode::InvalidOptions,
        types::VizErrorCode::InvalidArgument => ErrorCode::InvalidArgument,
        types::VizErrorCode::TooLarge => ErrorCode::TooLarge,
    };
    VizError {
        code,
        message: e.message().to_string(),
    }
}

fn too_large(message: String) -> VizError {
    VizError {
        code: ErrorCode::TooLarge,
        message,
    }
}

fn paint(p: Paint) -> canvas::Paint {
    match p {
        Paint::Fill => canvas::Paint::Fill,
        Paint::Stroke => canvas::Paint::Stroke,
        Paint::FillAndStroke => canvas::Paint::FillAndStroke,
    }
}

impl VizView<'_> {
    /// Add a rendered picture (SVG + PNG) to the outputs.
    fn picture(
        &mut self,
        kind: OutputKind,
        r: Rendered,
    ) -> wasmtime::Result<Result<u32, VizError>> {
        let mut items = vec![(MIME_SVG, r.svg.into_bytes())];
        // Without the `viz` feature there is no rasterizer and no PNG.
        if !r.png.is_empty() {
            items.push((MIME_PNG, r.png));
        }
        Ok(self
            .outputs
            .push_metered(self.meter, kind, r.summary, items)?
            .map_err(|e| too_large(e.0)))
    }

    /// Record on a canvas of the table with `f`, paying [`cost::CALL`] plus
    /// `bytes` of arguments, and reserving what the canvas keeps in the
    /// run's host memory (the operation is undone if that is refused).
    fn canvas(
        &mut self,
        handle: &Resource<Canvas>,
        bytes: usize,
        f: impl FnOnce(&mut Canvas) -> Result<(), EngineError>,
    ) -> wasmtime::Result<Result<(), VizError>> {
        self.meter
            .charge(cost::CALL.saturating_add((bytes as u64).saturating_mul(cost::PER_BYTE)))?;
        let c = self.table.get_mut(handle)?;
        let cp = c.checkpoint();
        if let Err(e) = f(c) {
            return split(Err(e));
        }
        let grown = c.bytes().saturating_sub(cp.bytes_before());
        if let Err(e) = self.meter.reserve(grown) {
            c.rollback(cp);
            return Ok(Err(too_large(e.to_string())));
        }
        Ok(Ok(()))
    }
}

impl wit::HostCanvas for VizView<'_> {
    fn fill_color(
        &mut self,
        c: Resource<Canvas>,
        color: String,
    ) -> wasmtime::Result<Result<(), VizError>> {
        self.canvas(&c, color.len(), |c| c.fill_color(&color))
    }

    fn stroke_color(
        &mut self,
        c: Resource<Canvas>,
        color: String,
    ) -> wasmtime::Result<Result<(), VizError>> {
        self.canvas(&c, color.len(), |c| c.stroke_color(&color))
    }

    fn line_width(
        &mut self,
        c: Resource<Canvas>,
        width: f64,
    ) -> wasmtime::Result<Result<(), VizError>> {
        self.canvas(&c, 8, |c| c.line_width(width))
    }

    fn rect(
        &mut self,
        c: Resource<Canvas>,
        x: f64,
        y: f64,
        width: f64,
        height: f64,
        p: Paint,
    ) -> wasmtime::Result<Result<(), VizError>> {
        self.canvas(&c, 32, |c| c.rect(x, y, width, height, paint(p)))
    }

    fn line(
        &mut self,
        c: Resource<Canvas>,
        x1: f64,
        y1: f64,
        x2: f64,
        y2: f64,
    ) -> wasmtime::Result<Result<(), VizError>> {
        self.canvas(&c, 32, |c| c.line(x1, y1, x2, y2))
    }

    fn circle(
        &mut self,
        c: Resource<Canvas>,
        cx: f64,
        cy: f64,
        r: f64,
        p: Paint,
    ) -> wasmtime::Result<Result<(), VizError>> {
        self.canvas(&c, 24, |c| c.circle(cx, cy, r, paint(p)))
    }

    fn path(
        &mut self,
        c: Resource<Canvas>,
        points: Vec<Point>,
        closed: bool,
        p: Paint,
    ) -> wasmtime::Result<Result<(), VizError>> {
        let pts: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.y)).collect();
        self.canvas(&c, pts.len() * 16, |c| c.path(&pts, closed, paint(p)))
    }

    fn text(
        &mut self,
        c: Resource<Canvas>,
        x: f64,
        y: f64,
        text: String,
        size: f64,
    ) -> wasmtime::Result<Result<(), VizError>> {
        // Laying out text costs per glyph and size as well as per byte.
        let glyphs = text.chars().count() as u64;
        let px = if size.is_finite() {
            size.clamp(1.0, 500.0) as u64
        } else {
            1
        };
        self.meter
            .charge(glyphs.saturating_mul(px).saturating_mul(cost::PER_GLYPH_PX))?;
        self.canvas(&c, text.len() + 16, |c| c.text(x, y, &text, size))
    }

    fn show(&mut self, c: Resource<Canvas>) -> wasmtime::Result<Result<u32, VizError>> {
        self.meter.charge(cost::CALL)?;
        let canvas = self.table.get(&c)?;
        let rendered = match split(canvas.render(self.meter))? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        self.picture(OutputKind::Canvas, rendered)
    }

    fn drop(&mut self, c: Resource<Canvas>) -> wasmtime::Result<()> {
        let canvas = self.table.delete(c)?;
        self.meter.release(canvas.bytes());
        self.ctx.canvases = self.ctx.canvases.saturating_sub(1);
        Ok(())
    }
}

impl wit::Host for VizView<'_> {
    fn plot(&mut self, data: String, options: String) -> wasmtime::Result<Result<u32, VizError>> {
        match split(chart::plot(&data, &options, &self.ctx.limits, self.meter))? {
            Ok(r) => self.picture(OutputKind::Plot, r),
            Err(e) => Ok(Err(e)),
        }
    }

    fn render3d(&mut self, scene: String) -> wasmtime::Result<Result<u32, VizError>> {
        let (json, summary) =
            match split(scene::validate_scene(&scene, &self.ctx.limits, self.meter))? {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
        Ok(self
            .outputs
            .push_metered(
                self.meter,
                OutputKind::Scene,
                summary,
                vec![(MIME_SCENE, json.into_bytes())],
            )?
            .map_err(|e| too_large(e.0)))
    }

    fn new_canvas(
        &mut self,
        width: u32,
        height: u32,
    ) -> wasmtime::Result<Result<Resource<Canvas>, VizError>> {
        self.meter.charge(cost::CALL)?;
        if self.ctx.canvases >= self.ctx.max_canvases {
            return Ok(Err(too_large(format!(
                "{} canvases are open: at most {} may exist at once in a run",
                self.ctx.canvases, self.ctx.max_canvases
            ))));
        }
        let canvas = match Canvas::new(width, height, &self.ctx.limits) {
            Ok(c) => c,
            Err(e) => return Ok(Err(guest_error(e))),
        };
        let handle = self.table.push(canvas)?;
        self.ctx.canvases += 1;
        Ok(Ok(handle))
    }
}

struct HasViz;

impl HasData for HasViz {
    type Data<'a> = VizView<'a>;
}

/// Add `llmos:kernel/viz` to `linker`, reaching its view through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> VizView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasViz>(linker, get)
}

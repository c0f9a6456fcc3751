//! Charts: `plot(data, options)` → SVG + PNG.
//!
//! # Data shapes
//!
//! The JSON shape of `data` picks the chart (`options.kind` may override
//! where it makes sense):
//!
//! | data                                              | chart            | kinds allowed                  |
//! |---------------------------------------------------|------------------|--------------------------------|
//! | `[1, 2, 3]`                                       | line over index  | line, scatter, bar, histogram  |
//! | `[[x, y], ...]` or `[{"x": .., "y": ..}, ...]`    | scatter          | scatter, line                  |
//! | `{"x": [...], "y": [...]}`                        | line (x/y)       | line, scatter                  |
//! | `{"x": [...], "a": [...], "b": [...]}`            | lines sharing x  | line, scatter                  |
//! | `{"a": [1, 2], "b": [[x, y], ...], "c": {"x": [..], "y": [..]}}` | one series per name, legend | line, scatter (histogram if all are plain numbers) |
//! | `{"a": 3, "b": 5}`                                | bar              | bar                            |
//!
//! A named series that is an array of plain numbers is plotted over its
//! index; the default kind is line if every series is plain numbers, and
//! scatter if any series has explicit x values. The option `bins` without a
//! `kind` means histogram.
//!
//! **`null`** in a y position is a gap: a line breaks there, a scatter or
//! histogram skips it. An x value, a bar value or a histogram-only position
//! cannot be null. JSON cannot carry NaN or infinities; numbers too large
//! for a double are rejected by the parser.
//!
//! **Histogram bins** default to Sturges' rule, `ceil(log2(n)) + 1` for the
//! largest series of `n` values; bins are equal-width between the smallest
//! and largest value (a single distinct value gets a unit-wide range), and
//! the last bin includes its upper edge. Several series share the same bin
//! edges and are drawn translucently on top of each other.
//!
//! # Look
//!
//! "Nice" tick steps (1, 2 or 5 × 10^k), light grid lines, axis labels, a
//! bold title, the Tableau 10 palette, a legend on the right for several
//! series, margins sized from the measured width of the labels (see
//! `render::text_width`), category labels truncated with `…` and rotated
//! when they do not fit under their bar. Line charts widen their axes to
//! whole tick steps; scatter axes are tight with a 5% margin. All-equal
//! values get a padded, non-degenerate axis; bar charts always include zero.
//!
//! Marks are structured for consumers and tests: each series is a
//! `<g class="series">` holding one `<path class="series-line">` (line) or
//! one `<circle>` per point (scatter; a lone point of a line gets one too),
//! each bar or histogram bin is a `<rect class="bar">` (with `data-label` /
//! `data-count`); ticks, legend and labels are `<text>` elements with
//! `class` attributes inside `<g class="x-ticks">`, `"y-ticks"`, `"legend"`.
//! Guest text is always escaped by the SVG writer.
//!
//! # Cost
//!
//! A line series whose x never decreases is reduced to its lowest and
//! highest point per pixel column (plus its ends) before drawing: the same
//! picture at this resolution, so 200,000 noisy samples render in well
//! under a second and the SVG stays small. The marks' estimated
//! rasterization work (see `render::DrawCost`) must stay within
//! `max_draw_cost`; otherwise the chart is refused as `TooLarge` with a hint
//! (typically: an unsorted line with very many points, or a huge scatter).

use super::color::Color;
use super::render::{self, DrawCost, SHAPE_COST, fit_text, text_width};
use super::svg::{PathData, Style, SvgWriter, num};
use super::types::{
    JVal, ParseError, Rendered, VizError, VizLimits, duplicate_key, parse_json, quote_for_message,
};
use crate::meter::{Meter, cost};

/// The Tableau 10 palette, used in order for series.
pub const PALETTE: [Color; 10] = [
    Color::rgb(0x4e, 0x79, 0xa7),
    Color::rgb(0xf2, 0x8e, 0x2b),
    Color::rgb(0xe1, 0x57, 0x59),
    Color::rgb(0x76, 0xb7, 0xb2),
    Color::rgb(0x59, 0xa1, 0x4f),
    Color::rgb(0xed, 0xc9, 0x48),
    Color::rgb(0xb0, 0x7a, 0xa1),
    Color::rgb(0xff, 0x9d, 0xa7),
    Color::rgb(0x9c, 0x75, 0x5f),
    Color::rgb(0xba, 0xb0, 0xac),
];

/// Default chart size (shrunk to `max_canvas_side` if that is smaller).
const DEFAULT_WIDTH: u32 = 640;
const DEFAULT_HEIGHT: u32 = 400;
/// Smallest chart side that leaves room for axes and labels.
const MIN_SIDE: u32 = 100;

const PAD: f64 = 12.0;
const TICK_LEN: f64 = 5.0;
const TICK_FONT: f64 = 11.0;
const LABEL_FONT: f64 = 12.0;
const TITLE_FONT: f64 = 15.0;
const LEGEND_FONT: f64 = 11.0;
const LEGEND_ROW: f64 = 18.0;
const LEGEND_SWATCH: f64 = 18.0;

const TEXT_DARK: Color = Color::rgb(0x22, 0x22, 0x22);
const TEXT_TICK: Color = Color::rgb(0x55, 0x55, 0x55);
const GRID: Color = Color::rgb(0xe6, 0xe6, 0xe6);
const AXIS: Color = Color::rgb(0x66, 0x66, 0x66);
const ZERO_LINE: Color = Color::rgb(0x99, 0x99, 0x99);

/// The supported data shapes, for error messages.
const SHAPES: &str = "an array of numbers (line), an array of [x, y] pairs or {\"x\": .., \"y\": ..} \
objects (scatter), {\"x\": [...], \"y\": [...]} (line), an object of name -> array (one series \
per name) or an object of name -> number (bar chart)";

/// Most JSON values in valid options (eight scalar keys), with room to
/// spare; anything bigger is not a set of options.
const OPTION_VALUES: usize = 64;

/// The valid option keys, for error messages.
const OPTION_KEYS: &str = "kind, title, x_label (or xlabel, x-label), y_label (or ylabel, \
y-label), width, height, bins, legend";

/// A chart type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// Lines through the points, one path per series.
    Line,
    /// One dot per point.
    Scatter,
    /// One bar per category.
    Bar,
    /// Counts of values in equal-width bins.
    Histogram,
}

impl ChartKind {
    /// The option value naming this kind.
    pub fn name(self) -> &'static str {
        match self {
            ChartKind::Line => "line",
            ChartKind::Scatter => "scatter",
            ChartKind::Bar => "bar",
            ChartKind::Histogram => "histogram",
        }
    }

    fn parse(s: &str) -> Option<ChartKind> {
        match s {
            "line" => Some(ChartKind::Line),
            "scatter" => Some(ChartKind::Scatter),
            "bar" => Some(ChartKind::Bar),
            "histogram" => Some(ChartKind::Histogram),
            _ => None,
        }
    }
}

/// Draw a chart of `data_json` (see the module docs for shapes) with
/// `options_json` (a JSON object; empty, `null` or `{}` for defaults).
///
/// Host budgets (`meter`): the JSON is paid for per byte before it is
/// parsed, layout checks the run's deadline between stages, and the
/// rasterizing is paid for by its estimated drawing work before resvg runs
/// (`render::finish`).
pub fn plot(
    data_json: &str,
    options_json: &str,
    limits: &VizLimits,
    meter: &mut Meter,
) -> Result<Rendered, VizError> {
    let json_bytes = (data_json.len() as u64).saturating_add(options_json.len() as u64);
    meter.charge(cost::CALL.saturating_add(json_bytes.saturating_mul(cost::PER_BYTE)))?;
    let opts = parse_options(options_json, limits)?;
    // A point takes at most 3 JSON values ([x, y] or {"x": .., "y": ..});
    // the slack covers series containers.
    let max_values = limits.max_points.saturating_mul(4).saturating_add(64);
    let data = parse_json(data_json, limits.max_json_bytes, max_values).map_err(|e| match e {
        ParseError::TooLarge(n, max) => VizError::TooLarge(format!(
            "data is {n} bytes of JSON: at most {max} bytes are accepted"
        )),
        ParseError::TooManyValues(n) => VizError::TooLarge(format!(
            "data holds more than {n} JSON values: a chart takes at most {} points",
            limits.max_points
        )),
        ParseError::Syntax(m) => VizError::InvalidData(format!("data is not valid JSON: {m}")),
    })?;
    meter.check_time()?;
    let shape = parse_shape(&data, limits.max_points)?;
    drop(data);
    meter.check_time()?;
    let chart = build_chart(shape, &opts, limits)?;
    meter.check_time()?;
    let (svg, summary, units) = draw(&chart, &opts, limits.max_draw_cost)?;
    drop(chart);
    meter.check_time()?;
    render::finish(svg, opts.width, opts.height, summary, units, meter)
}

// ---------------------------------------------------------------- options

/// Parsed chart options.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    kind: Option<ChartKind>,
    title: String,
    x_label: String,
    y_label: String,
    width: u32,
    height: u32,
    bins: Option<usize>,
    legend: Option<bool>,
}

fn opt_err(msg: String) -> VizError {
    VizError::InvalidOptions(msg)
}

fn parse_options(text: &str, limits: &VizLimits) -> Result<Options, VizError> {
    let mut o = Options {
        kind: None,
        title: String::new(),
        x_label: String::new(),
        y_label: String::new(),
        width: DEFAULT_WIDTH.min(limits.max_canvas_side),
        height: DEFAULT_HEIGHT.min(limits.max_canvas_side),
        bins: None,
        legend: None,
    };
    if text.trim().is_empty() {
        return Ok(o);
    }
    let v = parse_json(text, limits.max_json_bytes, OPTION_VALUES).map_err(|e| match e {
        ParseError::TooLarge(n, max) => VizError::TooLarge(format!(
            "options are {n} bytes of JSON: at most {max} bytes are accepted"
        )),
        ParseError::TooManyValues(n) => opt_err(format!(
            "options hold more than {n} JSON values: give one object with some of {OPTION_KEYS}"
        )),
        ParseError::Syntax(m) => opt_err(format!("options are not valid JSON: {m}")),
    })?;
    let entries = match v {
        JVal::Null => return Ok(o),
        JVal::Obj(entries) => entries,
        other => {
            return Err(opt_err(format!(
                "options must be a JSON object such as {{\"title\": \"Sales\"}}, not {}",
                other.describe()
            )));
        }
    };
    let mut seen: Vec<(&'static str, String)> = Vec::new();
    for (key, value) in entries {
        let canon = match key.as_str() {
            "kind" => "kind",
            "title" => "title",
            "x_label" | "xlabel" | "x-label" | "xLabel" => "x_label",
            "y_label" | "ylabel" | "y-label" | "yLabel" => "y_label",
            "width" => "width",
            "height" => "height",
            "bins" => "bins",
            "legend" => "legend",
            _ => {
                return Err(opt_err(format!(
                    "unknown option {}: valid options are {OPTION_KEYS}",
                    quote_for_message(&key)
                )));
            }
        };
        if let Some((_, first)) = seen.iter().find(|(c, _)| *c == canon) {
            return Err(opt_err(format!(
                "option {canon} is given twice (as {} and {})",
                quote_for_message(first),
                quote_for_message(&key)
            )));
        }
        seen.push((canon, key.clone()));
        if value == JVal::Null {
            continue;
        }
        match canon {
            "kind" => {
                let JVal::Str(s) = &value else {
                    return Err(kind_err(&value));
                };
                o.kind = Some(ChartKind::parse(s).ok_or_else(|| kind_err(&value))?);
            }
            "title" => o.title = opt_string(&key, value)?,
            "x_label" => o.x_label = opt_string(&key, value)?,
            "y_label" => o.y_label = opt_string(&key, value)?,
            "width" => o.width = opt_side(&key, &value, limits)?,
            "height" => o.height = opt_side(&key, &value, limits)?,
            "bins" => {
                let n = opt_integer(&key, &value)?;
                if n < 1.0 {
                    return Err(opt_err(format!("bins is {n}: give at least 1 bin")));
                }
                if n > limits.max_points as f64 {
                    return Err(VizError::TooLarge(format!(
                        "bins is {n}: at most {} bins",
                        limits.max_points
                    )));
                }
                // 1 <= n <= max_points, an integer: the cast is exact.
                o.bins = Some(n as usize);
            }
            _ => {
                let JVal::Bool(b) = value else {
                    return Err(opt_err(format!(
                        "option legend is {}, expected true or false",
                        value.describe()
                    )));
                };
                o.legend = Some(b);
            }
        }
    }
    Ok(o)
}

fn kind_err(v: &JVal) -> VizError {
    opt_err(format!(
        "option kind is {}, expected one of \"line\", \"scatter\", \"bar\", \"histogram\"",
        v.describe()
    ))
}

fn opt_string(key: &str, v: JVal) -> Result<String, VizError> {
    match v {
        JVal::Str(s) => Ok(s),
        other => Err(opt_err(format!(
            "option {key} is {}, expected a string",
            other.describe()
        ))),
    }
}

fn opt_integer(key: &str, v: &JVal) -> Result<f64, VizError> {
    match v {
        JVal::Num(n) if n.fract() == 0.0 => Ok(*n),
        other => Err(opt_err(format!(
            "option {key} is {}, expected a whole number",
            other.describe()
        ))),
    }
}

fn opt_side(key: &str, v: &JVal, limits: &VizLimits) -> Result<u32, VizError> {
    let n = opt_integer(key, v)?;
    let max = limits.max_canvas_side;
    let min = MIN_SIDE.min(max);
    if n > f64::from(max) {
        return Err(VizError::TooLarge(format!(
            "{key} {n} is too large: a chart is at most {max}x{max} pixels"
        )));
    }
    if n < f64::from(min) {
        return Err(opt_err(format!(
            "{key} {n} is too small: give {min} to {max} pixels"
        )));
    }
    // min <= n <= max <= u32::MAX, an integer: the cast is exact.
    Ok(n as u32)
}

// ---------------------------------------------------------------- data

/// One series' raw points.
#[derive(Debug, Clone, PartialEq)]
enum SeriesData {
    /// Plain numbers (y over the index); `None` is a gap.
    Values(Vec<Option<f64>>),
    /// Explicit (x, y) points; `None` y is a gap.
    Pairs(Vec<(f64, Option<f64>)>),
}

/// The detected shape of `data`.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Values(Vec<Option<f64>>),
    Pairs(Vec<(f64, Option<f64>)>),
    SharedX {
        x: Vec<f64>,
        series: Vec<(String, Vec<Option<f64>>)>,
    },
    Named(Vec<(String, SeriesData)>),
    Bars(Vec<(String, f64)>),
}

impl Shape {
    fn describe(&self) -> &'static str {
        match self {
            Shape::Values(_) => "an array of numbers",
            Shape::Pairs(_) => "an array of (x, y) points",
            Shape::SharedX { .. } => "x values with y series",
            Shape::Named(_) => "named series",
            Shape::Bars(_) => "names mapped to single numbers",
        }
    }
}

fn data_err(msg: String) -> VizError {
    VizError::InvalidData(msg)
}

/// Counts points against `max_points` before anything is allocated for them.
struct Budget {
    used: usize,
    max: usize,
}

impl Budget {
    fn take(&mut self, n: usize) -> Result<(), VizError> {
        self.used = self.used.saturating_add(n);
        if self.used > self.max {
            return Err(VizError::TooLarge(format!(
                "data has more than {} points: a chart takes at most {} points in all",
                self.max, self.max
            )));
        }
        Ok(())
    }
}

fn key_path(key: &str) -> String {
    format!("data[{}]", quote_for_message(key))
}

fn parse_shape(data: &JVal, max_points: usize) -> Result<Shape, VizError> {
    let mut budget = Budget {
        used: 0,
        max: max_points,
    };
    match data {
        JVal::Arr(items) => Ok(match parse_series("data", items, &mut budget)? {
            SeriesData::Values(v) => Shape::Values(v),
            SeriesData::Pairs(p) => Shape::Pairs(p),
        }),
        JVal::Obj(entries) => parse_object(entries, &mut budget),
        other => Err(data_err(format!(
            "data is {}: give {SHAPES}",
            other.describe()
        ))),
    }
}

fn parse_object(entries: &[(String, JVal)], budget: &mut Budget) -> Result<Shape, VizError> {
    let Some((first_key, first)) = entries.first() else {
        return Err(data_err(format!("data is an empty object: give {SHAPES}")));
    };
    if let Some(k) = duplicate_key(entries) {
        return Err(data_err(format!(
            "data has the key {} twice",
            quote_for_message(k)
        )));
    }
    // name -> number: a bar chart.
    if matches!(first, JVal::Num(_)) {
        budget.take(entries.len())?;
        let mut bars = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match v {
                JVal::Num(n) => bars.push((k.clone(), *n)),
                JVal::Arr(_) | JVal::Obj(_) => {
                    return Err(data_err(format!(
                        "{} is {}, but {} is a number: give either name -> number (a bar \
                         chart) or name -> array (one series per name)",
                        key_path(k),
                        v.describe(),
                        key_path(first_key)
                    )));
                }
                other => {
                    return Err(data_err(format!(
                        "{} is {}, expected a number (the height of bar {})",
                        key_path(k),
                        other.describe(),
                        quote_for_message(k)
                    )));
                }
            }
        }
        return Ok(Shape::Bars(bars));
    }
    // A shared x array.
    if let Some((_, JVal::Arr(xs))) = entries.iter().find(|(k, _)| k == "x") {
        return parse_shared_x(xs, entries, budget);
    }
    let mut named = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let path = key_path(k);
        let series = match v {
            JVal::Arr(items) => parse_series(&path, items, budget)?,
            JVal::Obj(fields) => parse_xy_object(&path, fields, budget)?,
            JVal::Num(_) => {
                return Err(data_err(format!(
                    "{path} is a number, but {} is {}: give either name -> number (a bar \
                     chart) or name -> array (one series per name)",
                    key_path(first_key),
                    first.describe()
                )));
            }
            other => {
                return Err(data_err(format!(
                    "{path} is {}, expected an array of numbers or of [x, y] pairs (a series), \
                     or a number (a bar)",
                    other.describe()
                )));
            }
        };
        named.push((k.clone(), series));
    }
    Ok(Shape::Named(named))
}

/// `{"x": [...], "y": [...]}` as one named series.
fn parse_xy_object(
    path: &str,
    fields: &[(String, JVal)],
    budget: &mut Budget,
) -> Result<SeriesData, VizError> {
    if let Some((k, _)) = fields.iter().find(|(k, _)| k != "x" && k != "y") {
        return Err(data_err(format!(
            "{path} has the key {}: a series object takes only \"x\" and \"y\" arrays",
            quote_for_message(k)
        )));
    }
    let get = |name: &str| -> Result<&Vec<JVal>, VizError> {
        match fields.iter().find(|(k, _)| k == name) {
            Some((_, JVal::Arr(a))) => Ok(a),
            Some((_, other)) => Err(data_err(format!(
                "{path}[\"{name}\"] is {}, expected an array of numbers",
                other.describe()
            ))),
            None => Err(data_err(format!(
                "{path} has no \"{name}\": a series object needs \"x\" and \"y\" arrays"
            ))),
        }
    };
    let (xs, ys) = (get("x")?, get("y")?);
    if xs.len() != ys.len() {
        return Err(data_err(format!(
            "{path}[\"y\"] has {} values but {path}[\"x\"] has {}",
            ys.len(),
            xs.len()
        )));
    }
    if xs.is_empty() {
        return Err(data_err(format!(
            "{path} is empty: give at least one point"
        )));
    }
    budget.take(xs.len())?;
    let x = parse_xs(&format!("{path}[\"x\"]"), xs)?;
    let y = parse_values(&format!("{path}[\"y\"]"), ys)?;
    Ok(SeriesData::Pairs(x.into_iter().zip(y).collect()))
}

fn parse_shared_x(
    xs: &[JVal],
    entries: &[(String, JVal)],
    budget: &mut Budget,
) -> Result<Shape, VizError> {
    if xs.is_empty() {
        return Err(data_err(
            "data[\"x\"] is empty: give at least one x value".into(),
        ));
    }
    let x = parse_xs("data[\"x\"]", xs)?;
    let mut series = Vec::new();
    for (k, v) in entries.iter().filter(|(k, _)| k != "x") {
        let path = key_path(k);
        let JVal::Arr(items) = v else {
            return Err(data_err(format!(
                "{path} is {}: with a shared \"x\", every other key must be an array of y values",
                v.describe()
            )));
        };
        if items.len() != xs.len() {
            return Err(data_err(format!(
                "series {} has {} points but x has {}",
                quote_for_message(k),
                items.len(),
                xs.len()
            )));
        }
        budget.take(items.len())?;
        series.push((k.clone(), parse_values(&path, items)?));
    }
    if series.is_empty() {
        return Err(data_err(
            "data has \"x\" but no y series: add e.g. \"y\": [...] with one value per x".into(),
        ));
    }
    Ok(Shape::SharedX { x, series })
}

fn parse_xs(path: &str, items: &[JVal]) -> Result<Vec<f64>, VizError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            JVal::Num(n) => Ok(*n),
            other => Err(data_err(format!(
                "{path}[{i}] is {}, expected a number (x values cannot be null)",
                other.describe()
            ))),
        })
        .collect()
}

fn parse_values(path: &str, items: &[JVal]) -> Result<Vec<Option<f64>>, VizError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            JVal::Num(n) => Ok(Some(*n)),
            JVal::Null => Ok(None),
            other => Err(data_err(format!(
                "{path}[{i}] is {}, expected a number (or null for a gap)",
                other.describe()
            ))),
        })
        .collect()
}

/// An array: plain numbers, or points as `[x, y]` / `{"x":, "y":}`. The
/// first non-null element decides which.
fn parse_series(path: &str, items: &[JVal], budget: &mut Budget) -> Result<SeriesData, VizError> {
    if items.is_empty() {
        return Err(data_err(format!(
            "{path} is empty: give at least one value"
        )));
    }
    budget.take(items.len())?;
    let Some((first_i, first)) = items.iter().enumerate().find(|(_, v)| **v != JVal::Null) else {
        return Err(data_err(format!(
            "{path} holds only nulls: give at least one number"
        )));
    };
    match first {
        JVal::Num(_) => parse_values(path, items).map(SeriesData::Values),
        JVal::Arr(_) | JVal::Obj(_) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_point(&format!("{path}[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()
            .map(SeriesData::Pairs),
        other => Err(data_err(format!(
            "{path}[{first_i}] is {}, expected a number, an [x, y] pair or an \
             {{\"x\": .., \"y\": ..}} object",
            other.describe()
        ))),
    }
}

fn parse_point(path: &str, v: &JVal) -> Result<(f64, Option<f64>), VizError> {
    let (x, y) = match v {
        JVal::Arr(xy) => match xy.as_slice() {
            [x, y] => (x, y),
            _ => {
                return Err(data_err(format!(
                    "{path} has {} elements, expected an [x, y] pair",
                    xy.len()
                )));
            }
        },
        JVal::Obj(fields) => {
            if let Some((k, _)) = fields.iter().find(|(k, _)| k != "x" && k != "y") {
                return Err(data_err(format!(
                    "{path} has the key {}: a point object takes only \"x\" and \"y\"",
                    quote_for_message(k)
                )));
            }
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        data_err(format!(
                            "{path} has no \"{name}\": a point object needs \"x\" and \"y\""
                        ))
                    })
            };
            (get("x")?, get("y")?)
        }
        other => {
            return Err(data_err(format!(
                "{path} is {}, expected an [x, y] pair or an {{\"x\": .., \"y\": ..}} object \
                 like the first point",
                other.describe()
            )));
        }
    };
    let x = x
        .as_num()
        .ok_or_else(|| data_err(format!("{path} has x {}, expected a number", x.describe())))?;
    let y = match y {
        JVal::Num(n) => Some(*n),
        JVal::Null => None,
        other => {
            return Err(data_err(format!(
                "{path} has y {}, expected a number (or null for a gap)",
                other.describe()
            )));
        }
    };
    Ok((x, y))
}

// ---------------------------------------------------------------- chart model

/// One plotted series.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    xs: Vec<f64>,
    ys: Vec<Option<f64>>,
}

impl Series {
    fn over_index(name: String, ys: Vec<Option<f64>>) -> Series {
        let xs = (0..ys.len()).map(|i| i as f64).collect();
        Series { name, xs, ys }
    }

    fn from_pairs(name: String, pairs: Vec<(f64, Option<f64>)>) -> Series {
        let (xs, ys) = pairs.into_iter().unzip();
        Series { name, xs, ys }
    }
}

/// What gets drawn.
#[derive(Debug, Clone, PartialEq)]
enum Chart {
    Xy {
        kind: ChartKind,
        series: Vec<Series>,
        /// x is the index of plain values: integer ticks.
        index_x: bool,
        /// Series have names worth a legend by default.
        legend: bool,
    },
    Bar {
        bars: Vec<(String, f64)>,
    },
    Hist {
        series: Vec<(String, Vec<f64>)>,
        bins: usize,
        legend: bool,
    },
}

fn kind_mismatch(kind: ChartKind, shape: &Shape, allowed: &str) -> VizError {
    opt_err(format!(
        "kind \"{}\" does not fit this data ({}): use {allowed}, or reshape the data ({SHAPES})",
        kind.name(),
        shape.describe()
    ))
}

fn values_only(path: &str, ys: Vec<Option<f64>>) -> Result<Vec<f64>, VizError> {
    let v: Vec<f64> = ys.into_iter().flatten().collect();
    if v.is_empty() {
        return Err(data_err(format!("{path} has no numbers to count")));
    }
    Ok(v)
}

/// Sturges' rule: `ceil(log2(n)) + 1`.
fn sturges(n: usize) -> usize {
    let mut bits = 0usize;
    while bits < 64 && (1u128 << bits) < n as u128 {
        bits += 1;
    }
    bits + 1
}

fn build_chart(shape: Shape, opts: &Options, limits: &VizLimits) -> Result<Chart, VizError> {
    let kind = match (opts.kind, opts.bins) {
        (Some(k), Some(_)) if k != ChartKind::Histogram => {
            return Err(opt_err(format!(
                "option bins only applies to histograms, but kind is \"{}\": drop bins or use \
                 kind \"histogram\"",
                k.name()
            )));
        }
        (None, Some(_)) => Some(ChartKind::Histogram),
        (k, _) => k,
    };
    let hist = |series: Vec<(String, Vec<f64>)>, legend: bool| -> Chart {
        let largest = series.iter().map(|(_, v)| v.len()).max().unwrap_or(1);
        let bins = opts
            .bins
            .unwrap_or_else(|| sturges(largest))
            .clamp(1, limits.max_points.max(1));
        Chart::Hist {
            series,
            bins,
            legend,
        }
    };
    Ok(match shape {
        Shape::Values(ys) => match kind.unwrap_or(ChartKind::Line) {
            k @ (ChartKind::Line | ChartKind::Scatter) => Chart::Xy {
                kind: k,
                series: vec![Series::over_index(String::new(), ys)],
                index_x: true,
                legend: false,
            },
            ChartKind::Bar => {
                let mut bars = Vec::with_capacity(ys.len());
                for (i, y) in ys.into_iter().enumerate() {
                    let y = y.ok_or_else(|| {
                        data_err(format!(
                            "data[{i}] is null, expected a number (a bar's height)"
                        ))
                    })?;
                    bars.push((i.to_string(), y));
                }
                Chart::Bar { bars }
            }
            ChartKind::Histogram => hist(vec![(String::new(), values_only("data", ys)?)], false),
        },
        Shape::Pairs(pairs) => match kind.unwrap_or(ChartKind::Scatter) {
            k @ (ChartKind::Line | ChartKind::Scatter) => Chart::Xy {
                kind: k,
                series: vec![Series::from_pairs(String::new(), pairs)],
                index_x: false,
                legend: false,
            },
            k => {
                return Err(kind_mismatch(
                    k,
                    &Shape::Pairs(pairs),
                    "\"scatter\" or \"line\"",
                ));
            }
        },
        Shape::SharedX { x, series } => match kind.unwrap_or(ChartKind::Line) {
            k @ (ChartKind::Line | ChartKind::Scatter) => {
                let legend = series.len() > 1;
                Chart::Xy {
                    kind: k,
                    series: series
                        .into_iter()
                        .map(|(name, ys)| Series {
                            name,
                            xs: x.clone(),
                            ys,
                        })
                        .collect(),
                    index_x: false,
                    legend,
                }
            }
            k => {
                return Err(kind_mismatch(
                    k,
                    &Shape::SharedX { x, series },
                    "\"line\" or \"scatter\"",
                ));
            }
        },
        Shape::Named(named) => {
            let all_values = named
                .iter()
                .all(|(_, s)| matches!(s, SeriesData::Values(_)));
            let default = if all_values {
                ChartKind::Line
            } else {
                ChartKind::Scatter
            };
            match kind.unwrap_or(default) {
                k @ (ChartKind::Line | ChartKind::Scatter) => Chart::Xy {
                    kind: k,
                    index_x: all_values,
                    legend: true,
                    series: named
                        .into_iter()
                        .map(|(name, s)| match s {
                            SeriesData::Values(ys) => Series::over_index(name, ys),
                            SeriesData::Pairs(p) => Series::from_pairs(name, p),
                        })
                        .collect(),
                },
                ChartKind::Histogram if all_values => {
                    let mut series = Vec::with_capacity(named.len());
                    for (name, s) in named {
                        if let SeriesData::Values(ys) = s {
                            let v = values_only(&key_path(&name), ys)?;
                            series.push((name, v));
                        }
                    }
                    hist(series, true)
                }
                k => {
                    let allowed = if all_values {
                        "\"line\", \"scatter\" or \"histogram\""
                    } else {
                        "\"line\" or \"scatter\""
                    };
                    return Err(kind_mismatch(k, &Shape::Named(named), allowed));
                }
            }
        }
        Shape::Bars(bars) => match kind.unwrap_or(ChartKind::Bar) {
            ChartKind::Bar => Chart::Bar { bars },
            k => return Err(kind_mismatch(k, &Shape::Bars(bars), "\"bar\"")),
        },
    })
}

// ---------------------------------------------------------------- axes

/// A numeric axis: its range and labelled ticks.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl Axis {
    /// Map `v` from the axis range onto the pixel span `p0..p1`.
    fn map(&self, v: f64, p0: f64, p1: f64) -> f64 {
        p0 + (v - self.lo) / (self.hi - self.lo) * (p1 - p0)
    }

    fn max_label_width(&self) -> f64 {
        self.labels
            .iter()
            .map(|l| text_width(l, TICK_FONT, false))
            .fold(0.0, f64::max)
    }
}

/// Ticks at a "nice" step (1, 2 or 5 × 10^k) giving the number of
/// intervals closest to `target`. `tight` keeps the range at `[min, max]` (ticks inside it);
/// otherwise the range is widened to whole steps. `integer` forces steps of
/// at least 1 (index axes).
fn make_axis(
    min: f64,
    max: f64,
    target: usize,
    tight: bool,
    integer: bool,
) -> Result<Axis, VizError> {
    let (mut min, mut max) = (min, max);
    if !(max - min).is_finite() {
        return Err(data_err(format!(
            "values range from {min} to {max}, which is too wide to plot"
        )));
    }
    let scale = min.abs().max(max.abs());
    if max - min <= scale * 1e-12 {
        let pad = if scale == 0.0 { 1.0 } else { scale * 0.1 };
        min -= pad;
        max += pad;
    }
    let target = target.max(1) as f64;
    let raw = (max - min) / target;
    let mag = 10f64.powf(raw.log10().floor());
    // The 1/2/5/10 × 10^k step whose interval count is closest to the
    // target (ties go to the larger step).
    let range = max - min;
    let mut step = mag;
    for nice in [2.0, 5.0, 10.0] {
        let c = nice * mag;
        if (range / c - target).abs() <= (range / step - target).abs() {
            step = c;
        }
    }
    if integer && step < 1.0 {
        step = 1.0;
    }
    if !(step.is_finite() && step > 0.0) {
        return Err(data_err(format!(
            "values range from {min} to {max}, which cannot be divided into ticks"
        )));
    }
    let (lo, hi) = if tight {
        (min, max)
    } else {
        ((min / step).floor() * step, (max / step).ceil() * step)
    };
    let first = (lo / step - 1e-9).ceil();
    let mut ticks = Vec::new();
    let mut i = 0.0;
    // At most ~target + 2 ticks; the bound guards against rounding surprises.
    while ticks.len() < 64 {
        let t = (first + i) * step;
        if t > hi + step * 1e-9 {
            break;
        }
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        i += 1.0;
    }
    let labels = format_ticks(&ticks, step);
    Ok(Axis {
        lo,
        hi,
        ticks,
        labels,
    })
}

/// Tick labels with just enough decimals for `step`; scientific notation
/// for very large or very small magnitudes.
fn format_ticks(ticks: &[f64], step: f64) -> Vec<String> {
    let step_exp = step.log10().floor() as i32;
    let max_abs = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    if max_abs >= 1e7 || (step < 1e-4 && max_abs > 0.0) {
        let max_exp = if max_abs > 0.0 {
            max_abs.log10().floor() as i32
        } else {
            0
        };
        let digits = (max_exp - step_exp).clamp(0, 12) as usize;
        return ticks
            .iter()
            .map(|t| {
                if *t == 0.0 {
                    "0".to_string()
                } else {
                    format!("{t:.digits$e}")
                }
            })
            .collect();
    }
    let decimals = (-step_exp).clamp(0, 12) as usize;
    ticks
        .iter()
        .map(|t| {
            let s = format!("{t:.decimals$}");
            if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() {
                s.trim_start_matches('-').to_string()
            } else {
                s
            }
        })
        .collect()
}

/// An x axis whose labels do not collide within `span` pixels.
fn fitted_x_axis(
    min: f64,
    max: f64,
    span: f64,
    tight: bool,
    integer: bool,
) -> Result<Axis, VizError> {
    let mut target = ((span / 90.0) as usize).clamp(2, 10);
    loop {
        let axis = make_axis(min, max, target, tight, integer)?;
        let spacing = match axis.ticks.as_slice() {
            [a, b, ..] => (b - a) / (axis.hi - axis.lo) * span,
            _ => span,
        };
        if target <= 1 || axis.max_label_width() + 10.0 <= spacing {
            return Ok(axis);
        }
        target -= 1;
    }
}

/// Lay out the plot horizontally for a numeric x axis: the left margin
/// fits the y labels, the right margin the legend (or half the last x
/// label, which is centred on the plot's right edge).
fn numeric_x_layout(
    decor: &Decor<'_>,
    y_axis: &Axis,
    legend_w: f64,
    (x_min, x_max): (f64, f64),
    tight: bool,
    integer: bool,
) -> Result<(f64, f64, Axis), VizError> {
    let base_right = if legend_w > 0.0 {
        legend_w + 16.0
    } else {
        PAD + 4.0
    };
    let (left, right) = horizontal_layout(decor, y_axis, base_right);
    let x_axis = fitted_x_axis(x_min, x_max, right - left, tight, integer)?;
    let last_half = x_axis
        .labels
        .last()
        .map(|l| text_width(l, TICK_FONT, false) / 2.0 + 4.0)
        .unwrap_or(0.0);
    if legend_w > 0.0 || last_half <= base_right {
        return Ok((left, right, x_axis));
    }
    let (left, right) = horizontal_layout(decor, y_axis, last_half);
    let x_axis = fitted_x_axis(x_min, x_max, right - left, tight, integer)?;
    Ok((left, right, x_axis))
}

fn y_target(plot_h: f64) -> usize {
    ((plot_h / 50.0) as usize).clamp(2, 8)
}

// ---------------------------------------------------------------- drawing

/// The plotting rectangle.
#[derive(Debug, Clone, Copy)]
struct Frame {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Swatch {
    Line,
    Dot,
    Block,
}

struct LegendEntry {
    name: String,
    color: Color,
}

fn text(
    w: &mut SvgWriter,
    class: &str,
    (x, y): (f64, f64),
    s: &str,
    size: f64,
    anchor: &str,
    color: Color,
) {
    w.tag("text")
        .attr("class", class)
        .num("x", x)
        .num("y", y)
        .num("font-size", size)
        .attr("text-anchor", anchor)
        .attr("fill", &color.hex())
        .text(s);
}

/// Crisp 1-px lines: snap to the pixel centre.
fn snap(v: f64) -> f64 {
    v.floor() + 0.5
}

fn hline(w: &mut SvgWriter, class: &str, x0: f64, x1: f64, y: f64, color: Color) {
    let y = snap(y);
    w.tag("line")
        .attr("class", class)
        .num("x1", x0)
        .num("y1", y)
        .num("x2", x1)
        .num("y2", y)
        .style(&Style::stroke(color, 1.0))
        .close();
}

fn vline(w: &mut SvgWriter, class: &str, x: f64, y0: f64, y1: f64, color: Color) {
    let x = snap(x);
    w.tag("line")
        .attr("class", class)
        .num("x1", x)
        .num("y1", y0)
        .num("x2", x)
        .num("y2", y1)
        .style(&Style::stroke(color, 1.0))
        .close();
}

/// Decorations common to every chart: title, axis labels.
struct Decor<'a> {
    opts: &'a Options,
    width: f64,
    height: f64,
}

impl Decor<'_> {
    fn top(&self) -> f64 {
        if self.opts.title.is_empty() {
            PAD + 4.0
        } else {
            PAD + TITLE_FONT + 12.0
        }
    }

    fn bottom_base(&self) -> f64 {
        let x_label = if self.opts.x_label.is_empty() {
            0.0
        } else {
            LABEL_FONT + 8.0
        };
        TICK_LEN + 4.0 + TICK_FONT + x_label + PAD
    }

    fn left_base(&self) -> f64 {
        let y_label = if self.opts.y_label.is_empty() {
            0.0
        } else {
            LABEL_FONT + 8.0
        };
        PAD + y_label + TICK_LEN + 4.0
    }

    fn draw(&self, w: &mut SvgWriter, f: &Frame) {
        let o = self.opts;
        if !o.title.is_empty() {
            let t = fit_text(&o.title, TITLE_FONT, true, self.width - 2.0 * PAD);
            w.tag("text")
                .attr("class", "title")
                .num("x", self.width / 2.0)
                .num("y", PAD + TITLE_FONT * 0.8)
                .num("font-size", TITLE_FONT)
                .attr("font-weight", "bold")
                .attr("text-anchor", "middle")
                .attr("fill", &TEXT_DARK.hex())
                .text(&t);
        }
        if !o.x_label.is_empty() {
            let t = fit_text(&o.x_label, LABEL_FONT, false, self.width - 2.0 * PAD);
            text(
                w,
                "x-label",
                ((f.left + f.right) / 2.0, self.height - PAD),
                &t,
                LABEL_FONT,
                "middle",
                TEXT_DARK,
            );
        }
        if !o.y_label.is_empty() {
            let t = fit_text(&o.y_label, LABEL_FONT, false, self.height - 2.0 * PAD);
            let (x, y) = (PAD + LABEL_FONT * 0.8, (f.top + f.bottom) / 2.0);
            w.tag("text")
                .attr("class", "y-label")
                .num("x", x)
                .num("y", y)
                .num("font-size", LABEL_FONT)
                .attr("text-anchor", "middle")
                .attr("fill", &TEXT_DARK.hex())
                .attr("transform", &format!("rotate(-90 {} {})", num(x), num(y)))
                .text(&t);
        }
    }
}

/// Width the legend needs, or 0 with no legend.
fn legend_width(entries: &[LegendEntry], chart_width: f64) -> f64 {
    if entries.is_empty() {
        return 0.0;
    }
    let widest = entries
        .iter()
        .map(|e| text_width(&e.name, LEGEND_FONT, false))
        .fold(0.0, f64::max)
        .min(chart_width * 0.25);
    widest + LEGEND_SWATCH + 6.0 + 8.0
}

fn draw_legend(
    w: &mut SvgWriter,
    entries: &[LegendEntry],
    swatch: Swatch,
    x: f64,
    f: &Frame,
    lw: f64,
) {
    if entries.is_empty() {
        return;
    }
    w.tag("g").attr("class", "legend").open();
    let rows = (((f.bottom - f.top) / LEGEND_ROW).floor() as usize).max(1);
    let shown = if entries.len() > rows {
        rows.saturating_sub(1)
    } else {
        entries.len()
    };
    let name_w = lw - LEGEND_SWATCH - 6.0 - 8.0;
    for (i, e) in entries.iter().take(shown).enumerate() {
        let cy = f.top + LEGEND_ROW * (i as f64 + 0.5);
        w.tag("g").attr("class", "legend-entry").open();
        match swatch {
            Swatch::Line => {
                w.tag("line")
                    .num("x1", x)
                    .num("y1", cy)
                    .num("x2", x + LEGEND_SWATCH)
                    .num("y2", cy)
                    .style(&Style::stroke(e.color, 2.5))
                    .close();
            }
            Swatch::Dot | Swatch::Block => {
                let r = if swatch == Swatch::Dot { 5.0 } else { 1.0 };
                w.tag("rect")
                    .num("x", x + 4.0)
                    .num("y", cy - 5.0)
                    .num("width", 10.0)
                    .num("height", 10.0)
                    .num("rx", r)
                    .style(&Style::fill(e.color))
                    .close();
            }
        }
        let name = fit_text(&e.name, LEGEND_FONT, false, name_w);
        text(
            w,
            "legend-label",
            (x + LEGEND_SWATCH + 6.0, cy + LEGEND_FONT * 0.35),
            &name,
            LEGEND_FONT,
            "start",
            TEXT_DARK,
        );
        w.end();
    }
    if shown < entries.len() {
        let cy = f.top + LEGEND_ROW * (shown as f64 + 0.5);
        text(
            w,
            "legend-more",
            (x, cy + LEGEND_FONT * 0.35),
            &format!("… {} more", entries.len() - shown),
            LEGEND_FONT,
            "start",
            TEXT_TICK,
        );
    }
    w.end();
}

fn draw_y_axis(w: &mut SvgWriter, axis: &Axis, f: &Frame) {
    w.tag("g").attr("class", "grid").open();
    for t in &axis.ticks {
        let y = axis.map(*t, f.bottom, f.top);
        hline(w, "grid-y", f.left, f.right, y, GRID);
    }
    w.end();
    w.tag("g").attr("class", "y-ticks").open();
    let mut last_label_y = f64::INFINITY;
    for (t, label) in axis.ticks.iter().zip(&axis.labels) {
        let y = axis.map(*t, f.bottom, f.top);
        hline(w, "tick", f.left - TICK_LEN, f.left, y, AXIS);
        // On a very short plot, skip labels that would overlap.
        if last_label_y - y < TICK_FONT + 1.0 {
            continue;
        }
        last_label_y = y;
        text(
            w,
            "tick-label",
            (f.left - TICK_LEN - 3.0, y + TICK_FONT * 0.35),
            label,
            TICK_FONT,
            "end",
            TEXT_TICK,
        );
    }
    w.end();
}

fn draw_x_axis(w: &mut SvgWriter, axis: &Axis, f: &Frame) {
    w.tag("g").attr("class", "grid").open();
    for t in &axis.ticks {
        let x = axis.map(*t, f.left, f.right);
        vline(w, "grid-x", x, f.top, f.bottom, GRID);
    }
    w.end();
    w.tag("g").attr("class", "x-ticks").open();
    for (t, label) in axis.ticks.iter().zip(&axis.labels) {
        let x = axis.map(*t, f.left, f.right);
        vline(w, "tick", x, f.bottom, f.bottom + TICK_LEN, AXIS);
        text(
            w,
            "tick-label",
            (x, f.bottom + TICK_LEN + 3.0 + TICK_FONT * 0.8),
            label,
            TICK_FONT,
            "middle",
            TEXT_TICK,
        );
    }
    w.end();
}

fn draw_frame_lines(w: &mut SvgWriter, y_axis: &Axis, f: &Frame) {
    if y_axis.lo < 0.0 && y_axis.hi > 0.0 {
        let y0 = y_axis.map(0.0, f.bottom, f.top);
        hline(w, "zero", f.left, f.right, y0, ZERO_LINE);
    }
    w.tag("g").attr("class", "axes").open();
    hline(w, "axis", f.left, f.right, f.bottom, AXIS);
    vline(w, "axis", f.left, f.top, f.bottom, AXIS);
    w.end();
}

/// Plot-area width and left margin for a y axis, within the chart width.
fn horizontal_layout(decor: &Decor<'_>, y_axis: &Axis, right: f64) -> (f64, f64) {
    let left = (decor.left_base() + y_axis.max_label_width()).min(decor.width * 0.45);
    let right_edge = (decor.width - right).max(left + 10.0);
    (left, right_edge)
}

fn title_part(opts: &Options) -> String {
    if opts.title.is_empty() {
        String::new()
    } else {
        format!(" {}", quote_for_message(&opts.title))
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The chart's SVG, its summary and its estimated drawing work.
fn draw(chart: &Chart, opts: &Options, max_cost: u64) -> Result<(String, String, f64), VizError> {
    let mut cost = DrawCost::new(max_cost, opts.width, opts.height);
    let decor = Decor {
        opts,
        width: f64::from(opts.width),
        height: f64::from(opts.height),
    };
    let mut w = SvgWriter::new(opts.width, opts.height, Color::WHITE);
    let summary = match chart {
        Chart::Xy {
            kind,
            series,
            index_x,
            legend,
        } => draw_xy(&mut w, &decor, &mut cost, *kind, series, *index_x, *legend)?,
        Chart::Bar { bars } => draw_bars(&mut w, &decor, &mut cost, bars)?,
        Chart::Hist {
            series,
            bins,
            legend,
        } => draw_hist(&mut w, &decor, &mut cost, series, *bins, *legend)?,
    };
    Ok((w.finish(), summary, cost.used()))
}

fn legend_entries(
    names: impl Iterator<Item = String>,
    default_on: bool,
    opt: Option<bool>,
) -> Vec<LegendEntry> {
    let names: Vec<String> = names.collect();
    if !opt.unwrap_or(default_on && names.len() > 1) {
        return Vec::new();
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| LegendEntry {
            name: if n.is_empty() {
                format!("series {}", i + 1)
            } else {
                n
            },
            color: PALETTE[i % PALETTE.len()],
        })
        .collect()
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Refuse a chart whose marks would take too long to rasterize.
fn check_cost(cost: &DrawCost, hint: &str) -> Result<(), VizError> {
    if cost.used() <= cost.max() {
        return Ok(());
    }
    Err(VizError::TooLarge(format!(
        "the chart would take too long to draw (estimated {:.3e} units of drawing work, at most \
         {:.3e}): {hint}",
        cost.used(),
        cost.max()
    )))
}

/// The path of one line series in pixel coordinates: one subpath per run
/// between gaps. When x never decreases, each run is reduced to at most
/// two points per pixel column (see [`decimate`]), which draws the same
/// picture at this resolution while keeping the SVG small and rendering
/// fast. Returns the path data, its length in pixels and the
/// points without a neighbour (drawn as dots).
fn line_path(pts: &[Option<(f64, f64)>]) -> (PathData, f64, Vec<(f64, f64)>) {
    let mut monotonic = true;
    let mut prev_x = f64::NEG_INFINITY;
    for (x, _) in pts.iter().flatten() {
        if *x < prev_x {
            monotonic = false;
            break;
        }
        prev_x = *x;
    }
    let mut d = PathData::new();
    let mut length = 0.0;
    let mut isolated = Vec::new();
    for run in pts.split(Option::is_none) {
        let run: Vec<(f64, f64)> = run.iter().flatten().copied().collect();
        if let [p] = run.as_slice() {
            isolated.push(*p);
        }
        let kept = if monotonic { decimate(&run) } else { run };
        let mut last: Option<(f64, f64)> = None;
        for &(x, y) in &kept {
            match last {
                None => d.move_to(x, y),
                Some((lx, ly)) if (lx - x).abs() < 0.05 && (ly - y).abs() < 0.05 => continue,
                Some((lx, ly)) => {
                    d.line_to(x, y);
                    length += (x - lx).hypot(y - ly);
                }
            }
            last = Some((x, y));
        }
    }
    (d, length, isolated)
}

/// Reduce an x-sorted run to its first and last points plus, per pixel
/// column, its lowest and highest points in their original order. Drawn as
/// a line, that covers the same pixels as the full run (each column's
/// vertical extent, joined to its neighbours) with at most two vertices per
/// column, so long noisy series stay cheap to draw.
fn decimate(run: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if run.len() <= 4 {
        return run.to_vec();
    }
    let mut out = Vec::new();
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return out;
    };
    out.push(*first);
    let mut i = 0;
    while let Some(&(x0, y0)) = run.get(i) {
        let col = x0.floor();
        let (mut lo, mut hi) = ((i, x0, y0), (i, x0, y0));
        let mut j = i;
        while let Some(&(x, y)) = run.get(j) {
            if x.floor() != col {
                break;
            }
            if y < lo.2 {
                lo = (j, x, y);
            }
            if y > hi.2 {
                hi = (j, x, y);
            }
            j += 1;
        }
        let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
        out.push((a.1, a.2));
        if b.0 != a.0 {
            out.push((b.1, b.2));
        }
        i = j.max(i + 1);
    }
    out.push(*last);
    out
}

fn draw_xy(
    w: &mut SvgWriter,
    decor: &Decor<'_>,
    cost: &mut DrawCost,
    kind: ChartKind,
    series: &[Series],
    index_x: bool,
    legend_default: bool,
) -> Result<String, VizError> {
    let xr = min_max(series.iter().flat_map(|s| {
        s.xs.iter()
            .zip(&s.ys)
            .filter(|(_, y)| y.is_some())
            .map(|(x, _)| *x)
    }));
    let yr = min_max(series.iter().flat_map(|s| s.ys.iter().flatten().copied()));
    let (Some((x_min, x_max)), Some((y_min, y_max))) = (xr, yr) else {
        return Err(data_err(
            "data holds only nulls: give at least one number".into(),
        ));
    };
    let legend = legend_entries(
        series.iter().map(|s| s.name.clone()),
        legend_default,
        decor.opts.legend,
    );
    let lw = legend_width(&legend, decor.width);
    let top = decor.top();
    let bottom = (decor.height - decor.bottom_base()).max(top + 10.0);
    // Lines get axes widened to whole tick steps; scatter plots get tight
    // axes with a 5% margin so no point sits on the frame.
    let scatter = kind == ChartKind::Scatter;
    let margin = |lo: f64, hi: f64| {
        if scatter {
            let m = (hi - lo) * 0.05;
            (lo - m, hi + m)
        } else {
            (lo, hi)
        }
    };
    let (y_lo, y_hi) = margin(y_min, y_max);
    let y_axis = make_axis(y_lo, y_hi, y_target(bottom - top), scatter, false)?;
    let (left, right, x_axis) =
        numeric_x_layout(decor, &y_axis, lw, margin(x_min, x_max), scatter, index_x)?;
    let f = Frame {
        left,
        top,
        right,
        bottom,
    };
    draw_y_axis(w, &y_axis, &f);
    draw_x_axis(w, &x_axis, &f);
    draw_frame_lines(w, &y_axis, &f);

    let total: usize = series.iter().map(|s| s.ys.len()).sum();
    let radius = if total <= 200 {
        3.5
    } else if total <= 2000 {
        2.5
    } else {
        1.5
    };
    let stroke_w = if total > 1000 { 1.5 } else { 2.0 };
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<Option<(f64, f64)>> =
            s.xs.iter()
                .zip(&s.ys)
                .map(|(x, y)| {
                    y.map(|y| {
                        (
                            x_axis.map(*x, f.left, f.right),
                            y_axis.map(y, f.bottom, f.top),
                        )
                    })
                })
                .collect();
        // Scatter marks inherit their fill from the group to keep the SVG
        // compact (one short <circle> per point).
        let fill = Color {
            a: if total > 500 { 0.6 } else { 0.85 },
            ..color
        };
        let group = w
            .tag("g")
            .attr("class", "series")
            .attr("data-name", &s.name);
        if kind == ChartKind::Line {
            group.open();
        } else {
            group.style(&Style::fill(fill)).open();
        }
        match kind {
            ChartKind::Line => {
                let (d, length, isolated) = line_path(&pts);
                cost.add(SHAPE_COST + cost.stroke(length, stroke_w));
                cost.add(isolated.len() as f64 * (SHAPE_COST + 30.0));
                w.tag("path")
                    .attr("class", "series-line")
                    .attr("d", d.as_str())
                    .style(&Style::stroke(color, stroke_w))
                    .attr("stroke-linejoin", "round")
                    .attr("stroke-linecap", "round")
                    .close();
                for (x, y) in isolated {
                    w.tag("circle")
                        .attr("class", "point")
                        .num("cx", x)
                        .num("cy", y)
                        .num("r", 3.0)
                        .style(&Style::fill(color))
                        .close();
                }
            }
            _ => {
                let marks = pts.iter().flatten().count() as f64;
                let area = std::f64::consts::PI * radius * radius;
                cost.add(marks * (SHAPE_COST + area));
                for (x, y) in pts.iter().flatten() {
                    w.tag("circle")
                        .num("cx", *x)
                        .num("cy", *y)
                        .num("r", radius)
                        .close();
                }
            }
        }
        w.end();
    }
    check_cost(
        cost,
        if kind == ChartKind::Line {
            "plot fewer points, sort each series by x (lines that jump back and forth across \
             the chart are costly to draw), or use kind \"scatter\""
        } else {
            "plot fewer points"
        },
    )?;
    let swatch = if kind == ChartKind::Line {
        Swatch::Line
    } else {
        Swatch::Dot
    };
    draw_legend(w, &legend, swatch, f.right + 16.0, &f, lw);
    decor.draw(w, &f);
    Ok(format!(
        "{} chart{}: {}, {}",
        kind.name(),
        title_part(decor.opts),
        plural(series.len(), "series", "series"),
        plural(total, "point", "points")
    ))
}

/// How bar category labels are set.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BarLabels {
    rotated: bool,
    /// Label every `every`-th bar.
    every: usize,
    /// Pixel budget for one label's text.
    max_w: f64,
}

/// Longest rotated category label, in pixels (also at most 30% of the
/// chart height).
const ROTATED_MAX_W: f64 = 140.0;
/// Bars at least this wide keep horizontal (truncated) labels.
const HORIZONTAL_MIN_BAND: f64 = 80.0;

fn bar_label_layout(labels: &[String], band: f64, height: f64) -> BarLabels {
    let widest = labels
        .iter()
        .map(|l| text_width(l, TICK_FONT, false))
        .fold(0.0, f64::max);
    if widest <= band - 4.0 || band >= HORIZONTAL_MIN_BAND {
        return BarLabels {
            rotated: false,
            every: 1,
            max_w: band - 4.0,
        };
    }
    // Rotated by 45°, neighbouring labels are band/√2 apart.
    let pitch = band / std::f64::consts::SQRT_2;
    let every = ((TICK_FONT + 2.0) / pitch.max(0.01)).ceil().max(1.0);
    BarLabels {
        rotated: true,
        every: if every.is_finite() && every < labels.len() as f64 {
            every as usize
        } else {
            labels.len().max(1)
        },
        max_w: widest.min(ROTATED_MAX_W).min(height * 0.3),
    }
}

fn bar_label_height(l: &BarLabels, labels: &[String]) -> f64 {
    if !l.rotated {
        return TICK_FONT;
    }
    let widest = labels
        .iter()
        .map(|s| text_width(s, TICK_FONT, false))
        .fold(0.0, f64::max)
        .min(l.max_w);
    (widest + TICK_FONT) * std::f64::consts::FRAC_1_SQRT_2
}

fn draw_bars(
    w: &mut SvgWriter,
    decor: &Decor<'_>,
    cost: &mut DrawCost,
    bars: &[(String, f64)],
) -> Result<String, VizError> {
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let (lo, hi) = min_max(bars.iter().map(|(_, v)| *v)).unwrap_or((0.0, 1.0));
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let top = decor.top();
    let n = bars.len().max(1) as f64;
    // Two passes: the label layout depends on the bar width, which depends
    // on the y-axis labels, which depend on the plot height.
    let mut bottom = (decor.height - decor.bottom_base()).max(top + 10.0);
    let mut layout = None;
    for _ in 0..2 {
        let y_axis = make_axis(lo, hi, y_target(bottom - top), false, false)?;
        let (mut left, right) = horizontal_layout(decor, &y_axis, PAD + 8.0);
        let mut band = (right - left) / n;
        let bl = bar_label_layout(&labels, band, decor.height);
        if bl.rotated {
            // The first label, rotated, reaches left of its bar: keep it on
            // the canvas.
            let first = labels
                .first()
                .map(|l| text_width(l, TICK_FONT, false).min(bl.max_w))
                .unwrap_or(0.0);
            let reach = first * std::f64::consts::FRAC_1_SQRT_2 + 4.0 - band / 2.0;
            if reach > left {
                left = reach.min(decor.width * 0.45);
                band = ((right - left) / n).max(0.0);
            }
        }
        let extra = bar_label_height(&bl, &labels) - TICK_FONT;
        let new_bottom = (decor.height - decor.bottom_base() - extra).max(top + 10.0);
        layout = Some((y_axis, left, right, band, bl));
        if (new_bottom - bottom).abs() < 0.5 {
            break;
        }
        bottom = new_bottom;
    }
    let Some((y_axis, left, right, band, bl)) = layout else {
        return Err(data_err("no bars to draw".into()));
    };
    let f = Frame {
        left,
        top,
        right,
        bottom,
    };
    draw_y_axis(w, &y_axis, &f);
    let y0 = y_axis.map(0.0, f.bottom, f.top);
    w.tag("g").attr("class", "bars").open();
    for (i, (label, v)) in bars.iter().enumerate() {
        let x = f.left + band * (i as f64 + 0.1);
        let yv = y_axis.map(*v, f.bottom, f.top);
        cost.add(SHAPE_COST + band * 0.8 * (yv - y0).abs());
        w.tag("rect")
            .attr("class", "bar")
            .attr("data-label", label)
            .num("x", x)
            .num("y", yv.min(y0))
            .num("width", band * 0.8)
            .num("height", (yv - y0).abs())
            .style(&Style::fill(PALETTE[0]))
            .close();
    }
    w.end();
    check_cost(cost, "plot fewer bars")?;
    w.tag("g").attr("class", "x-ticks").open();
    for (i, label) in labels.iter().enumerate() {
        if i % bl.every != 0 {
            continue;
        }
        let cx = f.left + band * (i as f64 + 0.5);
        vline(w, "tick", cx, f.bottom, f.bottom + TICK_LEN, AXIS);
        let t = fit_text(label, TICK_FONT, false, bl.max_w);
        if bl.rotated {
            let (x, y) = (cx + TICK_FONT * 0.3, f.bottom + TICK_LEN + 4.0);
            w.tag("text")
                .attr("class", "tick-label")
                .num("x", x)
                .num("y", y)
                .num("font-size", TICK_FONT)
                .attr("text-anchor", "end")
                .attr("fill", &TEXT_TICK.hex())
                .attr("transform", &format!("rotate(-45 {} {})", num(x), num(y)))
                .text(&t);
        } else {
            text(
                w,
                "tick-label",
                (cx, f.bottom + TICK_LEN + 3.0 + TICK_FONT * 0.8),
                &t,
                TICK_FONT,
                "middle",
                TEXT_TICK,
            );
        }
    }
    w.end();
    draw_frame_lines(w, &y_axis, &f);
    decor.draw(w, &f);
    Ok(format!(
        "bar chart{}: {}",
        title_part(decor.opts),
        plural(bars.len(), "bar", "bars")
    ))
}

/// Bin counts of `values` over `bins` equal bins from `lo` to `hi`.
fn bin_counts(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<usize> {
    let mut counts = vec![0usize; bins];
    let width = hi - lo;
    for v in values {
        let pos = ((v - lo) / width * bins as f64).floor();
        // pos is finite and >= 0 for lo <= v <= hi; clamp the top edge.
        let i = if pos <= 0.0 {
            0
        } else {
            (pos as usize).min(bins - 1)
        };
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
    }
    counts
}

fn draw_hist(
    w: &mut SvgWriter,
    decor: &Decor<'_>,
    cost: &mut DrawCost,
    series: &[(String, Vec<f64>)],
    bins: usize,
    legend_default: bool,
) -> Result<String, VizError> {
    let (mut lo, mut hi) =
        min_max(series.iter().flat_map(|(_, v)| v.iter().copied())).unwrap_or((0.0, 1.0));
    if !(hi - lo).is_finite() {
        return Err(data_err(format!(
            "values range from {lo} to {hi}, which is too wide to plot"
        )));
    }
    if hi - lo <= lo.abs().max(hi.abs()) * 1e-12 {
        lo -= 0.5;
        hi += 0.5;
    }
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|(_, v)| bin_counts(v, lo, hi, bins))
        .collect();
    let max_count = counts.iter().flatten().copied().max().unwrap_or(0).max(1);

    let legend = legend_entries(
        series.iter().map(|(n, _)| n.clone()),
        legend_default,
        decor.opts.legend,
    );
    let lw = legend_width(&legend, decor.width);
    let top = decor.top();
    let bottom = (decor.height - decor.bottom_base()).max(top + 10.0);
    let y_axis = make_axis(0.0, max_count as f64, y_target(bottom - top), false, true)?;
    let (left, right, x_axis) = numeric_x_layout(decor, &y_axis, lw, (lo, hi), true, false)?;
    let f = Frame {
        left,
        top,
        right,
        bottom,
    };
    draw_y_axis(w, &y_axis, &f);
    draw_x_axis(w, &x_axis, &f);
    let y0 = y_axis.map(0.0, f.bottom, f.top);
    let overlay = series.len() > 1;
    for (i, ((name, _), counts)) in series.iter().zip(&counts).enumerate() {
        let base = PALETTE[i % PALETTE.len()];
        let fill = if overlay {
            Color { a: 0.55, ..base }
        } else {
            base
        };
        w.tag("g")
            .attr("class", "series")
            .attr("data-name", name)
            .open();
        for (b, c) in counts.iter().enumerate() {
            let x0 = x_axis.map(lo + (hi - lo) * b as f64 / bins as f64, f.left, f.right);
            let x1 = x_axis.map(
                lo + (hi - lo) * (b + 1) as f64 / bins as f64,
                f.left,
                f.right,
            );
            let yc = y_axis.map(*c as f64, f.bottom, f.top);
            cost.add(SHAPE_COST + (x1 - x0).max(0.0) * (y0 - yc).max(0.0));
            w.tag("rect")
                .attr("class", "bar")
                .attr("data-count", &c.to_string())
                .num("x", x0)
                .num("y", yc)
                .num("width", (x1 - x0).max(0.0))
                .num("height", (y0 - yc).max(0.0))
                .style(&Style {
                    fill: Some(fill),
                    stroke: Some(Color::WHITE),
                    stroke_width: if x1 - x0 > 4.0 { 1.0 } else { 0.0 },
                })
                .close();
        }
        w.end();
    }
    check_cost(cost, "use fewer series or fewer bins")?;
    draw_frame_lines(w, &y_axis, &f);
    draw_legend(w, &legend, Swatch::Block, f.right + 16.0, &f, lw);
    decor.draw(w, &f);
    let values: usize = series.iter().map(|(_, v)| v.len()).sum();
    let series_part = if series.len() > 1 {
        format!("{}, ", plural(series.len(), "series", "series"))
    } else {
        String::new()
    };
    Ok(format!(
        "histogram{}: {series_part}{}, {}",
        title_part(decor.opts),
        plural(values, "value", "values"),
        plural(bins, "bin", "bins")
    ))
}

#[cfg(all(test, feature = "viz"))] // the tests read the rendered PNGs
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use resvg::tiny_skia::Pixmap;
    use resvg::usvg::roxmltree::{Document, Node};

    fn limits() -> VizLimits {
        VizLimits {
            max_canvas_side: 2000,
            max_points: 20_000,
            max_ops: 1000,
            max_text_bytes: 10_000,
            max_scene_items: 10_000,
            max_json_bytes: 1 << 20,
            max_draw_cost: 300_000_000,
        }
    }

    fn ok(data: &str, opts: &str) -> Rendered {
        plot(data, opts, &limits(), &mut Meter::unlimited()).unwrap()
    }

    fn err(data: &str, opts: &str) -> VizError {
        plot(data, opts, &limits(), &mut Meter::unlimited()).unwrap_err()
    }

    fn has_class(n: &Node<'_, '_>, class: &str) -> bool {
        n.attribute("class") == Some(class)
    }

    /// Count elements named `tag` (with `class`, if given).
    fn count(svg: &str, tag: &str, class: Option<&str>) -> usize {
        let doc = Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name(tag) && class.is_none_or(|c| has_class(n, c)))
            .count()
    }

    /// Texts of `<text>` elements inside a `<g class=group>` (or with
    /// class `group` themselves).
    fn texts(svg: &str, group: &str) -> Vec<String> {
        let doc = Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter(|n| has_class(n, group) || n.ancestors().any(|a| has_class(&a, group)))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    }

    fn attrs(svg: &str, tag: &str, class: &str, attr: &str) -> Vec<String> {
        let doc = Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name(tag) && has_class(n, class))
            .map(|n| n.attribute(attr).unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn array_of_numbers_is_a_line_over_the_index() {
        let r = ok("[3, 1, 4, 1, 5]", r#"{"title": "Pi digits"}"#);
        assert_eq!(count(&r.svg, "path", Some("series-line")), 1);
        assert_eq!(count(&r.svg, "circle", None), 0);
        assert_eq!(count(&r.svg, "g", Some("legend")), 0);
        assert_eq!(texts(&r.svg, "title"), ["Pi digits"]);
        let x = texts(&r.svg, "x-ticks");
        assert!(
            x.contains(&"0".to_string()) && x.contains(&"4".to_string()),
            "{x:?}"
        );
        assert!(
            x.iter().all(|t| !t.contains('.')),
            "index ticks are whole: {x:?}"
        );
        let y = texts(&r.svg, "y-ticks");
        assert!(
            y.contains(&"1".to_string()) && y.contains(&"5".to_string()),
            "{y:?}"
        );
        assert_eq!(r.summary, "line chart \"Pi digits\": 1 series, 5 points");
        assert_eq!((r.width, r.height), (640, 400));
    }

    #[test]
    fn pairs_and_point_objects_are_scatter() {
        let r = ok("[[0, 1], [1, 3], [2, 2], [3, 5]]", "");
        assert_eq!(count(&r.svg, "circle", None), 4);
        assert_eq!(count(&r.svg, "path", Some("series-line")), 0);
        assert_eq!(r.summary, "scatter chart: 1 series, 4 points");
        let r = ok(r#"[{"x": 0.5, "y": 1}, {"y": 2, "x": 1.5}]"#, "null");
        assert_eq!(count(&r.svg, "circle", None), 2);
        // Forced to a line.
        let r = ok("[[0, 1], [1, 3]]", r#"{"kind": "line"}"#);
        assert_eq!(count(&r.svg, "path", Some("series-line")), 1);
    }

    #[test]
    fn x_y_object_is_a_line() {
        let r = ok(r#"{"x": [0, 0.5, 1], "y": [2, 4, 3]}"#, "{}");
        assert_eq!(count(&r.svg, "path", Some("series-line")), 1);
        assert_eq!(count(&r.svg, "g", Some("legend")), 0);
        let x = texts(&r.svg, "x-ticks");
        assert!(
            x.contains(&"0.4".to_string()) && x.contains(&"1.0".to_string()),
            "{x:?}"
        );
        // Several series sharing x get a legend.
        let r = ok(
            r#"{"x": [1, 2, 3], "a": [1, 2, 3], "b": [3, 2, null]}"#,
            "{}",
        );
        assert_eq!(count(&r.svg, "path", Some("series-line")), 2);
        assert_eq!(texts(&r.svg, "legend"), ["a", "b"]);
    }

    #[test]
    fn named_series_get_a_legend_in_order() {
        let r = ok(
            r#"{"zeta": [1, 2, 3], "alpha": [3, 2, 1], "mid": [2, 2, 2]}"#,
            r#"{"title": "Three", "x_label": "step", "ylabel": "value"}"#,
        );
        assert_eq!(count(&r.svg, "path", Some("series-line")), 3);
        assert_eq!(count(&r.svg, "g", Some("legend-entry")), 3);
        assert_eq!(texts(&r.svg, "legend"), ["zeta", "alpha", "mid"]);
        assert_eq!(texts(&r.svg, "x-label"), ["step"]);
        assert_eq!(texts(&r.svg, "y-label"), ["value"]);
        // Distinct palette colours.
        let strokes = attrs(&r.svg, "path", "series-line", "stroke");
        assert_eq!(strokes, ["#4e79a7", "#f28e2b", "#e15759"]);
        assert_eq!(r.summary, "line chart \"Three\": 3 series, 9 points");
        // Series of pairs (and x/y objects) default to scatter.
        let r = ok(
            r#"{"a": [[0, 1], [1, 2]], "b": {"x": [5, 6, 7], "y": [1, 2, 3]}}"#,
            "",
        );
        assert_eq!(count(&r.svg, "circle", None), 5);
        assert_eq!(texts(&r.svg, "legend"), ["a", "b"]);
        // legend: false hides it; legend: true shows a single series.
        let r = ok(r#"{"a": [1, 2], "b": [2, 1]}"#, r#"{"legend": false}"#);
        assert_eq!(count(&r.svg, "g", Some("legend")), 0);
        let r = ok("[1, 2]", r#"{"legend": true}"#);
        assert_eq!(texts(&r.svg, "legend"), ["series 1"]);
    }

    #[test]
    fn object_of_numbers_is_a_bar_chart_with_labels() {
        let long = "A category label that is far too long to fit under its bar";
        let data = format!(r#"{{"Apples": 12, "Pears": -3.5, "{long}": 7}}"#);
        let r = ok(&data, r#"{"title": "Fruit"}"#);
        assert_eq!(count(&r.svg, "rect", Some("bar")), 3);
        let labels = texts(&r.svg, "x-ticks");
        assert_eq!(labels[..2], ["Apples", "Pears"]);
        assert!(
            labels[2].ends_with('…') && labels[2].len() < long.len(),
            "{labels:?}"
        );
        assert_eq!(
            attrs(&r.svg, "rect", "bar", "data-label")[2],
            long,
            "the full label is kept as data"
        );
        // The axis includes zero and the negative value.
        let y = texts(&r.svg, "y-ticks");
        assert!(
            y.contains(&"0".to_string()) && y.iter().any(|t| t.starts_with('-')),
            "{y:?}"
        );
        assert_eq!(r.summary, "bar chart \"Fruit\": 3 bars");
        // Plain numbers forced to bars get index labels.
        let r = ok("[5, 6, 7]", r#"{"kind": "bar"}"#);
        assert_eq!(texts(&r.svg, "x-ticks"), ["0", "1", "2"]);
    }

    #[test]
    fn many_bars_rotate_and_thin_their_labels() {
        let data: String = (0..200)
            .map(|i| format!("\"label number {i}\": {i}"))
            .collect::<Vec<_>>()
            .join(",");
        let r = ok(&format!("{{{data}}}"), "");
        assert_eq!(count(&r.svg, "rect", Some("bar")), 200);
        let labels = texts(&r.svg, "x-ticks");
        assert!(!labels.is_empty() && labels.len() < 200, "{}", labels.len());
        let doc = Document::parse(&r.svg).unwrap();
        let x_ticks = doc.descendants().find(|n| has_class(n, "x-ticks")).unwrap();
        let rotated: Vec<&str> = x_ticks
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.attribute("transform").unwrap_or(""))
            .collect();
        assert_eq!(rotated.len(), labels.len());
        assert!(
            rotated.iter().all(|t| t.starts_with("rotate(-45")),
            "{rotated:?}"
        );
    }

    #[test]
    fn histogram_bins() {
        let r = ok(
            "[1, 2, 2, 3, 3, 3, 4, 4, 4, 4]",
            r#"{"kind": "histogram", "bins": 4}"#,
        );
        let counts = attrs(&r.svg, "rect", "bar", "data-count");
        assert_eq!(counts, ["1", "2", "3", "4"]);
        assert_eq!(r.summary, "histogram: 10 values, 4 bins");
        // Default bins: Sturges, ceil(log2(10)) + 1 = 5; bins alone implies
        // a histogram.
        let r = ok("[1, 2, 2, 3, 3, 3, 4, 4, 4, 4]", r#"{"kind": "histogram"}"#);
        assert_eq!(count(&r.svg, "rect", Some("bar")), 5);
        let r = ok("[1, 2, 3]", r#"{"bins": 2}"#);
        assert_eq!(attrs(&r.svg, "rect", "bar", "data-count"), ["1", "2"]);
        // Nulls are skipped; one distinct value still works.
        let r = ok("[7, null, 7]", r#"{"bins": 3}"#);
        let counts = attrs(&r.svg, "rect", "bar", "data-count");
        assert_eq!(counts, ["0", "2", "0"]);
        // Several series share bins and get a legend.
        let r = ok(
            r#"{"a": [1, 2, 3, 4], "b": [3, 4, 5, 6]}"#,
            r#"{"kind": "histogram", "bins": 5}"#,
        );
        assert_eq!(count(&r.svg, "rect", Some("bar")), 10);
        assert_eq!(texts(&r.svg, "legend"), ["a", "b"]);
        assert_eq!(r.summary, "histogram: 2 series, 8 values, 5 bins");
    }

    #[test]
    fn sturges_rule() {
        assert_eq!(sturges(1), 1);
        assert_eq!(sturges(2), 2);
        assert_eq!(sturges(10), 5);
        assert_eq!(sturges(1000), 11);
        assert_eq!(sturges(1024), 11);
    }

    #[test]
    fn nice_ticks() {
        let a = make_axis(0.0, 9.3, 5, false, false).unwrap();
        assert_eq!(a.labels, ["0", "2", "4", "6", "8", "10"]);
        assert_eq!((a.lo, a.hi), (0.0, 10.0));
        let a = make_axis(-0.93, 0.3, 8, false, false).unwrap();
        assert_eq!(
            a.labels,
            ["-1.0", "-0.8", "-0.6", "-0.4", "-0.2", "0.0", "0.2", "0.4"]
        );
        let a = make_axis(0.0, 1234.0, 4, false, false).unwrap();
        assert_eq!(a.labels, ["0", "500", "1000", "1500"]);
        // All-equal values get a real range around them.
        let a = make_axis(5.0, 5.0, 5, false, false).unwrap();
        assert!(a.lo < 5.0 && a.hi > 5.0, "{a:?}");
        let a = make_axis(0.0, 0.0, 5, false, false).unwrap();
        assert!(a.lo < 0.0 && a.hi > 0.0, "{a:?}");
        assert!(a.labels.contains(&"0.0".to_string()), "{a:?}");
        // Large magnitudes use exponents.
        let a = make_axis(0.0, 3e9, 3, false, false).unwrap();
        assert_eq!(a.labels, ["0", "1e9", "2e9", "3e9"]);
        // Index axes never get fractional steps.
        let a = make_axis(0.0, 2.0, 10, false, true).unwrap();
        assert_eq!(a.labels, ["0", "1", "2"]);
        // Tight axes keep their range.
        let a = make_axis(0.3, 9.7, 5, true, false).unwrap();
        assert_eq!((a.lo, a.hi), (0.3, 9.7));
        assert_eq!(a.labels, ["2", "4", "6", "8"]);
        assert!(make_axis(-1e308, 1e308, 5, false, false).is_err());
    }

    #[test]
    fn single_point_and_equal_values() {
        let r = ok("[42]", "");
        // A lone point is marked so it is visible.
        assert_eq!(count(&r.svg, "circle", None), 1);
        let y = texts(&r.svg, "y-ticks");
        assert!(y.len() >= 2, "{y:?}");
        let r = ok("[[3, 3], [3, 3]]", "");
        assert_eq!(count(&r.svg, "circle", None), 2);
        assert!(texts(&r.svg, "x-ticks").len() >= 2);
    }

    #[test]
    fn null_is_a_gap() {
        let r = ok("[1, 2, null, 4, 5]", "");
        let d = &attrs(&r.svg, "path", "series-line", "d")[0];
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(r.summary, "line chart: 1 series, 5 points");
        let r = ok("[[0, 1], [1, null], [2, 3]]", "");
        assert_eq!(count(&r.svg, "circle", None), 2);
    }

    #[test]
    fn options_sizes_and_aliases() {
        let r = ok(
            "[1, 2]",
            r#"{"width": 300, "height": 200, "x-label": "t", "yLabel": "v"}"#,
        );
        assert_eq!((r.width, r.height), (300, 200));
        let doc = Document::parse(&r.svg).unwrap();
        assert_eq!(doc.root_element().attribute("width"), Some("300"));
        assert_eq!(texts(&r.svg, "x-label"), ["t"]);
        assert_eq!(texts(&r.svg, "y-label"), ["v"]);
        let pm = Pixmap::decode_png(&r.png).unwrap();
        assert_eq!((pm.width(), pm.height()), (300, 200));
        // Defaults shrink to a small max side.
        let small = VizLimits {
            max_canvas_side: 300,
            ..limits()
        };
        let r = plot("[1, 2]", "", &small, &mut Meter::unlimited()).unwrap();
        assert_eq!((r.width, r.height), (300, 300));
    }

    #[test]
    fn hostile_text_is_escaped() {
        let title = "</text><script>alert(1)</script> & \u{1} \"q\"";
        let opts = serde_json::json!({ "title": title }).to_string();
        let r = ok(r#"{"<b>": [1, 2], "&amp;": [2, 1]}"#, &opts);
        let t = texts(&r.svg, "title");
        assert_eq!(t, ["</text><script>alert(1)</script> & \u{FFFD} \"q\""]);
        assert_eq!(texts(&r.svg, "legend"), ["<b>", "&amp;"]);
        assert_eq!(count(&r.svg, "script", None), 0);
    }

    #[test]
    fn png_matches_the_chart() {
        let r = ok("[1, 5, 2, 8]", r#"{"title": "A clearly visible title"}"#);
        let pm = Pixmap::decode_png(&r.png).unwrap();
        assert_eq!((pm.width(), pm.height()), (640, 400));
        let px = |x: u32, y: u32| pm.pixel(x, y).unwrap();
        // White corner.
        let c = px(2, 2);
        assert_eq!((c.red(), c.green(), c.blue()), (255, 255, 255));
        // The bold title renders dark pixels around the top centre.
        let mut dark = 0;
        for y in 8..32 {
            for x in 200..440 {
                if px(x, y).red() < 100 {
                    dark += 1;
                }
            }
        }
        assert!(dark > 100, "title drew only {dark} dark pixels");
        // Somewhere the series colour (#4e79a7) is painted.
        let blue = pm
            .pixels()
            .iter()
            .filter(|p| (p.red(), p.green(), p.blue()) == (0x4e, 0x79, 0xa7))
            .count();
        assert!(blue > 50, "{blue}");
    }

    #[test]
    fn ten_thousand_points_render() {
        let ys: Vec<f64> = (0..10_000).map(|i| (f64::from(i) / 100.0).sin()).collect();
        let data = serde_json::to_string(&ys).unwrap();
        let r = ok(&data, r#"{"title": "10k"}"#);
        assert_eq!(count(&r.svg, "path", Some("series-line")), 1);
        assert_eq!(r.summary, "line chart \"10k\": 1 series, 10000 points");
        assert!(r.svg.len() < 200_000, "{}", r.svg.len());
        assert!(Pixmap::decode_png(&r.png).is_ok());
    }

    #[test]
    fn decimation_keeps_extremes() {
        // 1000 points over 10 pixel columns, with one spike.
        let run: Vec<(f64, f64)> = (0..1000)
            .map(|i| {
                let y = if i == 437 { -50.0 } else { f64::from(i % 7) };
                (f64::from(i) / 100.0, y)
            })
            .collect();
        let kept = decimate(&run);
        assert!(kept.len() <= 2 * 10 + 2, "{}", kept.len());
        assert_eq!(kept.first(), run.first());
        assert_eq!(kept.last(), run.last());
        assert!(kept.contains(&(4.37, -50.0)), "the spike survives");
        assert!(kept.iter().any(|p| p.1 == 6.0), "column maxima survive");
        // Unsorted runs are drawn as they are.
        let zigzag: Vec<Option<(f64, f64)>> = (0..100)
            .map(|i| Some((f64::from((i * 37) % 100), f64::from(i))))
            .collect();
        let (d, _, isolated) = line_path(&zigzag);
        assert_eq!(d.as_str().matches('L').count(), 99);
        assert!(isolated.is_empty());
        // Gaps split runs; a lone point is reported.
        let (d, len, isolated) =
            line_path(&[Some((0.0, 0.0)), Some((3.0, 4.0)), None, Some((9.0, 9.0))]);
        assert_eq!(d.as_str(), "M0 0L3 4M9 9");
        assert_eq!(len, 5.0);
        assert_eq!(isolated, [(9.0, 9.0)]);
    }

    #[test]
    fn dense_series_are_decimated() {
        let ys: Vec<f64> = (0..20_000)
            .map(|i| {
                if i == 12_345 {
                    100.0
                } else {
                    f64::from(i % 13)
                }
            })
            .collect();
        let r = ok(&serde_json::to_string(&ys).unwrap(), "");
        let d = &attrs(&r.svg, "path", "series-line", "d")[0];
        let vertices = d.matches(['M', 'L']).count();
        assert!(vertices < 2 * 640, "{vertices} vertices");
        assert!(texts(&r.svg, "y-ticks").contains(&"100".to_string()));
        assert_eq!(r.summary, "line chart: 1 series, 20000 points");
    }

    #[test]
    fn drawing_work_is_bounded() {
        let tight = VizLimits {
            max_draw_cost: 2_000_000,
            ..limits()
        };
        // 1000 points in x order draw cheaply; the same points in a
        // back-and-forth order do not.
        let sorted: Vec<[f64; 2]> = (0..1000)
            .map(|i| [f64::from(i), (f64::from(i) / 50.0).sin() * 100.0])
            .collect();
        let zigzag: Vec<[f64; 2]> = (0..1000)
            .map(|i| [f64::from((i * 37) % 1000), f64::from(i % 2) * 100.0])
            .collect();
        let line = r#"{"kind": "line"}"#;
        assert!(
            plot(
                &serde_json::to_string(&sorted).unwrap(),
                line,
                &tight,
                &mut Meter::unlimited()
            )
            .is_ok()
        );
        match plot(
            &serde_json::to_string(&zigzag).unwrap(),
            line,
            &tight,
            &mut Meter::unlimited(),
        ) {
            Err(VizError::TooLarge(m)) => {
                assert!(
                    m.contains("too long to draw") && m.contains("sort each series by x"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Many scatter marks.
        let tiny = VizLimits {
            max_draw_cost: 100_000,
            ..limits()
        };
        let e = plot(
            &serde_json::to_string(&sorted).unwrap(),
            "",
            &tiny,
            &mut Meter::unlimited(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, VizError::TooLarge(m) if m.contains("plot fewer points")),
            "{e:?}"
        );
        let many: String = (0..100)
            .map(|i| format!("\"s{i}\": [1, 2]"))
            .collect::<Vec<_>>()
            .join(",");
        let e = plot(
            &format!("{{{many}}}"),
            r#"{"kind": "histogram"}"#,
            &tiny,
            &mut Meter::unlimited(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, VizError::TooLarge(m) if m.contains("fewer series")),
            "{e:?}"
        );
    }

    fn assert_data_err(data: &str, needle: &str) {
        match err(data, "") {
            VizError::InvalidData(m) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
            other => panic!("{data}: {other:?}"),
        }
    }

    #[test]
    fn malformed_data_says_where() {
        assert_data_err(
            r#"[1, 2, 3, "abc"]"#,
            r#"data[3] is "abc", expected a number"#,
        );
        assert_data_err(
            r#"{"a": [1, 2], "b": [1, [2]]}"#,
            r#"data["b"][1] is an array of 1 element(s), expected a number"#,
        );
        assert_data_err(
            r#"{"x": [1, 2, 3, 4], "b": [1, 2, 3]}"#,
            r#"series "b" has 3 points but x has 4"#,
        );
        assert_data_err(
            r#"{"x": [1, null], "y": [1, 2]}"#,
            r#"data["x"][1] is null"#,
        );
        assert_data_err(
            "[[1, 2], [1, 2, 3]]",
            "data[1] has 3 elements, expected an [x, y] pair",
        );
        assert_data_err(
            r#"[[1, 2], [true, 2]]"#,
            "data[1] has x true, expected a number",
        );
        assert_data_err(
            r#"[{"x": 1, "y": 2, "z": 3}]"#,
            r#"data[0] has the key "z""#,
        );
        assert_data_err(r#"[{"x": 1}]"#, r#"data[0] has no "y""#);
        assert_data_err("[]", "data is empty");
        assert_data_err("{}", "data is an empty object");
        assert_data_err("[null, null]", "only nulls");
        assert_data_err("42", "data is 42: give an array of numbers");
        assert_data_err(
            r#"{"a": 1, "b": [1]}"#,
            r#"data["b"] is an array of 1 element(s), but data["a"] is a number"#,
        );
        assert_data_err(r#"{"a": [1], "b": 2}"#, r#"data["b"] is a number"#);
        assert_data_err(
            r#"{"a": 1, "b": null}"#,
            r#"data["b"] is null, expected a number"#,
        );
        assert_data_err(r#"{"a": 1, "a": 2}"#, r#"the key "a" twice"#);
        assert_data_err(r#"{"a": "x"}"#, r#"data["a"] is "x", expected an array"#);
        assert_data_err(
            r#"{"s": {"x": [1], "y": [1, 2]}}"#,
            r#"data["s"]["y"] has 2 values but data["s"]["x"] has 1"#,
        );
        assert_data_err("[1, 2", "data is not valid JSON");
        assert_data_err("[1e400]", "data is not valid JSON");
        assert_data_err("[-1e308, 1e308]", "too wide to plot");
        match err("[1, null]", r#"{"kind": "bar"}"#) {
            VizError::InvalidData(m) => assert!(m.contains("data[1] is null"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    fn assert_opt_err(opts: &str, needle: &str) {
        match err("[1, 2]", opts) {
            VizError::InvalidOptions(m) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
            other => panic!("{opts}: {other:?}"),
        }
    }

    #[test]
    fn bad_options() {
        assert_opt_err(
            r#"{"colour": "red"}"#,
            r#"unknown option "colour": valid options are kind, title"#,
        );
        assert_opt_err(
            r#"{"kind": "pie"}"#,
            r#"option kind is "pie", expected one of"#,
        );
        assert_opt_err(r#"{"title": 5}"#, "option title is 5, expected a string");
        assert_opt_err(
            r#"{"width": "big"}"#,
            "option width is \"big\", expected a whole number",
        );
        assert_opt_err(r#"{"width": 10.5}"#, "expected a whole number");
        assert_opt_err(r#"{"height": 20}"#, "height 20 is too small");
        assert_opt_err(r#"{"legend": "yes"}"#, "expected true or false");
        assert_opt_err(r#"{"bins": 0}"#, "at least 1 bin");
        assert_opt_err(
            r#"{"x_label": "a", "xlabel": "b"}"#,
            "option x_label is given twice",
        );
        assert_opt_err(
            r#"{"kind": "line", "bins": 3}"#,
            "bins only applies to histograms",
        );
        assert_opt_err("[1]", "options must be a JSON object");
        assert_opt_err("{", "options are not valid JSON");
        match err(r#"{"a": 1}"#, r#"{"kind": "line"}"#) {
            VizError::InvalidOptions(m) => assert!(m.contains("use \"bar\""), "{m}"),
            other => panic!("{other:?}"),
        }
        match err("[[1, 2]]", r#"{"kind": "histogram"}"#) {
            VizError::InvalidOptions(m) => assert!(m.contains("\"scatter\" or \"line\""), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn size_bounds() {
        let small = VizLimits {
            max_points: 10,
            max_json_bytes: 200,
            ..limits()
        };
        let too_many = serde_json::to_string(&[1; 11]).unwrap();
        let e = plot(&too_many, "", &small, &mut Meter::unlimited()).unwrap_err();
        assert!(
            matches!(&e, VizError::TooLarge(m) if m.contains("at most 10 points")),
            "{e:?}"
        );
        let e = plot(
            r#"{"a": [1, 2, 3, 4, 5, 6], "b": [1, 2, 3, 4, 5]}"#,
            "",
            &small,
            &mut Meter::unlimited(),
        )
        .unwrap_err();
        assert!(matches!(e, VizError::TooLarge(_)), "{e:?}");
        let e = plot(&"1,".repeat(150), "", &small, &mut Meter::unlimited()).unwrap_err();
        assert!(
            matches!(&e, VizError::TooLarge(m) if m.contains("at most 200 bytes")),
            "{e:?}"
        );
        let e = plot("[1]", r#"{"width": 5000}"#, &small, &mut Meter::unlimited()).unwrap_err();
        assert!(
            matches!(&e, VizError::TooLarge(m) if m.contains("width 5000 is too large: a chart is at most 2000x2000")),
            "{e:?}"
        );
        let e = plot(
            "[1]",
            r#"{"kind": "histogram", "bins": 11}"#,
            &small,
            &mut Meter::unlimited(),
        )
        .unwrap_err();
        assert!(matches!(e, VizError::TooLarge(_)), "{e:?}");
        // Parsing stops at 4 JSON values per allowed point (+64), so a flood
        // of tiny values cannot take memory before the point count is seen.
        let roomy = VizLimits {
            max_points: 10,
            ..limits()
        };
        let flood = format!("[[{}0]]", "0,".repeat(200));
        let e = plot(&flood, "", &roomy, &mut Meter::unlimited()).unwrap_err();
        assert!(
            matches!(&e, VizError::TooLarge(m) if m.contains("more than 104 JSON values")),
            "{e:?}"
        );
        let opts = format!(r#"{{"title": [{}0]}}"#, "0,".repeat(100));
        let e = plot("[1]", &opts, &roomy, &mut Meter::unlimited()).unwrap_err();
        assert!(
            matches!(&e, VizError::InvalidOptions(m) if m.contains("more than 64 JSON values")),
            "{e:?}"
        );
    }
}

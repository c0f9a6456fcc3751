//! 3D scene validation: the guest's scene JSON is checked completely and
//! rewritten in a normalized form for the dashboard's viewer.
//!
//! Accepted document (every key is checked; unknown keys are errors):
//!
//! ```json
//! {
//!   "camera": {"position": [x, y, z], "target": [x, y, z],
//!              "up": [0, 1, 0], "fov": 60},
//!   "background": "#ffffff",
//!   "objects": [
//!     {"type": "mesh", "vertices": [[x, y, z], ...], "faces": [[i, j, k], ...],
//!      "color": "...", "wireframe": false},
//!     {"type": "points", "points": [[x, y, z], ...], "color": "...", "size": 4},
//!     {"type": "lines", "points": [[x, y, z], ...], "color": "...", "closed": false}
//!   ]
//! }
//! ```
//!
//! - Coordinates are numbers within ±1e30 (so they stay finite as the
//!   32-bit floats a GPU viewer uses). `fov` is the vertical field of view
//!   in degrees, strictly between 0 and 180 (default 60). `up` defaults to
//!   `[0, 1, 0]` and must not be zero or parallel to the view direction;
//!   `position` and `target` must differ.
//! - Faces are triangles of vertex indices (whole numbers, in range). A mesh
//!   needs at least one vertex and one face, a point cloud at least one
//!   point, a line strip at least two points.
//! - Colours use the strict CSS syntax of `color.rs`; defaults are the
//!   chart palette in object order (background: white). `size` is the point
//!   size in pixels, more than 0 and at most 100 (default 4).
//! - Items (objects + vertices + faces + points) are counted against
//!   `max_scene_items` before each array is read; the document itself
//!   against `max_json_bytes`, and while parsing against 8 JSON values per
//!   item (which bounds memory to roughly 250 bytes per item).
//!
//! Errors name the JSON path (`objects[2].faces[7][1]`). All validation
//! failures are `InvalidData`, except size bounds (`TooLarge`).
//!
//! The normalized JSON has every default filled in, keys in a fixed order
//! (`camera`, `background`, `objects`; per object `type` first) and colours
//! as `#rrggbb` or `#rrggbbaa`.

use super::chart::PALETTE;
use super::color::parse_color;
use super::types::{
    JVal, ParseError, VizError, VizLimits, duplicate_key, parse_json, quote_for_message,
};
use crate::meter::{Meter, cost};

/// Largest accepted coordinate magnitude.
const MAX_COORD: f64 = 1e30;
const DEFAULT_FOV: f64 = 60.0;
const DEFAULT_POINT_SIZE: f64 = 4.0;
const MAX_POINT_SIZE: f64 = 100.0;

fn data_err(msg: String) -> VizError {
    VizError::InvalidData(msg)
}

/// Validate `scene_json` and return `(normalized JSON, summary)`.
///
/// Host budgets (`meter`): the JSON is paid for per byte before it is
/// parsed, the parsed tree is reserved in the run's host memory while it
/// lives (about [`PARSE_BYTES_PER_BYTE`] per byte of JSON), and the deadline
/// is checked between objects.
pub fn validate_scene(
    scene_json: &str,
    limits: &VizLimits,
    meter: &mut Meter,
) -> Result<(String, String), VizError> {
    let len = scene_json.len() as u64;
    meter.charge(cost::CALL.saturating_add(len.saturating_mul(cost::PER_BYTE)))?;
    let transient = len.saturating_mul(PARSE_BYTES_PER_BYTE);
    meter.reserve(transient)?;
    let r = validate_scene_inner(scene_json, limits, meter);
    meter.release(transient);
    r
}

/// Host bytes a parsed JSON tree and its normalized copy take per byte of
/// JSON, at most (a value of a few bytes of text is a 32-byte node).
pub const PARSE_BYTES_PER_BYTE: u64 = 8;

fn validate_scene_inner(
    scene_json: &str,
    limits: &VizLimits,
    meter: &mut Meter,
) -> Result<(String, String), VizError> {
    // An item takes 4 JSON values ([x, y, z] or [i, j, k]); the slack
    // covers each object's own fields.
    let max_values = limits.max_scene_items.saturating_mul(8).saturating_add(64);
    let doc = parse_json(scene_json, limits.max_json_bytes, max_values).map_err(|e| match e {
        ParseError::TooLarge(n, max) => VizError::TooLarge(format!(
            "the scene is {n} bytes of JSON: at most {max} bytes are accepted"
        )),
        ParseError::TooManyValues(n) => VizError::TooLarge(format!(
            "the scene holds more than {n} JSON values: at most {} items (objects + vertices + \
             faces + points) are accepted",
            limits.max_scene_items
        )),
        ParseError::Syntax(m) => data_err(format!("the scene is not valid JSON: {m}")),
    })?;
    let root = object("scene", &doc, &["camera", "background", "objects"])?;
    let mut v = Validator {
        out: Vec::with_capacity(scene_json.len()),
        items: 0,
        max_items: limits.max_scene_items,
        meshes: 0,
        faces: 0,
        clouds: 0,
        cloud_points: 0,
        strips: 0,
        strip_points: 0,
    };
    v.raw("{\"camera\":");
    let camera = required(&root, "scene", "camera")?;
    v.camera(camera)?;
    v.raw(",\"background\":");
    match field(&root, "background") {
        Some(c) => v.color("background", c)?,
        None => v.string("#ffffff"),
    }
    v.raw(",\"objects\":[");
    let objects = required(&root, "scene", "objects")?;
    let JVal::Arr(objects) = objects else {
        return Err(data_err(format!(
            "objects is {}, expected an array of objects (mesh, points or lines)",
            objects.describe()
        )));
    };
    v.count("objects", objects.len())?;
    for (i, o) in objects.iter().enumerate() {
        meter.check_time()?;
        if i > 0 {
            v.raw(",");
        }
        v.object(i, o)?;
    }
    v.raw("]}");
    let summary = v.summary();
    let out = String::from_utf8(v.out)
        .map_err(|_| data_err("internal error: normalized scene is not UTF-8".into()))?;
    Ok((out, summary))
}

/// The entries of object `v` at `path`, checking for unknown and
/// duplicate keys.
fn object<'a>(
    path: &str,
    v: &'a JVal,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a JVal)>, VizError> {
    let JVal::Obj(entries) = v else {
        return Err(data_err(format!(
            "{path} is {}, expected an object",
            v.describe()
        )));
    };
    if let Some(k) = duplicate_key(entries) {
        return Err(data_err(format!(
            "{path} has the key {} twice",
            quote_for_message(k)
        )));
    }
    if let Some((k, _)) = entries.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(data_err(format!(
            "{path}.{} is not a known key: {path} takes {}",
            clip_key(k),
            allowed.join(", ")
        )));
    }
    Ok(entries.iter().map(|(k, v)| (k.as_str(), v)).collect())
}

/// A key for a path: verbatim if it is a plain identifier, quoted otherwise.
fn clip_key(k: &str) -> String {
    if !k.is_empty() && k.len() <= 40 && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        k.to_string()
    } else {
        quote_for_message(k)
    }
}

fn field<'a>(entries: &[(&str, &'a JVal)], key: &str) -> Option<&'a JVal> {
    entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn required<'a>(entries: &[(&str, &'a JVal)], path: &str, key: &str) -> Result<&'a JVal, VizError> {
    field(entries, key)
        .ok_or_else(|| data_err(format!("{path} has no \"{key}\", which is required")))
}

fn number(path: &str, v: &JVal) -> Result<f64, VizError> {
    match v {
        JVal::Num(n) if n.abs() <= MAX_COORD => Ok(*n),
        JVal::Num(n) => Err(data_err(format!(
            "{path} is {n}: numbers must be between -1e30 and 1e30"
        ))),
        other => Err(data_err(format!(
            "{path} is {}, expected a number",
            other.describe()
        ))),
    }
}

fn vec3(path: &str, v: &JVal) -> Result<[f64; 3], VizError> {
    match v {
        JVal::Arr(a) => match a.as_slice() {
            [x, y, z] => Ok([
                number(&format!("{path}[0]"), x)?,
                number(&format!("{path}[1]"), y)?,
                number(&format!("{path}[2]"), z)?,
            ]),
            _ => Err(data_err(format!(
                "{path} has {} elements, expected [x, y, z]",
                a.len()
            ))),
        },
        other => Err(data_err(format!(
            "{path} is {}, expected [x, y, z]",
            other.describe()
        ))),
    }
}

fn boolean(path: &str, v: Option<&JVal>) -> Result<bool, VizError> {
    match v {
        None => Ok(false),
        Some(JVal::Bool(b)) => Ok(*b),
        Some(other) => Err(data_err(format!(
            "{path} is {}, expected true or false",
            other.describe()
        ))),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Streams the normalized JSON while validating, and keeps the counts.
struct Validator {
    out: Vec<u8>,
    items: usize,
    max_items: usize,
    meshes: usize,
    faces: usize,
    clouds: usize,
    cloud_points: usize,
    strips: usize,
    strip_points: usize,
}

impl Validator {
    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn num(&mut self, v: f64) {
        // Finite (validated), so serde_json writes a plain JSON number.
        let _ = serde_json::to_writer(&mut self.out, &v);
    }

    fn string(&mut self, s: &str) {
        let _ = serde_json::to_writer(&mut self.out, s);
    }

    fn vec3(&mut self, v: [f64; 3]) {
        self.raw("[");
        self.num(v[0]);
        self.raw(",");
        self.num(v[1]);
        self.raw(",");
        self.num(v[2]);
        self.raw("]");
    }

    fn count(&mut self, what: &str, n: usize) -> Result<(), VizError> {
        self.items = self.items.saturating_add(n);
        if self.items > self.max_items {
            return Err(VizError::TooLarge(format!(
                "the scene has more than {} items (objects + vertices + faces + points), \
                 counting {what}: at most {} are accepted",
                self.max_items, self.max_items
            )));
        }
        Ok(())
    }

    fn color(&mut self, path: &str, v: &JVal) -> Result<(), VizError> {
        let JVal::Str(s) = v else {
            return Err(data_err(format!(
                "{path} is {}, expected a colour string such as \"#ff8800\"",
                v.describe()
            )));
        };
        let c = parse_color(s).map_err(|m| data_err(format!("{path}: {m}")))?;
        self.string(&c.canonical());
        Ok(())
    }

    fn camera(&mut self, v: &JVal) -> Result<(), VizError> {
        let cam = object("camera", v, &["position", "target", "up", "fov"])?;
        let position = vec3("camera.position", required(&cam, "camera", "position")?)?;
        let target = vec3("camera.target", required(&cam, "camera", "target")?)?;
        let up = match field(&cam, "up") {
            Some(u) => vec3("camera.up", u)?,
            None => [0.0, 1.0, 0.0],
        };
        let fov = match field(&cam, "fov") {
            Some(f) => {
                let f = number("camera.fov", f)?;
                if !(f > 0.0 && f < 180.0) {
                    return Err(data_err(format!(
                        "camera.fov is {f}: the field of view must be more than 0 and less \
                         than 180 degrees"
                    )));
                }
                f
            }
            None => DEFAULT_FOV,
        };
        let dir = [
            target[0] - position[0],
            target[1] - position[1],
            target[2] - position[2],
        ];
        let len2 = |v: [f64; 3]| v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        let is_zero = |v: [f64; 3]| v.iter().all(|c| *c == 0.0);
        if is_zero(dir) {
            return Err(data_err(
                "camera.position and camera.target are the same point: the camera needs a \
                 direction to look in"
                    .into(),
            ));
        }
        if is_zero(up) {
            return Err(data_err(
                "camera.up is [0, 0, 0]: give a direction such as [0, 1, 0]".into(),
            ));
        }
        // Normalize before the cross product so nothing overflows.
        let unit = |v: [f64; 3]| {
            let m = v[0].abs().max(v[1].abs()).max(v[2].abs());
            let s = [v[0] / m, v[1] / m, v[2] / m];
            let l = len2(s).sqrt();
            [s[0] / l, s[1] / l, s[2] / l]
        };
        let (d, u) = (unit(dir), unit(up));
        let cross = [
            d[1] * u[2] - d[2] * u[1],
            d[2] * u[0] - d[0] * u[2],
            d[0] * u[1] - d[1] * u[0],
        ];
        if len2(cross) < 1e-12 {
            return Err(data_err(
                "camera.up is parallel to the view direction (target - position): give an up \
                 direction across it, e.g. [0, 1, 0] when looking along z"
                    .into(),
            ));
        }
        self.raw("{\"position\":");
        self.vec3(position);
        self.raw(",\"target\":");
        self.vec3(target);
        self.raw(",\"up\":");
        self.vec3(up);
        self.raw(",\"fov\":");
        self.num(fov);
        self.raw("}");
        Ok(())
    }

    /// An array of at least `min` [x, y, z] points, written out.
    fn points(&mut self, path: &str, v: &JVal, min: usize, what: &str) -> Result<usize, VizError> {
        let JVal::Arr(items) = v else {
            return Err(data_err(format!(
                "{path} is {}, expected an array of [x, y, z] points",
                v.describe()
            )));
        };
        if items.len() < min {
            return Err(data_err(format!(
                "{path} has {} element(s): {what} needs at least {min}",
                items.len()
            )));
        }
        self.count(path, items.len())?;
        self.raw("[");
        for (i, p) in items.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            let p = vec3(&format!("{path}[{i}]"), p)?;
            self.vec3(p);
        }
        self.raw("]");
        Ok(items.len())
    }

    fn object(&mut self, i: usize, v: &JVal) -> Result<(), VizError> {
        let path = format!("objects[{i}]");
        let kind = match v {
            JVal::Obj(entries) => match entries.iter().find(|(k, _)| k == "type") {
                Some((_, JVal::Str(t))) => t.as_str(),
                Some((_, other)) => {
                    return Err(data_err(format!(
                        "{path}.type is {}, expected \"mesh\", \"points\" or \"lines\"",
                        other.describe()
                    )));
                }
                None => {
                    return Err(data_err(format!(
                        "{path} has no \"type\": give \"mesh\", \"points\" or \"lines\""
                    )));
                }
            },
            other => {
                return Err(data_err(format!(
                    "{path} is {}, expected an object with a \"type\"",
                    other.describe()
                )));
            }
        };
        let default_color = PALETTE[i % PALETTE.len()].canonical();
        match kind {
            "mesh" => {
                let o = object(
                    &path,
                    v,
                    &["type", "vertices", "faces", "color", "wireframe"],
                )?;
                self.raw("{\"type\":\"mesh\",\"vertices\":");
                let vpath = format!("{path}.vertices");
                let n = self.points(&vpath, required(&o, &path, "vertices")?, 1, "a mesh")?;
                self.raw(",\"faces\":");
                let faces = self.faces(&path, required(&o, &path, "faces")?, n)?;
                self.raw(",\"color\":");
                match field(&o, "color") {
                    Some(c) => self.color(&format!("{path}.color"), c)?,
                    None => self.string(&default_color),
                }
                let wire = boolean(&format!("{path}.wireframe"), field(&o, "wireframe"))?;
                self.raw(if wire {
                    ",\"wireframe\":true}"
                } else {
                    ",\"wireframe\":false}"
                });
                self.meshes += 1;
                self.faces += faces;
            }
            "points" => {
                let o = object(&path, v, &["type", "points", "color", "size"])?;
                self.raw("{\"type\":\"points\",\"points\":");
                let ppath = format!("{path}.points");
                let n = self.points(&ppath, required(&o, &path, "points")?, 1, "a point cloud")?;
                self.raw(",\"color\":");
                match field(&o, "color") {
                    Some(c) => self.color(&format!("{path}.color"), c)?,
                    None => self.string(&default_color),
                }
                let size = match field(&o, "size") {
                    Some(s) => {
                        let s = number(&format!("{path}.size"), s)?;
                        if !(s > 0.0 && s <= MAX_POINT_SIZE) {
                            return Err(data_err(format!(
                                "{path}.size is {s}: the point size must be more than 0 and at \
                                 most {MAX_POINT_SIZE} pixels"
                            )));
                        }
                        s
                    }
                    None => DEFAULT_POINT_SIZE,
                };
                self.raw(",\"size\":");
                self.num(size);
                self.raw("}");
                self.clouds += 1;
                self.cloud_points += n;
            }
            "lines" => {
                let o = object(&path, v, &["type", "points", "color", "closed"])?;
                self.raw("{\"type\":\"lines\",\"points\":");
                let ppath = format!("{path}.points");
                let n = self.points(&ppath, required(&o, &path, "points")?, 2, "a line strip")?;
                self.raw(",\"color\":");
                match field(&o, "color") {
                    Some(c) => self.color(&format!("{path}.color"), c)?,
                    None => self.string(&default_color),
                }
                let closed = boolean(&format!("{path}.closed"), field(&o, "closed"))?;
                self.raw(if closed {
                    ",\"closed\":true}"
                } else {
                    ",\"closed\":false}"
                });
                self.strips += 1;
                self.strip_points += n;
            }
            other => {
                return Err(data_err(format!(
                    "{path}.type is {}, expected \"mesh\", \"points\" or \"lines\"",
                    quote_for_message(other)
                )));
            }
        }
        Ok(())
    }

    /// Triangles of in-range vertex indices, written out; returns the count.
    fn faces(&mut self, path: &str, v: &JVal, vertices: usize) -> Result<usize, VizError> {
        let fpath = format!("{path}.faces");
        let JVal::Arr(faces) = v else {
            return Err(data_err(format!(
                "{fpath} is {}, expected an array of [i, j, k] vertex indices",
                v.describe()
            )));
        };
        if faces.is_empty() {
            return Err(data_err(format!(
                "{fpath} is empty: a mesh needs at least one [i, j, k] triangle"
            )));
        }
        self.count(&fpath, faces.len())?;
        self.raw("[");
        for (fi, face) in faces.iter().enumerate() {
            let here = format!("{fpath}[{fi}]");
            let JVal::Arr(idx) = face else {
                return Err(data_err(format!(
                    "{here} is {}, expected [i, j, k] vertex indices",
                    face.describe()
                )));
            };
            if idx.len() != 3 {
                return Err(data_err(format!(
                    "{here} has {} indices: faces are triangles, [i, j, k]",
                    idx.len()
                )));
            }
            if fi > 0 {
                self.raw(",");
            }
            self.raw("[");
            for (k, iv) in idx.iter().enumerate() {
                let n = match iv {
                    JVal::Num(n) if n.fract() == 0.0 && *n >= 0.0 => *n,
                    other => {
                        return Err(data_err(format!(
                            "{here}[{k}] is {}, expected a vertex index (a whole number from 0)",
                            other.describe()
                        )));
                    }
                };
                if n >= vertices as f64 {
                    return Err(data_err(format!(
                        "{here}[{k}] is {n}, but the mesh has {vertices} vertices (indices 0 to {})",
                        vertices.saturating_sub(1)
                    )));
                }
                if k > 0 {
                    self.raw(",");
                }
                // 0 <= n < vertices, a whole number: the cast is exact.
                let n = n as u64;
                let _ = serde_json::to_writer(&mut self.out, &n);
            }
            self.raw("]");
        }
        self.raw("]");
        Ok(faces.len())
    }

    fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.meshes > 0 {
            parts.push(format!(
                "{} ({})",
                plural(self.meshes, "mesh", "meshes"),
                plural(self.faces, "face", "faces")
            ));
        }
        if self.clouds > 0 {
            parts.push(format!(
                "{} ({})",
                plural(self.clouds, "point cloud", "point clouds"),
                plural(self.cloud_points, "point", "points")
            ));
        }
        if self.strips > 0 {
            parts.push(format!(
                "{} ({})",
                plural(self.strips, "line strip", "line strips"),
                plural(self.strip_points, "point", "points")
            ));
        }
        if parts.is_empty() {
            "3D scene: no objects".into()
        } else {
            format!("3D scene: {}", parts.join(", "))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits() -> VizLimits {
        VizLimits {
            max_canvas_side: 2000,
            max_points: 100,
            max_ops: 100,
            max_text_bytes: 100,
            max_scene_items: 20,
            max_json_bytes: 4000,
            max_draw_cost: 1000,
        }
    }

    const CAMERA: &str = r#""camera": {"position": [0, 0, 5], "target": [0, 0, 0]}"#;

    fn scene(objects: &str) -> String {
        format!(r#"{{{CAMERA}, "objects": [{objects}]}}"#)
    }

    fn data_err(json: &str) -> String {
        match validate_scene(json, &limits(), &mut Meter::unlimited()) {
            Err(VizError::InvalidData(m)) => m,
            other => panic!("expected InvalidData for {json}, got {other:?}"),
        }
    }

    #[test]
    fn normalizes_with_defaults() {
        let json = r#"{
            "camera": {"position": [1, 2, 3], "target": [0, 0, 0], "fov": 45},
            "background": "black",
            "objects": [
                {"type": "mesh", "vertices": [[0,0,0],[1,0,0],[0,1,0],[0,0,1]],
                 "faces": [[0,1,2],[0,1,3]], "wireframe": true},
                {"type": "points", "points": [[0.5, 0.5, 0.5]], "color": "rgba(255,0,0,0.5)", "size": 2},
                {"color": "Teal", "points": [[0,0,0],[1,1,1],[2,0,2]], "type": "lines", "closed": true}
            ]
        }"#;
        let (out, summary) = validate_scene(json, &limits(), &mut Meter::unlimited()).unwrap();
        assert_eq!(
            summary,
            "3D scene: 1 mesh (2 faces), 1 point cloud (1 point), 1 line strip (3 points)"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "camera": {"position": [1.0, 2.0, 3.0], "target": [0.0, 0.0, 0.0],
                           "up": [0.0, 1.0, 0.0], "fov": 45.0},
                "background": "#000000",
                "objects": [
                    {"type": "mesh", "vertices": [[0.0,0.0,0.0],[1.0,0.0,0.0],[0.0,1.0,0.0],[0.0,0.0,1.0]],
                     "faces": [[0,1,2],[0,1,3]], "color": "#4e79a7", "wireframe": true},
                    {"type": "points", "points": [[0.5,0.5,0.5]], "color": "#ff000080", "size": 2.0},
                    {"type": "lines", "points": [[0.0,0.0,0.0],[1.0,1.0,1.0],[2.0,0.0,2.0]],
                     "color": "#008080", "closed": true}
                ]
            })
        );
        // Key order is fixed: camera, background, objects.
        assert!(out.starts_with("{\"camera\":{\"position\":"), "{out}");

        let (out, summary) =
            validate_scene(&scene(""), &limits(), &mut Meter::unlimited()).unwrap();
        assert_eq!(summary, "3D scene: no objects");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["background"], "#ffffff");
        assert_eq!(v["camera"]["fov"], 60.0);
        let two = scene(
            r#"{"type":"mesh","vertices":[[0,0,0],[1,0,0],[0,1,0]],"faces":[[0,1,2]]},
               {"type":"mesh","vertices":[[0,0,0],[1,0,0],[0,1,0]],"faces":[[2,1,0]]}"#,
        );
        let (out, summary) = validate_scene(&two, &limits(), &mut Meter::unlimited()).unwrap();
        assert_eq!(summary, "3D scene: 2 meshes (2 faces)");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["objects"][1]["color"], "#f28e2b",
            "palette by object index"
        );
    }

    #[test]
    fn errors_name_the_path() {
        let tri = r#""vertices": [[0,0,0],[1,0,0],[0,1,0]], "faces": [[0,1,2]]"#;
        let m = data_err(&scene(&format!(
            r#"{{"type":"points","points":[[0,0,0]]}}, {{"type":"points","points":[[0,0,0]]}},
               {{"type":"mesh", {tri}, "vertex": []}}"#
        )));
        assert!(m.starts_with("objects[2].vertex is not a known key"), "{m}");
        assert!(m.contains("type, vertices, faces, color, wireframe"), "{m}");
        let m = data_err(&scene(
            r#"{"type":"mesh","vertices":[[0,0,0],[1,0,0]],"faces":[[0,1,2]]}"#,
        ));
        assert!(
            m.contains("objects[0].faces[0][2] is 2, but the mesh has 2 vertices (indices 0 to 1)"),
            "{m}"
        );
        let m = data_err(&scene(
            r#"{"type":"mesh","vertices":[[0,0,0]],"faces":[[0,0,-1]]}"#,
        ));
        assert!(
            m.contains("objects[0].faces[0][2] is -1, expected a vertex index"),
            "{m}"
        );
        let m = data_err(&scene(
            r#"{"type":"mesh","vertices":[[0,0,0]],"faces":[[0,0.5,0]]}"#,
        ));
        assert!(m.contains("faces[0][1] is 0.5"), "{m}");
        let m = data_err(&scene(
            r#"{"type":"mesh","vertices":[[0,0,0]],"faces":[[0,0]]}"#,
        ));
        assert!(m.contains("objects[0].faces[0] has 2 indices"), "{m}");
        let m = data_err(&scene(r#"{"type":"mesh","vertices":[[0,0,0]],"faces":[]}"#));
        assert!(m.contains("objects[0].faces is empty"), "{m}");
        let m = data_err(&scene(r#"{"type":"points","points":[[0,0,0],[1,"a",0]]}"#));
        assert!(
            m.contains(r#"objects[0].points[1][1] is "a", expected a number"#),
            "{m}"
        );
        let m = data_err(&scene(r#"{"type":"points","points":[[0,0,1e31]]}"#));
        assert!(
            m.contains("objects[0].points[0][2] is 10000000000000000000000000000000"),
            "{m}"
        );
        let m = data_err(&scene(r#"{"type":"points","points":[[0,0]]}"#));
        assert!(
            m.contains("objects[0].points[0] has 2 elements, expected [x, y, z]"),
            "{m}"
        );
        let m = data_err(&scene(r#"{"type":"points","points":[]}"#));
        assert!(m.contains("a point cloud needs at least 1"), "{m}");
        let m = data_err(&scene(r#"{"type":"points","points":[[0,0,0]],"size":0}"#));
        assert!(m.contains("objects[0].size is 0"), "{m}");
        let m = data_err(&scene(r#"{"type":"lines","points":[[0,0,0]]}"#));
        assert!(m.contains("a line strip needs at least 2"), "{m}");
        let m = data_err(&scene(
            r#"{"type":"lines","points":[[0,0,0],[1,1,1]],"closed":"yes"}"#,
        ));
        assert!(
            m.contains("objects[0].closed is \"yes\", expected true or false"),
            "{m}"
        );
        let m = data_err(&scene(
            r#"{"type":"lines","points":[[0,0,0],[1,1,1]],"color":"bluish"}"#,
        ));
        assert!(
            m.starts_with("objects[0].color: unknown colour \"bluish\""),
            "{m}"
        );
        let m = data_err(&scene(r#"{"type":"cube"}"#));
        assert!(m.contains(r#"objects[0].type is "cube""#), "{m}");
        let m = data_err(&scene(r#"{"points":[]}"#));
        assert!(m.contains(r#"objects[0] has no "type""#), "{m}");
        let m = data_err(&scene("5"));
        assert!(m.contains("objects[0] is 5"), "{m}");
        let m = data_err(&scene(
            r#"{"type":"points","type":"mesh","points":[[0,0,0]]}"#,
        ));
        assert!(m.contains("twice"), "{m}");
    }

    #[test]
    fn camera_and_document_errors() {
        let m = data_err(r#"{"objects": []}"#);
        assert!(m.contains(r#"scene has no "camera""#), "{m}");
        let m = data_err(&format!("{{{CAMERA}}}"));
        assert!(m.contains(r#"scene has no "objects""#), "{m}");
        let m = data_err(&format!(r#"{{{CAMERA}, "objects": [], "lights": []}}"#));
        assert!(m.starts_with("scene.lights is not a known key"), "{m}");
        let m = data_err(&format!(r#"{{{CAMERA}, "objects": {{}}}}"#));
        assert!(m.contains("objects is an object, expected an array"), "{m}");
        let m = data_err(&format!(
            r#"{{{CAMERA}, "objects": [], "background": "nope"}}"#
        ));
        assert!(m.starts_with("background: unknown colour"), "{m}");
        let cam = |c: &str| data_err(&format!(r#"{{"camera": {c}, "objects": []}}"#));
        let m = cam(r#"{"position": [1, 1, 1], "target": [1, 1, 1]}"#);
        assert!(m.contains("same point"), "{m}");
        let m = cam(r#"{"position": [0, 5, 0], "target": [0, 0, 0]}"#);
        assert!(m.contains("camera.up is parallel"), "{m}");
        let m = cam(r#"{"position": [0, 0, 5], "target": [0, 0, 0], "up": [0, 0, 0]}"#);
        assert!(m.contains("camera.up is [0, 0, 0]"), "{m}");
        let m = cam(r#"{"position": [0, 0, 5], "target": [0, 0, 0], "fov": 180}"#);
        assert!(m.contains("camera.fov is 180"), "{m}");
        let m = cam(r#"{"position": [0, 0], "target": [0, 0, 0]}"#);
        assert!(m.contains("camera.position has 2 elements"), "{m}");
        let m = cam(r#"{"position": [0, 0, 1], "target": [0, 0, 0], "zoom": 2}"#);
        assert!(m.starts_with("camera.zoom is not a known key"), "{m}");
        let m = data_err("[1, 2]");
        assert!(
            m.contains("scene is an array of 2 element(s), expected an object"),
            "{m}"
        );
        let m = data_err("{");
        assert!(m.starts_with("the scene is not valid JSON"), "{m}");
    }

    #[test]
    fn extreme_but_valid_camera() {
        let json = r#"{"camera": {"position": [-1e30, 0, 0], "target": [1e30, 0, 0],
                       "up": [0, 0, 1e-300]}, "objects": []}"#;
        assert!(validate_scene(json, &limits(), &mut Meter::unlimited()).is_ok());
    }

    #[test]
    fn size_bounds() {
        let pts: Vec<[i32; 3]> = (0..20).map(|i| [i, 0, 0]).collect();
        let json = scene(&format!(
            r#"{{"type":"points","points":{}}}"#,
            serde_json::to_string(&pts).unwrap()
        ));
        match validate_scene(&json, &limits(), &mut Meter::unlimited()) {
            Err(VizError::TooLarge(m)) => {
                assert!(m.contains("more than 20 items"), "{m}");
                assert!(m.contains("objects[0].points"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        // 1 object + 19 points is exactly the limit.
        let json = scene(&format!(
            r#"{{"type":"points","points":{}}}"#,
            serde_json::to_string(&pts[..19]).unwrap()
        ));
        assert!(validate_scene(&json, &limits(), &mut Meter::unlimited()).is_ok());
        // 8 JSON values per item (+64) are parsed at most.
        let flood = format!(r#"{{"junk": [{}0]}}"#, "0,".repeat(300));
        match validate_scene(&flood, &limits(), &mut Meter::unlimited()) {
            Err(VizError::TooLarge(m)) => assert!(m.contains("more than 224 JSON values"), "{m}"),
            other => panic!("{other:?}"),
        }
        let big = format!(
            "{{{CAMERA}, \"objects\": [], \"background\": \"{}\"}}",
            " ".repeat(5000)
        );
        assert!(matches!(
            validate_scene(&big, &limits(), &mut Meter::unlimited()),
            Err(VizError::TooLarge(m)) if m.contains("at most 4000 bytes")
        ));
    }
}

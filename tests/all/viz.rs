//! `kernel.viz` / `llmos.viz` through the real components: chart shapes,
//! canvases rendered to SVG and PNG, 3D scenes, and clear errors.

use llmos::Status;
use llmos::outputs::{MIME_PNG, MIME_SCENE, MIME_SVG, MIME_TEXT, Output, OutputKind};
use llmos_tests::run;

/// Decode a PNG into (width, height, RGBA pixels).
fn decode_png(data: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(data));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    assert_eq!(info.color_type, png::ColorType::Rgba, "expected RGBA");
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn pixel(img: &(u32, u32, Vec<u8>), x: u32, y: u32) -> [u8; 4] {
    let i = ((y * img.0 + x) * 4) as usize;
    [img.2[i], img.2[i + 1], img.2[i + 2], img.2[i + 3]]
}

fn svg(o: &Output) -> roxmltree::Document<'_> {
    let item = o.item(MIME_SVG).expect("svg item");
    let text = std::str::from_utf8(&item.data).expect("utf-8 svg");
    roxmltree::Document::parse(text).expect("well-formed SVG")
}

fn count(doc: &roxmltree::Document<'_>, tag: &str) -> usize {
    doc.descendants().filter(|n| n.has_tag_name(tag)).count()
}

fn texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            n.descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect::<String>()
        })
        .collect()
}

#[test]
fn javascript_plots_each_data_shape() {
    let o = run(
        "javascript",
        r##"
const v = kernel.viz;
[
  v.plot([1, 4, 9, 16, 25], { title: "Squares", xLabel: "n", yLabel: "n²" }),
  v.plot([[1, 2], [2, 3], [3, 1]], { title: "Pairs" }),
  v.plot({ up: [1, 2, 3], down: [3, 2, 1] }, { title: "Two" }),
  v.plot({ apples: 3, pears: 5, plums: 1 }, { title: "Fruit" }),
  v.plot([1, 1, 2, 2, 2, 3, 9], { kind: "histogram", bins: 4, title: "Hist" }),
].join(",")
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("'0,1,2,3,4'"));
    assert_eq!(o.outputs.len(), 5);
    for (i, out) in o.outputs.iter().enumerate() {
        assert_eq!(out.index as usize, i);
        assert_eq!(out.kind, OutputKind::Plot);
        assert!(out.item(MIME_PNG).is_some() && out.item(MIME_TEXT).is_some());
        let img = decode_png(&out.item(MIME_PNG).expect("png").data);
        assert!(img.0 >= 100 && img.1 >= 100, "{}x{}", img.0, img.1);
    }
    let titles: Vec<Vec<String>> = o.outputs.iter().map(|out| texts(&svg(out))).collect();
    for (t, want) in titles
        .iter()
        .zip(["Squares", "Pairs", "Two", "Fruit", "Hist"])
    {
        assert!(t.iter().any(|s| s == want), "{want} not in {t:?}");
    }
    assert!(titles[0].iter().any(|s| s == "n²"), "{:?}", titles[0]);
    // Scatter: one mark per point; two series: a legend naming both; bars: labels.
    assert!(count(&svg(&o.outputs[1]), "circle") >= 3);
    assert!(titles[2].iter().any(|s| s == "up") && titles[2].iter().any(|s| s == "down"));
    assert!(
        ["apples", "pears", "plums"]
            .iter()
            .all(|l| titles[3].iter().any(|s| s == l))
    );
    assert!(
        o.outputs[0].summary.contains("line"),
        "{}",
        o.outputs[0].summary
    );
    assert!(
        o.outputs[4].summary.contains("histogram"),
        "{}",
        o.outputs[4].summary
    );
}

#[test]
fn python_plot_with_keyword_options() {
    let o = run(
        "python",
        r##"
from llmos import viz
viz.plot({"x": [0, 1, 2, 3], "y": [0, 1, 4, 9]}, title="xy", x_label="x", y_label="y")
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("0"));
    let doc = svg(&o.outputs[0]);
    assert!(texts(&doc).iter().any(|t| t == "xy"));
}

#[test]
fn malformed_plot_data_is_a_clear_error_not_a_trap() {
    let o = run(
        "javascript",
        "const d = [1, 'two', 3];\nkernel.viz.plot(d);\n",
    );
    assert_eq!(o.status, Status::Error, "{o:?}");
    let e = o.error.expect("error");
    assert_eq!(e.class, "VizError");
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("[1]"), "{}", e.message);

    let o = run(
        "python",
        r##"
from llmos import viz, VizError
out = []
for data, opts in [([], {}), ({"a": [1, 2], "b": "x"}, {}), ([1, 2], {"colour": "red"})]:
    try:
        viz.plot(data, opts)
    except VizError as e:
        out.append(e.code)
out
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(
        o.value.as_deref(),
        Some("['invalid-data', 'invalid-data', 'invalid-options']")
    );
}

#[test]
fn canvas_renders_to_svg_and_png_pixels() {
    let o = run(
        "javascript",
        r##"
const c = kernel.viz.canvas(200, 100);
c.fillColor("red").rect(10, 10, 50, 30);
c.strokeColor("#0000ff").lineWidth(4).line(100, 50, 190, 50);
c.fillColor("black").text(20, 90, "hello <world>", 14);
c.path([[150, 5], [195, 5], [195, 30]], { closed: true, paint: "fill" });
c.show()
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    let out = &o.outputs[0];
    assert_eq!(out.kind, OutputKind::Canvas);
    let doc = svg(out);
    assert!(texts(&doc).iter().any(|t| t == "hello <world>"));
    let img = decode_png(&out.item(MIME_PNG).expect("png").data);
    assert_eq!((img.0, img.1), (200, 100));
    assert_eq!(pixel(&img, 30, 20), [255, 0, 0, 255], "inside the red rect");
    assert_eq!(pixel(&img, 5, 5), [255, 255, 255, 255], "white background");
    let [r, g, b, _] = pixel(&img, 145, 50);
    assert!(
        b > 200 && r < 60 && g < 60,
        "blue line at (145, 50): {r},{g},{b}"
    );
    // The text is drawn with the embedded font: some dark pixels in its box.
    let dark = (20..80)
        .flat_map(|x| (78..92).map(move |y| (x, y)))
        .filter(|&(x, y)| pixel(&img, x, y)[0] < 100)
        .count();
    assert!(dark > 20, "only {dark} dark pixels where the text is");
}

#[test]
fn oversized_canvas_and_bad_arguments_are_errors() {
    let o = run(
        "python",
        r##"
from llmos import viz, VizError
codes = []
for w, h in [(5000, 300), (2000, 2001), (0, 10)]:
    try:
        viz.canvas(w, h)
    except VizError as e:
        codes.append(e.code)
c = viz.canvas(2000, 2000)
for f in [lambda: c.fill_color("not-a-colour"), lambda: c.rect(0, 0, float("nan"), 1), lambda: c.line_width(-1)]:
    try:
        f()
    except VizError as e:
        codes.append(e.code)
codes
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    let v = o.value.unwrap_or_default();
    assert!(v.starts_with("['too-large', 'too-large', "), "{v}");
    assert!(
        v.ends_with("'invalid-argument', 'invalid-argument', 'invalid-argument']"),
        "{v}"
    );
}

#[test]
fn render3d_validates_and_keeps_the_scene() {
    let o = run(
        "javascript",
        r##"
const scene = {
  camera: { position: [3, 3, 3], target: [0, 0, 0] },
  objects: [
    { type: "mesh", vertices: [[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces: [[0, 1, 2]], color: "orange" },
    { type: "points", points: [[0, 0, 1], [1, 1, 1]] },
  ],
};
const i = kernel.viz.render3d(scene);
let err;
try { kernel.viz.render3d({ camera: scene.camera, objects: [{ type: "mesh", vertices: [[0, 0, 0]], faces: [[0, 1, 2]] }] }); }
catch (e) { err = e.code + ": " + e.message; }
[i, err]
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.outputs.len(), 1);
    let out = &o.outputs[0];
    assert_eq!(out.kind, OutputKind::Scene);
    let scene: serde_json::Value =
        serde_json::from_slice(&out.item(MIME_SCENE).expect("scene").data).expect("json");
    assert_eq!(scene["objects"].as_array().map(Vec::len), Some(2));
    let v = o.value.unwrap_or_default();
    assert!(v.contains("invalid-data"), "{v}");
}

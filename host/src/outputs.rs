//! Run outputs: the ordered MIME bundles an artifact produces through the
//! kernel APIs (charts, canvases, 3D scenes, circuit diagrams, its document).
//!
//! Each [`Output`] is one picture or document in one or more representations
//! (`image/svg+xml` and `image/png` of the same chart, ...) plus a one-line
//! `text/plain` summary. Outputs are bounded per run, in count and bytes: a
//! call that would cross a bound fails with a guest-visible error and every
//! output already produced is kept.
//!
//! Outputs pushed by kernel calls ([`Outputs::push_metered`]) also hold
//! their bytes in the run's host-memory budget ([`Meter::reserve`]) for the
//! rest of the run; past it the call fails the same way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::meter::{Meter, cost};

/// MIME type of SVG pictures.
pub const MIME_SVG: &str = "image/svg+xml";
/// MIME type of PNG pictures.
pub const MIME_PNG: &str = "image/png";
/// MIME type of the run's document.
pub const MIME_HTML: &str = "text/html";
/// MIME type of 3D scenes.
pub const MIME_SCENE: &str = "application/vnd.llmos.scene+json";
/// MIME type of text summaries.
pub const MIME_TEXT: &str = "text/plain";

/// What produced an output.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// `viz.plot`
    Plot,
    /// `viz` canvas `show`
    Canvas,
    /// `viz.render3d`
    Scene,
    /// `quantum.draw`
    Circuit,
    /// The artifact's `dom` document, at the end of the run.
    Html,
}

impl OutputKind {
    /// The snake_case name used in JSON and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Plot => "plot",
            OutputKind::Canvas => "canvas",
            OutputKind::Scene => "scene",
            OutputKind::Circuit => "circuit",
            OutputKind::Html => "html",
        }
    }
}

/// One representation of an output.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputItem {
    /// Its MIME type.
    pub mime: String,
    /// Size of `data` in bytes.
    pub bytes: usize,
    /// The content (not serialised: [`write_files`] puts it in `file`).
    #[serde(skip)]
    pub data: Vec<u8>,
    /// Where [`write_files`] wrote it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[cfg_attr(feature = "serve", schema(value_type = Option<String>))]
    pub file: Option<PathBuf>,
}

/// One output of a run: the same content in one or more MIME types.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Position in the run's outputs (what the kernel call returned).
    pub index: u32,
    /// What produced it.
    pub kind: OutputKind,
    /// The `text/plain` representation: a one-line description.
    pub summary: String,
    /// Its representations, one per MIME type.
    pub items: Vec<OutputItem>,
}

impl Output {
    /// The representation of type `mime`, if any.
    pub fn item(&self, mime: &str) -> Option<&OutputItem> {
        self.items.iter().find(|i| i.mime == mime)
    }
}

/// A kernel call would exceed the run's output bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutputsFull(pub String);

/// The outputs of one run, bounded in count and total bytes.
#[derive(Debug)]
pub struct Outputs {
    list: Vec<Output>,
    bytes: usize,
    max_outputs: usize,
    max_bytes: usize,
}

impl Outputs {
    /// An empty list bounded in count and total bytes.
    pub fn new(max_outputs: usize, max_bytes: usize) -> Self {
        Outputs {
            list: Vec::new(),
            bytes: 0,
            max_outputs,
            max_bytes,
        }
    }

    /// Add an output with its representations; the summary is added as
    /// `text/plain`. Returns its index.
    pub fn push(
        &mut self,
        kind: OutputKind,
        summary: String,
        items: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<u32, OutputsFull> {
        if self.list.len() >= self.max_outputs {
            return Err(OutputsFull(format!(
                "the run already has {} outputs, the most a run may produce",
                self.max_outputs
            )));
        }
        let size = summary.len() + items.iter().map(|(_, d)| d.len()).sum::<usize>();
        if self.bytes.saturating_add(size) > self.max_bytes {
            return Err(OutputsFull(format!(
                "this {} output ({size} bytes) would take the run's outputs past {} bytes",
                kind.as_str(),
                self.max_bytes
            )));
        }
        self.bytes += size;
        let index = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        let mut all: Vec<OutputItem> = items
            .into_iter()
            .map(|(mime, data)| OutputItem {
                mime: mime.to_string(),
                bytes: data.len(),
                data,
                file: None,
            })
            .collect();
        all.push(OutputItem {
            mime: MIME_TEXT.to_string(),
            bytes: summary.len(),
            data: summary.clone().into_bytes(),
            file: None,
        });
        self.list.push(Output {
            index,
            kind,
            summary,
            items: all,
        });
        Ok(index)
    }

    /// [`Outputs::push`] by a kernel call: the output's bytes are paid for
    /// (copied once, per byte) and reserved in the run's host-memory budget
    /// first. Running out of fuel or time is a trap (`Err(Err(limit))`);
    /// past a bound, the output is refused (`Ok(Err(full))`).
    pub fn push_metered(
        &mut self,
        meter: &mut Meter,
        kind: OutputKind,
        summary: String,
        items: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<Result<u32, OutputsFull>, crate::meter::HostLimit> {
        let size = (summary.len() + items.iter().map(|(_, d)| d.len()).sum::<usize>()) as u64;
        meter.charge(size.saturating_mul(cost::PER_BYTE))?;
        if let Err(e) = meter.reserve(size) {
            return Ok(Err(OutputsFull(format!(
                "this {} output ({size} bytes) does not fit: {e}",
                kind.as_str()
            ))));
        }
        let r = self.push(kind, summary, items);
        if r.is_err() {
            meter.release(size);
        }
        Ok(r)
    }

    /// How many outputs.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The outputs, in order.
    pub fn into_vec(self) -> Vec<Output> {
        self.list
    }
}

/// File extension for a MIME type (`None`: not written to a file).
fn extension(mime: &str) -> Option<&'static str> {
    match mime {
        MIME_SVG => Some("svg"),
        MIME_PNG => Some("png"),
        MIME_HTML => Some("html"),
        MIME_SCENE => Some("scene.json"),
        _ => None,
    }
}

/// Write every non-text representation of `outputs` into `dir` (created if
/// needed) as `<index>-<kind>.<ext>`, and record each file's path. Files
/// of earlier runs with that naming scheme are removed first when `clean`.
pub fn write_files(outputs: &mut [Output], dir: &Path, clean: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if clean {
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_output_file_name(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    for out in outputs.iter_mut() {
        for item in out.items.iter_mut() {
            let Some(ext) = extension(&item.mime) else {
                continue;
            };
            let path = dir.join(format!("{}-{}.{ext}", out.index, out.kind.as_str()));
            let tmp = dir.join(format!(".{}-{}.{ext}.tmp", out.index, out.kind.as_str()));
            std::fs::write(&tmp, &item.data)?;
            std::fs::rename(&tmp, &path)?;
            item.file = Some(path);
        }
    }
    Ok(())
}

/// `<digits>-<kind>.<ext>`, the names [`write_files`] uses.
fn is_output_file_name(name: &str) -> bool {
    let Some((index, rest)) = name.split_once('-') else {
        return false;
    };
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some((kind, ext)) = rest.split_once('.') else {
        return false;
    };
    ["plot", "canvas", "scene", "circuit", "html"].contains(&kind)
        && ["svg", "png", "html", "scene.json"].contains(&ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_count_and_bytes() {
        let mut o = Outputs::new(2, 100);
        assert_eq!(
            o.push(OutputKind::Plot, "a".into(), vec![(MIME_SVG, vec![0; 10])])
                .ok(),
            Some(0)
        );
        assert!(
            o.push(OutputKind::Plot, "b".into(), vec![(MIME_SVG, vec![0; 200])])
                .is_err()
        );
        assert_eq!(
            o.push(OutputKind::Html, "c".into(), vec![(MIME_HTML, vec![0; 10])])
                .ok(),
            Some(1)
        );
        assert!(o.push(OutputKind::Html, "d".into(), vec![]).is_err());
        let v = o.into_vec();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].item(MIME_TEXT).map(|i| i.data.clone()),
            Some(b"a".to_vec())
        );
    }

    #[test]
    fn metered_pushes_hold_host_memory() {
        use std::time::{Duration, Instant};
        let mut m = Meter::new(Instant::now(), Duration::from_secs(60), None, 100);
        let mut o = Outputs::new(10, 1000);
        let one = |n| vec![(MIME_SVG, vec![0u8; n])];
        assert_eq!(
            o.push_metered(&mut m, OutputKind::Plot, "a".into(), one(59)),
            Ok(Ok(0))
        );
        assert_eq!(m.memory_used(), 60);
        let r = o.push_metered(&mut m, OutputKind::Plot, "b".into(), one(59));
        assert!(matches!(r, Ok(Err(_))), "{r:?}");
        assert_eq!((m.memory_used(), o.len()), (60, 1));
    }

    #[test]
    fn writes_files_and_cleans_only_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("7-plot.svg"), "old").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "keep").expect("write");
        let mut o = Outputs::new(10, 1000);
        o.push(
            OutputKind::Plot,
            "p".into(),
            vec![(MIME_SVG, b"<svg/>".to_vec()), (MIME_PNG, vec![1, 2])],
        )
        .expect("push");
        let mut v = o.into_vec();
        write_files(&mut v, dir.path(), true).expect("write");
        assert!(dir.path().join("0-plot.svg").exists());
        assert!(dir.path().join("0-plot.png").exists());
        assert!(!dir.path().join("7-plot.svg").exists());
        assert!(dir.path().join("notes.txt").exists());
        assert_eq!(
            v[0].item(MIME_SVG).and_then(|i| i.file.clone()),
            Some(dir.path().join("0-plot.svg"))
        );
        assert!(v[0].item(MIME_TEXT).and_then(|i| i.file.clone()).is_none());
    }
}

//! `llmos:kernel/dom`: a safe document tree for the artifact's own output.
//!
//! The tree, its allowlists and its sanitizing serializer are in [`tree`];
//! this module binds it to the WIT interface. Guests hold `element`
//! resources: entries of the run's `ResourceTable` that name a node of the
//! run's [`Document`]. Several handles may name the same node (each query
//! returns fresh handles); dropping a handle never removes its node. At the
//! end of the run a non-empty document becomes a `text/html` output: a whole
//! document with a restrictive Content-Security-Policy (see
//! [`tree::HTML_HEAD`]).
//!
//! Host budgets (see [`crate::meter`]): every call pays [`cost::CALL`] plus
//! its argument bytes; walks (selectors, `text`, appends) pay
//! [`cost::PER_NODE`] per element of the document before they start (an
//! upper bound on what they visit); the document's footprint
//! ([`Document::footprint`]) is held in the run's host memory, and a change
//! that would take it past the budget is refused with `too-large`.

pub mod tree;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::bindings::dom::{self as wit, DomError, ErrorCode};
use crate::meter::{HostLimit, Meter, cost};
use crate::outputs::{MIME_HTML, OutputKind, Outputs, OutputsFull};
use tree::{Document, DomLimits, NodeId};

/// What a guest `element` handle refers to.
#[derive(Debug, Clone, Copy)]
pub struct ElementHandle(NodeId);

/// Per-run state of the dom API: the document, created on first use.
#[derive(Debug)]
pub struct DomCtx {
    limits: DomLimits,
    max_handles: usize,
    doc: Option<Document>,
    /// Live element handles (bounded by `max_handles`).
    handles: usize,
    /// The document's footprint as reserved in the run's meter.
    reserved: u64,
}

impl DomCtx {
    /// A run's dom state under these quotas (the document is created on first use).
    pub fn new(limits: DomLimits, max_handles: usize) -> Self {
        DomCtx {
            limits,
            max_handles,
            doc: None,
            handles: 0,
            reserved: 0,
        }
    }

    fn doc(&mut self) -> &mut Document {
        let limits = &self.limits;
        self.doc
            .get_or_insert_with(|| Document::new(limits.clone()))
    }

    /// Serialize a non-empty document as the run's last output.
    pub fn finish(&self, outputs: &mut Outputs) -> Result<(), OutputsFull> {
        let Some(doc) = &self.doc else { return Ok(()) };
        if doc.is_empty() {
            return Ok(());
        }
        let html = doc.to_html_document();
        let elements = doc
            .query_selector_all(doc.root(), "*")
            .map(|v| v.len())
            .unwrap_or(0);
        let summary = format!(
            "document: {elements} element{}, {} bytes of HTML",
            if elements == 1 { "" } else { "s" },
            html.len()
        );
        outputs.push(
            OutputKind::Html,
            summary,
            vec![(MIME_HTML, html.into_bytes())],
        )?;
        Ok(())
    }
}

/// What the dom API touches: its context and the run's resource table.
pub struct DomView<'a> {
    /// The run's document and handle count.
    pub ctx: &'a mut DomCtx,
    /// The run's resource table (element handles).
    pub table: &'a mut ResourceTable,
    /// The run's accounting of host work.
    pub meter: &'a mut Meter,
}

fn guest_error(e: tree::DomError) -> DomError {
    let (code, message) = match e {
        tree::DomError::ForbiddenTag(m) => (ErrorCode::ForbiddenTag, m),
        tree::DomError::ForbiddenAttribute(m) => (ErrorCode::ForbiddenAttribute, m),
        tree::DomError::ForbiddenUrl(m) => (ErrorCode::ForbiddenUrl, m),
        tree::DomError::InvalidSelector(m) => (ErrorCode::InvalidSelector, m),
        tree::DomError::InvalidOperation(m) => (ErrorCode::InvalidOperation, m),
        tree::DomError::TooLarge(m) => (ErrorCode::TooLarge, m),
    };
    DomError { code, message }
}

/// Fuel for a walk over `nodes` elements matching a selector of
/// `selector_bytes` bytes: [`cost::PER_NODE`] per element and per 16 bytes
/// of selector (a query costs O(elements × steps), see `tree::selector`).
pub fn walk_fuel(nodes: usize, selector_bytes: usize) -> u64 {
    let steps = 1 + selector_bytes as u64 / 16;
    (nodes as u64)
        .saturating_mul(steps)
        .saturating_mul(cost::PER_NODE)
}

/// Bytes an element slot, attribute slot or text node may add to the
/// document's footprint beyond its own bytes (for reserving before a change).
const SLOT_BYTES: usize = 256;

impl DomView<'_> {
    /// Pay [`cost::CALL`] plus `bytes` of arguments.
    fn pay(&mut self, bytes: usize) -> Result<(), HostLimit> {
        self.meter
            .charge(cost::CALL.saturating_add((bytes as u64).saturating_mul(cost::PER_BYTE)))
    }

    /// Pay for a walk of the whole document (an upper bound on any walk)
    /// with a selector of `selector_bytes` bytes (0: no selector).
    fn pay_walk(&mut self, selector_bytes: usize) -> Result<(), HostLimit> {
        let nodes = self.ctx.doc().node_count();
        self.pay(selector_bytes)?;
        self.meter.charge(walk_fuel(nodes, selector_bytes))
    }

    /// Change the document with `f`, which adds at most `bytes` bytes of
    /// text or attributes: the growth is reserved in the run's host memory
    /// first (refused with `too-large`), then the reservation is settled to
    /// the document's new footprint.
    fn change<T>(
        &mut self,
        bytes: usize,
        f: impl FnOnce(&mut Document) -> Result<T, tree::DomError>,
    ) -> wasmtime::Result<Result<T, DomError>> {
        self.pay(bytes)?;
        let est = bytes.saturating_add(SLOT_BYTES) as u64;
        if let Err(e) = self.meter.reserve(est) {
            return Ok(Err(DomError {
                code: ErrorCode::TooLarge,
                message: e.to_string(),
            }));
        }
        let r = f(self.ctx.doc());
        let now = self.ctx.doc().footprint();
        self.meter.release(est);
        if now >= self.ctx.reserved {
            // Within `est` for any one change; if not, the footprint is
            // still accounted (the budget is then exceeded by at most one
            // change, and every later reservation fails).
            if self.meter.reserve(now - self.ctx.reserved).is_err() {
                let over = now - self.ctx.reserved;
                tracing::debug!(over, "dom change grew past its reservation");
            }
        } else {
            self.meter.release(self.ctx.reserved - now);
        }
        self.ctx.reserved = now;
        Ok(r.map_err(guest_error))
    }

    fn node(&self, el: &Resource<ElementHandle>) -> wasmtime::Result<NodeId> {
        Ok(self.table.get(el)?.0)
    }

    /// A new handle to `node`, within the handle bound.
    fn handle(
        &mut self,
        node: NodeId,
    ) -> wasmtime::Result<Result<Resource<ElementHandle>, DomError>> {
        if self.ctx.handles >= self.ctx.max_handles {
            return Ok(Err(DomError {
                code: ErrorCode::TooLarge,
                message: format!(
                    "{} element handles are alive: at most {} may exist at once in a run",
                    self.ctx.handles, self.ctx.max_handles
                ),
            }));
        }
        let r = self.table.push(ElementHandle(node))?;
        self.ctx.handles += 1;
        Ok(Ok(r))
    }

    fn handles(
        &mut self,
        nodes: Vec<NodeId>,
    ) -> wasmtime::Result<Result<Vec<Resource<ElementHandle>>, DomError>> {
        let mut out = Vec::with_capacity(nodes.len());
        for n in nodes {
            match self.handle(n)? {
                Ok(h) => out.push(h),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(out))
    }
}

impl wit::HostElement for DomView<'_> {
    fn tag_name(&mut self, el: Resource<ElementHandle>) -> wasmtime::Result<String> {
        let n = self.node(&el)?;
        self.pay(0)?;
        Ok(self
            .ctx
            .doc()
            .tag_name(n)
            .map(str::to_string)
            .unwrap_or_default())
    }

    fn set_text(
        &mut self,
        el: Resource<ElementHandle>,
        text: String,
    ) -> wasmtime::Result<Result<(), DomError>> {
        let n = self.node(&el)?;
        self.change(text.len(), |d| d.set_text(n, &text))
    }

    fn text(&mut self, el: Resource<ElementHandle>) -> wasmtime::Result<String> {
        let n = self.node(&el)?;
        self.pay_walk(0)?;
        let bytes = self.ctx.doc().text_and_attribute_bytes();
        self.meter
            .charge((bytes as u64).saturating_mul(cost::PER_BYTE))?;
        Ok(self.ctx.doc().text(n).unwrap_or_default())
    }

    fn set_attribute(
        &mut self,
        el: Resource<ElementHandle>,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), DomError>> {
        let n = self.node(&el)?;
        self.change(name.len() + value.len(), |d| {
            d.set_attribute(n, &name, &value)
        })
    }

    fn get_attribute(
        &mut self,
        el: Resource<ElementHandle>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        let n = self.node(&el)?;
        self.pay(name.len())?;
        Ok(self
            .ctx
            .doc()
            .get_attribute(n, &name)
            .ok()
            .flatten()
            .map(str::to_string))
    }

    fn remove_attribute(
        &mut self,
        el: Resource<ElementHandle>,
        name: String,
    ) -> wasmtime::Result<bool> {
        let n = self.node(&el)?;
        Ok(self
            .change(name.len(), |d| d.remove_attribute(n, &name))?
            .unwrap_or(false))
    }

    fn append_child(
        &mut self,
        el: Resource<ElementHandle>,
        child: Resource<ElementHandle>,
    ) -> wasmtime::Result<Result<(), DomError>> {
        let (p, c) = (self.node(&el)?, self.node(&child)?);
        // Appending walks the child's subtree (nesting bound).
        self.pay_walk(0)?;
        self.change(0, |d| d.append_child(p, c))
    }

    fn remove_child(
        &mut self,
        el: Resource<ElementHandle>,
        child: Resource<ElementHandle>,
    ) -> wasmtime::Result<Result<(), DomError>> {
        let (p, c) = (self.node(&el)?, self.node(&child)?);
        self.change(0, |d| d.remove_child(p, c))
    }

    fn children(
        &mut self,
        el: Resource<ElementHandle>,
    ) -> wasmtime::Result<Vec<Resource<ElementHandle>>> {
        let n = self.node(&el)?;
        self.pay_walk(0)?;
        let nodes = self.ctx.doc().children(n).unwrap_or_default();
        match self.handles(nodes)? {
            Ok(v) => Ok(v),
            // No error channel in `children`: past the handle bound, trap.
            Err(e) => Err(wasmtime::Error::msg(e.message)),
        }
    }

    fn query_selector(
        &mut self,
        el: Resource<ElementHandle>,
        selector: String,
    ) -> wasmtime::Result<Result<Option<Resource<ElementHandle>>, DomError>> {
        let n = self.node(&el)?;
        self.pay_walk(selector.len())?;
        match self.ctx.doc().query_selector(n, &selector) {
            Ok(Some(found)) => Ok(self.handle(found)?.map(Some)),
            Ok(None) => Ok(Ok(None)),
            Err(e) => Ok(Err(guest_error(e))),
        }
    }

    fn query_selector_all(
        &mut self,
        el: Resource<ElementHandle>,
        selector: String,
    ) -> wasmtime::Result<Result<Vec<Resource<ElementHandle>>, DomError>> {
        let n = self.node(&el)?;
        self.pay_walk(selector.len())?;
        match self.ctx.doc().query_selector_all(n, &selector) {
            Ok(nodes) => self.handles(nodes),
            Err(e) => Ok(Err(guest_error(e))),
        }
    }

    fn drop(&mut self, el: Resource<ElementHandle>) -> wasmtime::Result<()> {
        self.table.delete(el)?;
        self.ctx.handles = self.ctx.handles.saturating_sub(1);
        Ok(())
    }
}

impl wit::Host for DomView<'_> {
    fn root(&mut self) -> wasmtime::Result<Resource<ElementHandle>> {
        let root = self.ctx.doc().root();
        match self.handle(root)? {
            Ok(h) => Ok(h),
            Err(e) => Err(wasmtime::Error::msg(e.message)),
        }
    }

    fn create_element(
        &mut self,
        tag: String,
    ) -> wasmtime::Result<Result<Resource<ElementHandle>, DomError>> {
        match self.change(tag.len(), |d| d.create_element(&tag))? {
            Ok(n) => self.handle(n),
            Err(e) => Ok(Err(e)),
        }
    }
}

struct HasDom;

impl HasData for HasDom {
    type Data<'a> = DomView<'a>;
}

/// Add `llmos:kernel/dom` to `linker`, reaching its view through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> DomView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasDom>(linker, get)
}

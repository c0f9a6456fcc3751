// llmos standard library for JavaScript artifacts: the `kernel` object.
//
// Compiled to bytecode into the QuickJS component and evaluated once, when
// the component's interpreter snapshot is built (never per run, and under
// its own internal file name, so it cannot shift an artifact's line numbers;
// its frames are dropped from reported stacks).
//
// The completion value is a factory: the guest calls it with the native
// hooks (thin bridges to the WIT imports) and the prelude's `inspect`, and
// gets back the `kernel` object; init.js decides what becomes global.
//
// Every public function has a doc block whose first line is its qualified
// signature; `llmos api javascript` prints them, and the repair loop gives
// them to the LLM. Keep them exact.
(function (native, inspect) {
  'use strict';

  const O = Object;
  const freeze = O.freeze;
  const defineProp = O.defineProperty;
  const isArray = Array.isArray;
  const NumberCtor = Number;
  const StringCtor = String;
  const JSONstringify = JSON.stringify;
  const JSONparse = JSON.parse;
  const StrToWellFormed = Function.prototype.call.bind(String.prototype.toWellFormed);

  // ------------------------------------------------------------ errors

  /**
   * kernel.KernelError (class)
   * Base class of every error a kernel API throws. `err.code` is the
   * interface's error code (e.g. "quota-exceeded"), `err.message` says what
   * was wrong and what is allowed.
   */
  class KernelError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }
  defineProp(KernelError.prototype, 'name', { value: 'KernelError', writable: true, configurable: true });

  function errorClass(name) {
    const C = class extends KernelError {};
    defineProp(C, 'name', { value: name });
    defineProp(C.prototype, 'name', { value: name, writable: true, configurable: true });
    return C;
  }
  /**
   * kernel.StorageError (class)
   * Thrown by kernel.storage. Codes: "invalid-key", "invalid-value",
   * "quota-exceeded", "unavailable".
   */
  const StorageError = errorClass('StorageError');
  /**
   * kernel.VizError (class)
   * Thrown by kernel.viz. Codes: "invalid-data", "invalid-options",
   * "invalid-argument", "too-large".
   */
  const VizError = errorClass('VizError');
  /**
   * kernel.DomError (class)
   * Thrown by kernel.dom. Codes: "forbidden-tag", "forbidden-attribute",
   * "forbidden-url", "invalid-selector", "invalid-operation", "too-large".
   */
  const DomError = errorClass('DomError');
  /**
   * kernel.QuantumError (class)
   * Thrown by kernel.quantum. Codes: "too-many-qubits", "invalid-gate",
   * "invalid-qubit", "too-large".
   */
  const QuantumError = errorClass('QuantumError');

  // Natives throw `{ kernelError: true, code, message }`; rethrow it as the
  // interface's error class (created here, so its stack starts at the
  // artifact's call).
  function rethrow(Cls, e) {
    if (e !== null && typeof e === 'object' && e.kernelError === true) {
      throw new Cls(e.code, e.message);
    }
    throw e;
  }

  function fnName(fn, name) {
    defineProp(fn, 'name', { value: name });
    return fn;
  }

  function requireString(value, what) {
    if (typeof value !== 'string') {
      throw new TypeError(`${what} must be a string, got ${value === null ? 'null' : typeof value}`);
    }
    return value;
  }

  function requireNumber(value, what) {
    if (typeof value !== 'number' || !(value === value) || value === Infinity || value === -Infinity) {
      throw new TypeError(`${what} must be a finite number, got ${typeof value === 'number' ? value : typeof value}`);
    }
    return value;
  }

  function toJSONText(value, what) {
    let text;
    try {
      text = JSONstringify(value);
    } catch (e) {
      throw new TypeError(`${what} must be JSON-serializable: ${e && e.message}`);
    }
    if (text === undefined) {
      throw new TypeError(`${what} must be JSON-serializable, got ${typeof value}`);
    }
    return text;
  }

  // ------------------------------------------------------------ log

  function fieldValue(v) {
    const t = typeof v;
    if (t === 'string') return StrToWellFormed(v);
    // Plain scalars display as String() would; only objects need inspect.
    if (t === 'number' || t === 'boolean' || t === 'bigint' || v === null || v === undefined) return StringCtor(v);
    return StrToWellFormed(inspect(v));
  }

  function makeLog(level, name) {
    return fnName(function (message, fields) {
      const msg = fieldValue(message);
      const flat = [];
      if (fields !== undefined && fields !== null) {
        if (typeof fields !== 'object') throw new TypeError(`kernel.log.${name}: fields must be a plain object`);
        const ks = O.keys(fields);
        for (let i = 0; i < ks.length; i++) {
          flat.push(ks[i], fieldValue(fields[ks[i]]));
        }
      }
      native.log(level, msg, flat);
    }, name);
  }

  const log = freeze({
    /**
     * kernel.log.debug(message, fields?)
     * Record a debug log line. `fields` is a plain object of structured
     * values (each displayed like console.log would).
     */
    debug: makeLog(0, 'debug'),
    /**
     * kernel.log.info(message, fields?)
     * Record an info log line: kernel.log.info("loaded", { rows: 12 }).
     */
    info: makeLog(1, 'info'),
    /**
     * kernel.log.warn(message, fields?)
     * Record a warning.
     */
    warn: makeLog(2, 'warn'),
    /**
     * kernel.log.error(message, fields?)
     * Record an error (it does not stop the artifact; throw for that).
     */
    error: makeLog(3, 'error'),
  });

  // ------------------------------------------------------------ storage

  const storage = freeze({
    /**
     * kernel.storage.get(key, defaultValue = null) -> any
     * The value stored under `key` (parsed from JSON), or `defaultValue`
     * when the key does not exist. Storage is private to this artifact and
     * persists across runs.
     */
    get: fnName(function (key, defaultValue = null) {
      requireString(key, 'kernel.storage.get: key');
      let text;
      try { text = native.storageGet(key); } catch (e) { rethrow(StorageError, e); }
      // The native gives undefined for a missing key.
      return text === undefined || text === null ? defaultValue : JSONparse(text);
    }, 'get'),
    /**
     * kernel.storage.set(key, value)
     * Store `value` (anything JSON.stringify accepts) under `key`, replacing
     * any earlier value. Durable when it returns. Throws StorageError
     * "quota-exceeded" past the namespace quotas.
     */
    set: fnName(function (key, value) {
      requireString(key, 'kernel.storage.set: key');
      const text = toJSONText(value, 'kernel.storage.set: value');
      try { native.storageSet(key, text); } catch (e) { rethrow(StorageError, e); }
    }, 'set'),
    /**
     * kernel.storage.has(key) -> boolean
     * Whether `key` exists.
     */
    has: fnName(function (key) {
      requireString(key, 'kernel.storage.has: key');
      try { const t = native.storageGet(key); return t !== undefined && t !== null; } catch (e) { rethrow(StorageError, e); }
    }, 'has'),
    /**
     * kernel.storage.delete(key) -> boolean
     * Remove `key`; true if it existed.
     */
    delete: fnName(function (key) {
      requireString(key, 'kernel.storage.delete: key');
      try { return native.storageDelete(key); } catch (e) { rethrow(StorageError, e); }
    }, 'delete'),
    /**
     * kernel.storage.list(prefix = "") -> string[]
     * The keys starting with `prefix` (all keys by default), sorted.
     */
    list: fnName(function (prefix = '') {
      requireString(prefix, 'kernel.storage.list: prefix');
      try { return native.storageKeys(prefix); } catch (e) { rethrow(StorageError, e); }
    }, 'list'),
    /**
     * kernel.storage.clear() -> number
     * Remove every key of this artifact; returns how many were removed.
     */
    clear: fnName(function () {
      try { return native.storageClear(); } catch (e) { rethrow(StorageError, e); }
    }, 'clear'),
  });

  // ------------------------------------------------------------ viz

  // Options are written in camelCase in JS; the host takes snake_case.
  function plotOptions(options) {
    if (options === undefined || options === null) return '{}';
    if (typeof options !== 'object' || isArray(options)) {
      throw new TypeError('kernel.viz.plot: options must be an object');
    }
    const out = {};
    const ks = O.keys(options);
    for (let i = 0; i < ks.length; i++) {
      const k = ks[i];
      const snake = k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
      out[snake] = options[k];
    }
    return toJSONText(out, 'kernel.viz.plot: options');
  }

  const PAINT = { fill: 0, stroke: 1, both: 2, 'fill-and-stroke': 2 };
  function paintOf(paint, what) {
    if (paint === undefined) return 0;
    const p = PAINT[paint];
    if (p === undefined) throw new TypeError(`${what}: paint must be "fill", "stroke" or "both", got ${inspect(paint)}`);
    return p;
  }

  /**
   * kernel.viz.Canvas (class)
   * A drawing surface of at most 2000x2000 pixels, white to start with.
   * Create one with kernel.viz.canvas(width, height). Drawing methods
   * return the canvas, so calls chain; show() renders it as an output.
   */
  class Canvas {
    constructor(handle, width, height) {
      defineProp(this, '_h', { value: handle });
      this.width = width;
      this.height = height;
      freeze(this);
    }
    _op(op, a, b, c, d, e) {
      try { return native.canvasOp(this._h, op, a, b, c, d, e); } catch (err) { rethrow(VizError, err); }
    }
    /**
     * kernel.viz.Canvas#fillColor(color) -> Canvas
     * Set the fill colour (also used for text): a CSS colour name, "#rgb",
     * "#rrggbb", "#rrggbbaa", "rgb(r, g, b)" or "rgba(r, g, b, a)".
     */
    fillColor(color) { this._op('fillColor', requireString(color, 'Canvas.fillColor: color')); return this; }
    /**
     * kernel.viz.Canvas#strokeColor(color) -> Canvas
     * Set the stroke colour (same syntax as fillColor).
     */
    strokeColor(color) { this._op('strokeColor', requireString(color, 'Canvas.strokeColor: color')); return this; }
    /**
     * kernel.viz.Canvas#lineWidth(width) -> Canvas
     * Set the stroke width in pixels.
     */
    lineWidth(width) { this._op('lineWidth', requireNumber(width, 'Canvas.lineWidth: width')); return this; }
    /**
     * kernel.viz.Canvas#rect(x, y, width, height, paint = "fill") -> Canvas
     * A rectangle with its top-left corner at (x, y). `paint` is "fill",
     * "stroke" or "both".
     */
    rect(x, y, width, height, paint) {
      this._op('rect', requireNumber(x, 'Canvas.rect: x'), requireNumber(y, 'Canvas.rect: y'),
        requireNumber(width, 'Canvas.rect: width'), requireNumber(height, 'Canvas.rect: height'),
        paintOf(paint, 'Canvas.rect'));
      return this;
    }
    /**
     * kernel.viz.Canvas#line(x1, y1, x2, y2) -> Canvas
     * A straight line in the stroke colour.
     */
    line(x1, y1, x2, y2) {
      this._op('line', requireNumber(x1, 'Canvas.line: x1'), requireNumber(y1, 'Canvas.line: y1'),
        requireNumber(x2, 'Canvas.line: x2'), requireNumber(y2, 'Canvas.line: y2'));
      return this;
    }
    /**
     * kernel.viz.Canvas#circle(cx, cy, r, paint = "fill") -> Canvas
     * A circle centred on (cx, cy) with radius r.
     */
    circle(cx, cy, r, paint) {
      this._op('circle', requireNumber(cx, 'Canvas.circle: cx'), requireNumber(cy, 'Canvas.circle: cy'),
        requireNumber(r, 'Canvas.circle: r'), paintOf(paint, 'Canvas.circle'));
      return this;
    }
    /**
     * kernel.viz.Canvas#path(points, { closed = false, paint = "stroke" } = {}) -> Canvas
     * A polyline through `points` ([[x, y], ...] or [{x, y}, ...]),
     * closed into a polygon when `closed`.
     */
    path(points, opts) {
      if (!isArray(points)) throw new TypeError('Canvas.path: points must be an array of [x, y] or {x, y}');
      const o = opts === undefined || opts === null ? {} : opts;
      const flat = [];
      for (let i = 0; i < points.length; i++) {
        const p = points[i];
        if (isArray(p)) {
          flat.push(requireNumber(p[0], `Canvas.path: points[${i}][0]`), requireNumber(p[1], `Canvas.path: points[${i}][1]`));
        } else if (p !== null && typeof p === 'object') {
          flat.push(requireNumber(p.x, `Canvas.path: points[${i}].x`), requireNumber(p.y, `Canvas.path: points[${i}].y`));
        } else {
          throw new TypeError(`Canvas.path: points[${i}] must be [x, y] or {x, y}`);
        }
      }
      this._op('path', flat, !!o.closed, o.paint === undefined ? 1 : paintOf(o.paint, 'Canvas.path'));
      return this;
    }
    /**
     * kernel.viz.Canvas#text(x, y, text, size = 16) -> Canvas
     * Text in the fill colour with its baseline starting at (x, y).
     */
    text(x, y, text, size = 16) {
      this._op('text', requireNumber(x, 'Canvas.text: x'), requireNumber(y, 'Canvas.text: y'),
        StringCtor(text), requireNumber(size, 'Canvas.text: size'));
      return this;
    }
    /**
     * kernel.viz.Canvas#show() -> number
     * Render the canvas (SVG and PNG) as a run output; returns the output's
     * index. The canvas stays usable.
     */
    show() { return this._op('show'); }
  }

  const viz = freeze({
    /**
     * kernel.viz.plot(data, options = {}) -> number
     * Draw a chart as a run output (SVG + PNG); returns the output index.
     * The data's shape picks the chart: [1, 4, 9] (line), [[x, y], ...] or
     * [{x, y}, ...] (scatter), {x: [...], y: [...]} (line), {a: [...],
     * b: [...]} (several series with a legend), {label: number, ...} (bar).
     * Options: kind ("line" | "scatter" | "bar" | "histogram"), title,
     * xLabel, yLabel, width, height, bins (histogram), legend (boolean).
     */
    plot: fnName(function (data, options) {
      const d = toJSONText(data, 'kernel.viz.plot: data');
      const o = plotOptions(options);
      try { return native.vizPlot(d, o); } catch (e) { rethrow(VizError, e); }
    }, 'plot'),
    /**
     * kernel.viz.canvas(width, height) -> Canvas
     * A new blank canvas (at most 2000x2000 pixels).
     */
    canvas: fnName(function (width, height) {
      requireNumber(width, 'kernel.viz.canvas: width');
      requireNumber(height, 'kernel.viz.canvas: height');
      let h;
      try { h = native.canvasNew(width, height); } catch (e) { rethrow(VizError, e); }
      return new Canvas(h, width, height);
    }, 'canvas'),
    /**
     * kernel.viz.render3d(scene) -> number
     * Validate a 3D scene and add it as an output for the dashboard:
     * { camera: { position: [x, y, z], target: [x, y, z], fov? },
     *   objects: [ { type: "mesh", vertices: [[x, y, z], ...], faces: [[i, j, k], ...], color? },
     *              { type: "points", points: [[x, y, z], ...], color?, size? },
     *              { type: "lines", points: [[x, y, z], ...], color?, closed? } ] }
     */
    render3d: fnName(function (scene) {
      const s = toJSONText(scene, 'kernel.viz.render3d: scene');
      try { return native.vizRender3d(s); } catch (e) { rethrow(VizError, e); }
    }, 'render3d'),
    Canvas,
  });

  // ------------------------------------------------------------ dom

  function domOp(el, op, a, b) {
    try { return native.domOp(el._h, op, a, b); } catch (e) { rethrow(DomError, e); }
  }
  function wrap(h) {
    return h === null ? null : new Element(h);
  }
  function handleOf(child, what) {
    if (!(child instanceof Element)) throw new TypeError(`${what} must be an Element from kernel.dom`);
    return child._h;
  }

  /**
   * kernel.dom.Element (class)
   * An element of the artifact's own output document. Only safe tags and
   * attributes exist: a forbidden one throws DomError, it is never dropped.
   */
  class Element {
    constructor(handle) {
      defineProp(this, '_h', { value: handle });
      freeze(this);
    }
    /**
     * kernel.dom.Element#tagName -> string
     * The lower-case tag name.
     */
    get tagName() { return domOp(this, 'tagName'); }
    /**
     * kernel.dom.Element#textContent -> string (settable)
     * The text of the element and its descendants; setting it replaces the
     * children with that text (escaped, never parsed as HTML).
     */
    get textContent() { return domOp(this, 'text'); }
    set textContent(text) { domOp(this, 'setText', StringCtor(text)); }
    /**
     * kernel.dom.Element#setAttribute(name, value)
     * Set an allowlisted attribute (id, class, title, href, src, alt,
     * width, height, colspan, data-*, aria-*, SVG geometry and paint...).
     * on* handlers, style, and javascript: URLs are DomError.
     */
    setAttribute(name, value) { domOp(this, 'setAttribute', StringCtor(name), StringCtor(value)); }
    /**
     * kernel.dom.Element#getAttribute(name) -> string | null
     */
    getAttribute(name) { return domOp(this, 'getAttribute', StringCtor(name)); }
    /**
     * kernel.dom.Element#removeAttribute(name) -> boolean
     */
    removeAttribute(name) { return domOp(this, 'removeAttribute', StringCtor(name)); }
    /**
     * kernel.dom.Element#appendChild(child) -> child
     * Append `child` (moving it from its old parent); returns it.
     */
    appendChild(child) { domOp(this, 'appendChild', handleOf(child, 'appendChild: child')); return child; }
    /**
     * kernel.dom.Element#append(...children) -> Element
     * Append several children; strings become <span> text. Returns this.
     */
    append(...children) {
      for (let i = 0; i < children.length; i++) {
        const c = children[i];
        if (c instanceof Element) this.appendChild(c);
        else this.appendChild(createElement('span', { text: StringCtor(c) }));
      }
      return this;
    }
    /**
     * kernel.dom.Element#removeChild(child) -> child
     */
    removeChild(child) { domOp(this, 'removeChild', handleOf(child, 'removeChild: child')); return child; }
    /**
     * kernel.dom.Element#children -> Element[]
     */
    get children() {
      const hs = domOp(this, 'children');
      const out = [];
      for (let i = 0; i < hs.length; i++) out.push(new Element(hs[i]));
      return out;
    }
    /**
     * kernel.dom.Element#querySelector(selector) -> Element | null
     * The first descendant matching a CSS selector (tag, #id, .class,
     * [attr], [attr=value], descendant and child combinators, lists).
     */
    querySelector(selector) { return wrap(domOp(this, 'querySelector', StringCtor(selector))); }
    /**
     * kernel.dom.Element#querySelectorAll(selector) -> Element[]
     */
    querySelectorAll(selector) {
      const hs = domOp(this, 'querySelectorAll', StringCtor(selector));
      const out = [];
      for (let i = 0; i < hs.length; i++) out.push(new Element(hs[i]));
      return out;
    }
  }

  function createElement(tag, props) {
    requireString(tag, 'kernel.dom.createElement: tag');
    let h;
    try { h = native.domCreate(tag); } catch (e) { rethrow(DomError, e); }
    const el = new Element(h);
    if (props !== undefined && props !== null) {
      if (typeof props !== 'object') throw new TypeError('kernel.dom.createElement: props must be an object');
      const ks = O.keys(props);
      for (let i = 0; i < ks.length; i++) {
        const k = ks[i];
        const v = props[k];
        if (k === 'text' || k === 'textContent') el.textContent = v;
        else if (k === 'children') el.append(...v);
        else el.setAttribute(k === 'className' ? 'class' : k, v);
      }
    }
    return el;
  }

  let rootElement = null;
  function root() {
    if (rootElement === null) {
      rootElement = new Element(native.domRoot());
    }
    return rootElement;
  }

  const dom = freeze({
    /**
     * kernel.dom.root -> Element
     * The artifact's container (a div). What is appended to it becomes the
     * run's sanitized text/html output.
     */
    get root() { return root(); },
    /**
     * kernel.dom.createElement(tag, props = {}) -> Element
     * A new detached element. `props` sets attributes, plus `text` (the
     * text content) and `children` (elements or strings to append):
     * createElement("a", { href: "https://example.com", text: "link" }).
     */
    createElement: fnName(createElement, 'createElement'),
    /**
     * kernel.dom.querySelector(selector) -> Element | null
     * Same as kernel.dom.root.querySelector(selector).
     */
    querySelector: fnName(function (selector) { return root().querySelector(selector); }, 'querySelector'),
    /**
     * kernel.dom.querySelectorAll(selector) -> Element[]
     */
    querySelectorAll: fnName(function (selector) { return root().querySelectorAll(selector); }, 'querySelectorAll'),
    Element,
  });

  // ------------------------------------------------------------ quantum

  // Indices match the gate-kind enum in wit/quantum.wit.
  const G = { h: 0, x: 1, y: 2, z: 3, s: 4, t: 5, rx: 6, ry: 7, rz: 8, cnot: 9, cz: 10, swap: 11, measure: 12 };

  /**
   * kernel.quantum.Circuit (class)
   * A quantum circuit on n qubits. Gate methods return the circuit, so
   * they chain: kernel.quantum.circuit(2).h(0).cnot(0, 1).measureAll().
   * Qubit 0 is the least-significant bit of a basis index; bitstrings in
   * counts are written highest qubit first (like Qiskit).
   */
  class Circuit {
    constructor(qubits) {
      this.qubits = qubits;
      this.gates = [];
    }
    _add(kind, qubits, theta) {
      this.gates.push([G[kind], qubits, theta === undefined ? null : theta]);
      return this;
    }
    /** kernel.quantum.Circuit#h(q) -> Circuit  (Hadamard) */
    h(q) { return this._add('h', [q]); }
    /** kernel.quantum.Circuit#x(q) -> Circuit  (Pauli-X, NOT) */
    x(q) { return this._add('x', [q]); }
    /** kernel.quantum.Circuit#y(q) -> Circuit  (Pauli-Y) */
    y(q) { return this._add('y', [q]); }
    /** kernel.quantum.Circuit#z(q) -> Circuit  (Pauli-Z) */
    z(q) { return this._add('z', [q]); }
    /** kernel.quantum.Circuit#s(q) -> Circuit  (phase, sqrt(Z)) */
    s(q) { return this._add('s', [q]); }
    /** kernel.quantum.Circuit#t(q) -> Circuit  (pi/8 gate, sqrt(S)) */
    t(q) { return this._add('t', [q]); }
    /** kernel.quantum.Circuit#rx(theta, q) -> Circuit  (rotation about X, radians) */
    rx(theta, q) { return this._add('rx', [q], requireNumber(theta, 'Circuit.rx: theta')); }
    /** kernel.quantum.Circuit#ry(theta, q) -> Circuit  (rotation about Y) */
    ry(theta, q) { return this._add('ry', [q], requireNumber(theta, 'Circuit.ry: theta')); }
    /** kernel.quantum.Circuit#rz(theta, q) -> Circuit  (rotation about Z) */
    rz(theta, q) { return this._add('rz', [q], requireNumber(theta, 'Circuit.rz: theta')); }
    /** kernel.quantum.Circuit#cnot(control, target) -> Circuit  (also cx) */
    cnot(control, target) { return this._add('cnot', [control, target]); }
    cx(control, target) { return this.cnot(control, target); }
    /** kernel.quantum.Circuit#cz(control, target) -> Circuit */
    cz(control, target) { return this._add('cz', [control, target]); }
    /** kernel.quantum.Circuit#swap(a, b) -> Circuit */
    swap(a, b) { return this._add('swap', [a, b]); }
    /** kernel.quantum.Circuit#measure(q) -> Circuit  (computational basis) */
    measure(q) { return this._add('measure', [q]); }
    /** kernel.quantum.Circuit#measureAll() -> Circuit */
    measureAll() {
      for (let q = 0; q < this.qubits; q++) this.measure(q);
      return this;
    }
    /**
     * kernel.quantum.Circuit#simulate({ shots = 0, seed } = {}) -> { amplitudes, probabilities, counts }
     * Simulate on the host's state-vector simulator. amplitudes is
     * [[re, im], ...] (2^n entries), probabilities [p, ...], counts
     * { bitstring: n } over `shots` samples (reproducible with `seed`).
     */
    simulate(opts) {
      const o = opts === undefined || opts === null ? {} : opts;
      const shots = o.shots === undefined ? 0 : requireNumber(o.shots, 'Circuit.simulate: shots');
      const seed = o.seed === undefined || o.seed === null ? null : requireNumber(o.seed, 'Circuit.simulate: seed');
      try { return native.quantumSimulate(this.qubits, this.gates, shots, seed); } catch (e) { rethrow(QuantumError, e); }
    }
    /**
     * kernel.quantum.Circuit#draw() -> number
     * Draw the circuit diagram as an SVG output; returns the output index.
     */
    draw() {
      try { return native.quantumDraw(this.qubits, this.gates); } catch (e) { rethrow(QuantumError, e); }
    }
  }

  const quantum = freeze({
    /**
     * kernel.quantum.circuit(qubits) -> Circuit
     * A new empty circuit on `qubits` qubits (at most 16).
     */
    circuit: fnName(function (qubits) {
      return new Circuit(requireNumber(qubits, 'kernel.quantum.circuit: qubits'));
    }, 'circuit'),
    Circuit,
  });

  // ------------------------------------------------------------ kernel

  return freeze({
    log,
    storage,
    viz,
    dom,
    quantum,
    /**
     * kernel.exit(code = 0)
     * End the run now with `code` (0 is success). Cannot be caught;
     * output written so far is kept.
     */
    exit: fnName(function (code = 0) {
      let c = NumberCtor(code);
      if (c !== c) c = 1;
      native.exit(c | 0);
    }, 'exit'),
    KernelError,
    StorageError,
    VizError,
    DomError,
    QuantumError,
  });
})

// The dashboard of `llmos serve`: one ES module, plain DOM, no framework.
//
// Rules: every piece of guest text (stdout, errors, sources, summaries,
// prompts) is set with textContent, never parsed as HTML; the page runs
// under a strict CSP (no inline scripts or style attributes, no eval);
// three.js is imported only when the first 3D scene is drawn.

// ------------------------------------------------------------ helpers

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** h('div', {class, testid, text, onclick, ...attributes}, ...children) */
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c); // strings become text nodes
  return el;
}

const MiB = 1024 * 1024;
const fmtMiB = (b) => (b == null ? '–' : `${(b / MiB).toFixed(1)} MiB`);
const fmtMs = (ms) =>
  ms == null ? '–' : ms < 1000 ? `${ms.toFixed(ms < 10 ? 1 : 0)} ms` : `${(ms / 1000).toFixed(2)} s`;
function fmtFuel(n) {
  if (n == null) return '–';
  for (const [d, u] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) if (n >= d) return (n / d).toFixed(n >= 100 * d ? 0 : 1) + u;
  return String(n);
}
const pct = (n, of) => (n != null && of ? ` (${Math.min(100, (100 * n) / of).toFixed(0)}%)` : '');
const statusClass = (s) => 's-' + String(s ?? 'none').replace(/[^a-z_]/gi, '');
const badge = (status, testid) => h('span', { class: `badge ${statusClass(status)}`, testid, text: status ?? '–' });
const link = (text, onclick) => h('button', { type: 'button', class: 'linkish', text, onclick });
const muted = (text, tag = 'span') => h(tag, { class: 'muted', text });
/** Fill a list, or say that it is empty. */
const fill = (el, items, none) => el.replaceChildren(...(items.length ? items : [muted(none, 'li')]));

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}
const errorText = (e) => (e instanceof ApiError ? `${e.code}: ${e.message}` : String(e?.message ?? e));
const errorNote = (e) => h('p', { class: 'err', testid: 'api-error', text: errorText(e) });
let noticeTimer = 0;
/** A background failure, shown in the header for a while. */
function notify(e) {
  $('notice').textContent = errorText(e);
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => ($('notice').textContent = ''), 10000);
}

// ------------------------------------------------------------ API + token

const TOKEN_KEY = 'llmos-token';
let token = sessionStorage.getItem(TOKEN_KEY) || '';
let tokenWait = null;
let tokenResolve = null;

/** Show the token prompt; resolves once a token was entered (shared by concurrent 401s). */
function askToken() {
  if (!tokenWait) {
    tokenWait = new Promise((res) => (tokenResolve = res));
    $('token-box').hidden = false;
    $('token-input').focus();
  }
  return tokenWait;
}
function submitToken() {
  const v = $('token-input').value.trim();
  if (!v || !tokenResolve) return;
  token = v;
  sessionStorage.setItem(TOKEN_KEY, v);
  $('token-input').value = '';
  $('token-box').hidden = true;
  tokenResolve();
  tokenWait = tokenResolve = null;
}

/** fetch with the bearer token; on 401 ask for a token and try again. */
async function request(method, path, body) {
  for (;;) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status !== 401) return r;
    await askToken();
  }
}

/** JSON API call; errors ({"error": {code, message}}) become ApiError. */
async function api(method, path, body) {
  const r = await request(method, path, body);
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: keep the text for the error */
  }
  if (!r.ok) {
    const e = data?.error ?? {};
    throw new ApiError(r.status, e.code ?? `http_${r.status}`, e.message ?? (text || r.statusText));
  }
  return data;
}
const get = (path) => api('GET', path);
const post = (path, body) => api('POST', path, body);

/** Bytes behind an output URL as a blob: URL (an <img src> cannot send the token). */
async function blobUrl(url) {
  const r = await request('GET', url);
  if (!r.ok) throw new ApiError(r.status, `http_${r.status}`, `${url}: ${r.statusText}`);
  return URL.createObjectURL(await r.blob());
}

// ------------------------------------------------------------ event stream

// EventSource cannot send an Authorization header, so the stream is read
// with fetch and parsed here (blocks separated by a blank line; `event:`,
// `data:` lines; lines starting with ':' are keep-alive comments).
async function listen() {
  let delay = 500;
  for (;;) {
    try {
      const r = await request('GET', '/v1/events');
      if (!r.ok || !r.body) throw new Error(`events: HTTP ${r.status}`);
      setConn(true);
      delay = 500;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf = (buf + value).replace(/\r\n/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          try {
            dispatch(block);
          } catch (e) {
            console.error('event handler:', e); // a bug here, not a broken stream
          }
        }
      }
    } catch (e) {
      console.warn('event stream:', e);
    }
    setConn(false);
    await sleep(delay);
    delay = Math.min(delay * 2, 10000);
  }
}

function dispatch(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (!line || line[0] === ':') continue;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length || !handlers[type]) return;
  handlers[type](JSON.parse(data.join('\n')));
}

function setConn(up) {
  $('conn').textContent = up ? '● live' : '○ offline';
  $('conn').classList.toggle('up', up);
}

const handlers = {
  // The boot state when the stream opened. On a reconnect, refetch what the
  // events would have told; a server that boots again shows the boot screen.
  hello: (b) => {
    const again = ready && b.state === 'ready';
    setBoot(b, true);
    if (again) resync();
  },
  boot: (e) => {
    if (e.stage) addStage(e);
    if (e.state === 'ready' || e.state === 'failed') setBoot({ ...boot, state: e.state, boot_ms: e.boot_ms, error: e.error });
  },
  'run.started': (e) => {
    active.set(e.id, { ...e, fuel: null, mem: null, elapsed: 0 });
    renderActive();
  },
  'run.progress': (e) => {
    const r = active.get(e.id);
    if (!r) return;
    Object.assign(r, { fuel: e.fuel_consumed, mem: e.memory_bytes, elapsed: e.elapsed_ms });
    renderActive();
  },
  'run.finished': (e) => {
    const r = active.get(e.id) ?? {};
    active.delete(e.id);
    finished = [{ ...r, ...e, state: 'finished' }, ...finished.filter((x) => x.id !== e.id)].slice(0, 100);
    renderActive();
    renderRunLists();
  },
  'fix.started': (e) => {
    if (!fixes.has(e.id)) fixes.set(e.id, { id: e.id, language: e.language, state: 'running', steps: [] });
    renderFixSelect();
  },
  'fix.step': (e) => fixes.has(e.id) && refreshFix(e.id),
  'fix.finished': (e) => fixes.has(e.id) && refreshFix(e.id),
  'batch.progress': (e) => {
    batches.set(e.id, { state: 'running', ...batches.get(e.id), ...e });
    renderBatches();
  },
  'batch.finished': (e) => {
    batches.set(e.id, { ...batches.get(e.id), ...e, state: 'finished' });
    renderBatches();
    get(`/v1/batches/${enc(e.id)}`).then((b) => (batches.set(b.id, b), renderBatches()), notify);
  },
  'session.cell': (e) => {
    if (notebook?.name === e.session && !cellBusy && !notebook.cells.some((c) => c.cell === e.cell))
      openSession(e.session); // a cell run by another client
    loadSessions();
  },
  lagged: () => resync(),
};

/** Refetch every list (after `lagged` or a reconnect). */
function resync() {
  if (!ready) return;
  loadRuns();
  loadBatches();
  loadSessions();
  if (currentFix) refreshFix(currentFix);
}

// ------------------------------------------------------------ boot

let boot = { state: 'booting', stages: [] };
let ready = false;

function setBoot(b, current = false) {
  if (boot.state !== 'booting' && b.state === 'booting') {
    if (!current) return; // a stale answer
    boot = { state: 'booting', stages: [] }; // the server restarted
    ready = false;
    $('kernel').hidden = true;
    $('boot').classList.add('booting');
    $('boot').open = true;
  }
  const stages = (b.stages?.length ?? 0) >= boot.stages.length ? b.stages : boot.stages;
  boot = { ...boot, ...b, stages: [...(stages ?? [])] };
  renderBoot();
}
function addStage(s) {
  if (boot.stages.some((x) => x.stage === s.stage)) return;
  boot.stages.push(s);
  renderBoot();
}

function renderBoot() {
  $('boot-stages').replaceChildren(
    ...boot.stages.map((s) =>
      h('li', { testid: 'boot-stage' },
        h('span', { class: 'stage', text: s.stage }),
        h('span', { class: 'ms', text: fmtMs(s.ms) }),
        h('span', { class: 'muted', text: s.detail ?? '' })),
    ),
  );
  if (boot.version) $('version').textContent = `v${boot.version}`;
  const el = $('boot');
  if (boot.state === 'failed') {
    $('boot-summary').textContent = 'boot failed';
    $('boot-error').textContent = boot.error ?? 'unknown error';
    $('boot-error').hidden = false;
  } else if (boot.state === 'ready') {
    $('boot-summary').textContent = `booted in ${fmtMs(boot.boot_ms)}`;
    if (!ready) {
      ready = true;
      el.classList.remove('booting');
      el.open = false;
      onReady();
    }
  } else {
    $('boot-summary').textContent = `booting… ${boot.stages.length} stage(s) done`;
  }
}

function onReady() {
  $('kernel').hidden = false;
  loadLanguages().catch(notify);
  resync();
  renderFix();
  renderActive();
}

// ------------------------------------------------------------ outcomes and outputs

/** An outcome (a run's result) as a block: badge, error, value, stdout, stderr, logs, outputs. */
function renderOutcome(o) {
  const facts = [o.language, fmtMs(o.duration_ms),
    o.fuel_consumed != null ? `${fmtFuel(o.fuel_consumed)} fuel` : 'unmetered',
    `${fmtMiB(o.memory_peak_bytes)} peak`];
  const box = h('div', { class: 'outcome' },
    h('div', { class: 'meta' }, badge(o.status, 'run-status'),
      o.id ? link(o.id, () => openRun(o.id)) : null,
      h('span', { class: 'muted', text: facts.join(' · ') })));
  if (o.error) {
    const e = o.error;
    const at = e.line != null ? ` (line ${e.line}${e.column != null ? `, column ${e.column}` : ''})` : '';
    box.append(h('div', { class: 'error', testid: 'run-error' },
      h('strong', { text: `${e.class || e.kind}: ` }), h('span', { text: e.message + at }),
      e.stack?.length ? h('ol', { class: 'stack' }, e.stack.map((f) =>
        h('li', { text: `${f.function || '<module>'}  ${f.file}:${f.line}:${f.column}` }))) : null));
  }
  if (o.trap) box.append(h('pre', { class: 'err', text: `trap: ${o.trap.message}` }));
  if (o.value != null) box.append(h('div', { class: 'value' }, h('span', { class: 'muted', text: '→ ' }),
    h('code', { testid: 'run-value', text: o.value })));
  if (o.stdout) box.append(h('pre', { class: 'stdout', testid: 'run-stdout', text: o.stdout }));
  if (o.stderr) box.append(h('pre', { class: 'stderr', testid: 'run-stderr', text: o.stderr }));
  if (o.truncated?.length) box.append(h('p', { class: 'muted', text: `truncated: ${o.truncated.join(', ')}` }));
  if (o.logs?.length) box.append(h('ul', { class: 'logs' }, o.logs.map((l) =>
    h('li', {}, h('span', { class: `lvl lvl-${statusClass(l.level)}`, text: l.level }), ` ${l.message}`,
      (l.fields ?? []).map(([k, v]) => h('span', { class: 'muted', text: ` ${k}=${v}` }))))));
  if (o.diff) box.append(h('pre', { class: 'code', text: o.diff }));
  if (o.outputs?.length) box.append(h('div', { class: 'outputs' }, o.outputs.map(renderOutput)));
  return box;
}

function renderOutput(out) {
  const fig = h('figure', { class: 'output' }, h('figcaption', { text: `${out.kind} · ${out.summary}` }));
  const item = (mime) => out.items.find((i) => i.mime === mime);
  let it;
  if ((it = item('application/vnd.llmos.scene+json'))) fig.append(sceneView(it.url));
  else if ((it = item('text/html')))
    // The server sends the document with its own sandboxing CSP. An iframe
    // cannot send the bearer token: with a token set, see the report.
    fig.append(h('iframe', { testid: 'output-iframe', sandbox: 'allow-scripts', src: it.url, title: out.summary }));
  else if ((it = item('image/svg+xml') ?? item('image/png'))) {
    const img = h('img', { testid: 'output-img', alt: out.summary });
    blobUrl(it.url).then((u) => (img.src = u), (e) => img.replaceWith(errorNote(e)));
    fig.append(img);
  }
  return fig;
}

// ------------------------------------------------------------ 3D scenes (three.js, loaded on demand)

let three = null;
let renderers = [];

function sceneView(url) {
  const canvas = h('canvas', { testid: 'scene-canvas', class: 'scene', width: 480, height: 320 });
  drawScene(canvas, url).catch((e) => canvas.replaceWith(errorNote(e)));
  return canvas;
}

function parseColor(THREE, s, fallback) {
  const m = /^#([0-9a-f]{6})([0-9a-f]{2})$/i.exec(s ?? '');
  if (m) return { color: new THREE.Color(`#${m[1]}`), opacity: parseInt(m[2], 16) / 255 };
  return { color: new THREE.Color(s ?? fallback), opacity: 1 };
}

function makeObject(THREE, o) {
  const { color, opacity } = parseColor(THREE, o.color, '#3b6fd4');
  const mat = { color, opacity, transparent: opacity < 1 };
  const g = new THREE.BufferGeometry();
  const positions = (pts) => new THREE.Float32BufferAttribute((pts ?? []).flat(), 3);
  if (o.type === 'mesh') {
    g.setAttribute('position', positions(o.vertices));
    // faces are triangles; longer polygons are fanned out
    g.setIndex((o.faces ?? []).flatMap((f) => f.slice(2).flatMap((_, i) => [f[0], f[i + 1], f[i + 2]])));
    g.computeVertexNormals();
    return new THREE.Mesh(g, new THREE.MeshLambertMaterial({ ...mat, wireframe: !!o.wireframe, side: THREE.DoubleSide }));
  }
  g.setAttribute('position', positions(o.points));
  if (o.type === 'points')
    return new THREE.Points(g, new THREE.PointsMaterial({ ...mat, size: o.size ?? 4, sizeAttenuation: false }));
  if (o.type === 'lines') return new (o.closed ? THREE.LineLoop : THREE.Line)(g, new THREE.LineBasicMaterial(mat));
  return new THREE.Group(); // unknown type: nothing to draw
}

async function drawScene(canvas, url) {
  const [THREE, spec] = await Promise.all([(three ??= import('/assets/three.module.js')), get(url)]);
  // Each renderer holds a WebGL context (a browser has few): free those whose canvas is gone.
  renderers = renderers.filter((r) => r.domElement.isConnected || (r.dispose(), r.forceContextLoss(), false));
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderers.push(renderer);
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.setSize(480, 320, false);
  const scene = new THREE.Scene();
  scene.background = parseColor(THREE, spec.background, '#ffffff').color;
  const cam = spec.camera ?? {};
  const camera = new THREE.PerspectiveCamera(cam.fov ?? 60, 480 / 320, 0.01, 10000);
  camera.position.fromArray(cam.position ?? [3, 3, 3]);
  camera.up.fromArray(cam.up ?? [0, 1, 0]);
  const target = new THREE.Vector3().fromArray(cam.target ?? [0, 0, 0]);
  camera.lookAt(target);
  // soft ambient light plus a light that travels with the camera
  scene.add(new THREE.AmbientLight(0xffffff, 0.7), camera);
  const headlight = new THREE.DirectionalLight(0xffffff, 1.2);
  headlight.position.set(0.5, 1, 1);
  camera.add(headlight);
  for (const o of spec.objects ?? []) scene.add(makeObject(THREE, o));
  const draw = () => renderer.render(scene, camera);
  draw();
  canvas.dataset.rendered = 'true';
  orbit(THREE, canvas, camera, target, draw);
}

/** Drag to orbit around the target, wheel to zoom; redraws on demand. */
function orbit(THREE, canvas, camera, target, draw) {
  const sph = new THREE.Spherical().setFromVector3(camera.position.clone().sub(target));
  let last = null;
  const update = () => {
    camera.position.setFromSpherical(sph).add(target);
    camera.lookAt(target);
    draw();
  };
  canvas.addEventListener('pointerdown', (e) => {
    last = [e.clientX, e.clientY];
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener('pointerup', () => (last = null));
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    sph.theta -= (e.clientX - last[0]) * 0.01;
    sph.phi = Math.min(Math.PI - 0.01, Math.max(0.01, sph.phi - (e.clientY - last[1]) * 0.01));
    last = [e.clientX, e.clientY];
    update();
  });
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    sph.radius *= e.deltaY > 0 ? 1.1 : 0.9;
    update();
  }, { passive: false });
}

// ------------------------------------------------------------ run panel

let languages = [];

async function loadLanguages() {
  languages = await get('/v1/languages');
  for (const sel of [$('lang'), $('session-lang')]) {
    const cur = sel.value;
    sel.replaceChildren(...languages.map((l) =>
      h('option', { value: l.name, text: `${l.name} (${l.status})` })));
    sel.value = cur || (languages.some((l) => l.name === 'python') ? 'python' : languages[0]?.name ?? '');
  }
}

/** Tab inserts spaces (Shift+Tab still leaves the field), Ctrl/Cmd+Enter runs. */
function codeKeys(ta, run) {
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      // execCommand keeps the undo history; setRangeText is the fallback
      if (!document.execCommand('insertText', false, '    '))
        ta.setRangeText('    ', ta.selectionStart, ta.selectionEnd, 'end');
    } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run();
    }
  });
}

async function busy(button, fn) {
  button.disabled = true;
  try {
    await fn();
  } finally {
    button.disabled = false;
  }
}

function runEditor() {
  const out = $('run-result');
  return busy($('run'), async () => {
    out.replaceChildren(h('p', { class: 'muted thinking', text: 'running' }));
    try {
      const o = await post('/v1/runs', { language: $('lang').value, source: $('editor').value, wait: true });
      out.replaceChildren(renderOutcome(o));
    } catch (e) {
      out.replaceChildren(errorNote(e));
    }
  });
}

// ------------------------------------------------------------ active runs, error history, recent runs

const active = new Map(); // id → run.started data + live fuel/memory/elapsed
let finished = []; // newest first

async function loadRuns() {
  try {
    const list = await get('/v1/runs');
    finished = list.filter((r) => r.state !== 'running');
    const running = list.filter((r) => r.state === 'running');
    for (const id of active.keys()) if (!running.some((r) => r.id === id)) active.delete(id);
    for (const r of running)
      if (!active.has(r.id))
        active.set(r.id, { ...r, fuel: r.fuel_consumed, mem: r.memory_peak_bytes, elapsed: Date.now() - r.started_ms });
    renderActive();
    renderRunLists();
  } catch (e) {
    notify(e);
  }
}

function renderActive() {
  const rows = [...active.values()].map((r) => h('tr', {},
    h('td', { text: r.id }), h('td', { text: r.language ?? '' }),
    h('td', { class: 'name', text: r.name ?? '', title: r.name ?? '' }),
    h('td', { text: fmtFuel(r.fuel) + pct(r.fuel, r.limits?.fuel) }),
    h('td', { text: (r.mem == null ? '–' : (r.mem / MiB).toFixed(1)) + pct(r.mem, r.limits?.memory_bytes) }),
    h('td', { text: fmtMs(r.elapsed) })));
  $('active').replaceChildren(...(rows.length ? rows
    : [h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'nothing running' }))]));
}

const isError = (r) => r.state === 'failed' || (r.status != null && r.status !== 'ok');

function runEntry(r, testid) {
  return h('li', { testid },
    link(r.id, () => openRun(r.id)), ' ', badge(r.status ?? r.state), ' ',
    h('span', { class: 'muted', text: r.summary || [r.kind, r.language, r.name].filter(Boolean).join(' · ') }));
}

function renderRunLists() {
  const errors = finished.filter(isError).slice(0, 30);
  fill($('errors'), errors.map((r) => runEntry(r, 'error-entry')), 'no errors');
  $('recent').replaceChildren(...finished.slice(0, 12).map((r) => runEntry(r, 'recent-entry')));
}

// ------------------------------------------------------------ trace viewer

function showTrace(title, ...body) {
  showTab('trace');
  $('trace-title').textContent = title;
  $('trace-body').replaceChildren(...body);
}

async function openRun(id) {
  showTrace(`run ${id}`, h('p', { class: 'muted thinking', text: 'loading' }));
  try {
    const r = await get(`/v1/runs/${enc(id)}`);
    showTrace(`run ${id} · ${[r.kind, r.language, r.name, r.state].filter(Boolean).join(' · ')}`,
      r.source ? h('details', {}, h('summary', { text: 'source' }), h('pre', { class: 'code', text: r.source })) : '',
      r.error ? h('p', { class: 'err', text: r.error }) : '',
      r.outcome ? renderOutcome(r.outcome) : '',
      h('h3', { text: 'JSON' }), jsonTree(r.outcome ?? r, null, 0));
  } catch (e) {
    showTrace(`run ${id}`, errorNote(e));
  }
}

async function openFixTrace(id) {
  showTrace(`fix ${id}`, h('p', { class: 'muted thinking', text: 'loading' }));
  try {
    showTrace(`trace of fix ${id}`, jsonTree(await get(`/v1/fixes/${enc(id)}/trace`), null, 0));
  } catch (e) {
    showTrace(`fix ${id}`, errorNote(e));
  }
}

/** JSON as nested <details>; multi-line strings (prompts, answers, code) as <pre>. */
function jsonTree(v, key, depth) {
  const label = key != null ? h('span', { class: 'key', text: `${key}: ` }) : null;
  if (v === null || typeof v !== 'object') {
    const multi = typeof v === 'string' && v.includes('\n');
    return h('div', { class: 'leaf' }, label,
      multi ? h('pre', { class: 'code', text: v })
        : h('span', { class: `j-${v === null ? 'null' : typeof v}`, text: JSON.stringify(v) }));
  }
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  return h('details', { class: 'tree', open: depth < 2 },
    h('summary', {}, label, h('span', { class: 'muted', text: Array.isArray(v) ? `[${v.length}]` : `{${entries.length}}` })),
    entries.map(([k, x]) => jsonTree(x, k, depth + 1)));
}

// ------------------------------------------------------------ refinement console

const fixes = new Map(); // id → GET /v1/fixes/{id}
let currentFix = null;
const fixFetching = new Map(); // id → "fetch again when done"

async function startFix(language, source) {
  try {
    const { id } = await post('/v1/fixes', { language, source });
    fixes.set(id, { id, language, source, state: 'running', steps: [] });
    currentFix = id;
    renderFixSelect();
    renderFix();
    showTab('fix');
    refreshFix(id);
  } catch (e) {
    $('run-result').replaceChildren(errorNote(e));
  }
}

/** GET the fix again (coalesced: at most one request in flight per fix). */
function refreshFix(id) {
  if (fixFetching.has(id)) return void fixFetching.set(id, true);
  fixFetching.set(id, false);
  get(`/v1/fixes/${enc(id)}`)
    .then((f) => {
      fixes.set(id, { ...fixes.get(id), ...f });
      renderFixSelect();
      if (id === currentFix) renderFix();
    }, notify)
    .finally(() => {
      const again = fixFetching.get(id);
      fixFetching.delete(id);
      if (again) refreshFix(id);
    });
}

function renderFixSelect() {
  const sel = $('fix-select');
  const ids = [...fixes.keys()].reverse();
  sel.replaceChildren(...ids.map((id) => h('option', { value: id, text: `${id} · ${fixes.get(id).state}` })));
  if (currentFix) sel.value = currentFix;
}

/** A TraceResult ({"status":"fixed","attempts":1} | {"status":"failed","reason"} | "ok") as text. */
function fixResultText(r) {
  if (r == null) return { status: 'unknown', text: '–' };
  if (typeof r === 'string') return { status: r, text: r };
  const status = r.status ?? 'unknown';
  if (status === 'fixed') return { status, text: `fixed after ${r.attempts} repair${r.attempts === 1 ? '' : 's'}` };
  if (status === 'ok') return { status, text: 'ok as given' };
  return { status, text: r.reason ? `${status}: ${r.reason}` : status };
}

function renderFix() {
  const f = fixes.get(currentFix);
  const rb = $('fix-result');
  $('fix-retry').disabled = $('fix-trace').disabled = !f || f.state === 'running';
  if (!f) {
    $('fix-steps').replaceChildren(h('li', { class: 'muted', text: 'No fix yet: write code in Run, then press Fix.' }));
    rb.textContent = '';
    return;
  }
  const steps = f.steps ?? [];
  $('fix-steps').replaceChildren(...steps.map((s, i) => renderStep(s, f.state === 'running' && i === steps.length - 1)));
  const r = f.state === 'running' ? { status: 'running', text: 'running…' }
    : f.state === 'failed' ? { status: 'failed', text: `failed: ${f.error ?? ''}` } : fixResultText(f.result);
  rb.textContent = r.text;
  rb.dataset.result = r.status;
  rb.className = `badge ${statusClass(r.status)}`;
  $('fix-code').hidden = !f.code;
  $('fix-code').querySelector('pre').textContent = f.code ?? '';
}

function renderStep(s, live) {
  const head = (...what) => h('div', { class: 'step-head' },
    s.attempt != null ? h('span', { class: 'attempt', text: `v${s.attempt}` }) : null, ...what);
  const li = h('li', { testid: 'fix-step', class: `step step-${statusClass(s.step)} ${s.status === 'ok' ? 'step-ok' : ''}` });
  switch (s.step) {
    case 'ran':
      li.append(head('ran ', badge(s.status), ' ', s.run_id ? link(s.run_id, () => openRun(s.run_id)) : ''),
        s.summary ? h('pre', { class: 'err', text: s.summary }) : '');
      break;
    case 'asking':
      // while this is the last step, an animated "asking the model…"
      li.append(head(h('span', { class: live ? 'thinking' : '',
        text: `${live ? 'asking' : 'asked'} the model (${s.strategy})` })));
      break;
    case 'rejected':
      li.append(head('answer rejected'), h('p', { class: 'err', text: s.reason }));
      break;
    case 'llm_failed':
      li.append(head('model call failed'), h('p', { class: 'err', text: s.error }));
      break;
    case 'diff':
      li.append(head('repair'), renderDiff(s.diff ?? ''));
      break;
    case 'finished': {
      const r = fixResultText(s.result);
      li.append(head('finished ', badge(r.status), ' ', r.text));
      break;
    }
    default:
      li.append(head(s.step), h('pre', { text: JSON.stringify(s) }));
  }
  return li;
}

/**
 * A unified diff as rows [old, new] (each {n, t, k} or null): context lines
 * on both sides, a run of removals paired line by line with the additions
 * that follow it.
 */
function parseDiff(text) {
  const rows = [];
  let dels = [];
  let adds = [];
  let o = 0;
  let n = 0;
  let inHunk = false;
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) rows.push([dels[i] ?? null, adds[i] ?? null]);
    dels = [];
    adds = [];
  };
  for (const line of text.replace(/\n$/, '').split('\n')) {
    const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (m) {
      flush();
      if (inHunk) rows.push('gap');
      [o, n, inHunk] = [+m[1], +m[2], true];
    } else if (!inHunk || line.startsWith('\\')) {
      // file headers (---/+++) before the first hunk; "\ No newline at end of file"
    } else if (line[0] === '-') dels.push({ n: o++, t: line.slice(1), k: 'del' });
    else if (line[0] === '+') adds.push({ n: n++, t: line.slice(1), k: 'add' });
    else {
      flush();
      rows.push([{ n: o++, t: line.slice(1), k: '' }, { n: n++, t: line.slice(1), k: '' }]);
    }
  }
  flush();
  return rows;
}

/** Two columns, old left and new right, rows aligned (one line each, no wrapping). */
function renderDiff(text) {
  const rows = parseDiff(text);
  if (!rows.length) return h('pre', { class: 'code', text }); // not a unified diff: as is
  const side = (i) => rows.map((r) => r === 'gap' ? h('div', { class: 'dl gap', text: '⋯' })
    : r[i] ? h('div', { class: `dl ${r[i].k}` }, h('span', { class: 'ln', text: r[i].n }), r[i].t || ' ')
      : h('div', { class: 'dl none', text: ' ' }));
  return h('div', { class: 'diff' },
    h('div', { class: 'dcol', testid: 'diff-old' }, side(0)),
    h('div', { class: 'dcol', testid: 'diff-new' }, side(1)));
}

// ------------------------------------------------------------ notebooks

let notebook = null; // GET /v1/sessions/{name}
let cellBusy = false;

async function loadSessions() {
  try {
    const list = await get('/v1/sessions');
    fill($('sessions'), list.map((s) =>
      h('li', { class: notebook?.name === s.name ? 'on' : '' },
        link(s.name, () => openSession(s.name)), muted(` ${s.language} · ${s.cells} cell(s)`))), 'no sessions');
  } catch (e) {
    notify(e);
  }
}

async function openSession(name) {
  try {
    notebook = await get(`/v1/sessions/${enc(name)}`);
    renderNotebook();
  } catch (e) {
    notify(e);
  }
}

function renderCell(c) {
  return h('div', { class: 'cell', testid: 'cell' },
    h('div', { class: 'cell-src' }, muted(`[${c.cell}]`), h('pre', { class: 'code', text: c.source })),
    c.outcome ? renderOutcome(c.outcome) : muted('run before this server started: no outcome kept', 'p'));
}

function renderNotebook() {
  $('notebook').hidden = !notebook;
  if (!notebook) return;
  $('nb-title').textContent = `${notebook.name} · ${notebook.language}`;
  $('cells').replaceChildren(...notebook.cells.map(renderCell));
}

function newSession() {
  return busy($('new-session'), async () => {
    try {
      const s = await post('/v1/sessions', { language: $('session-lang').value });
      notebook = { ...s, cells: s.cells ?? [] };
      renderNotebook();
      loadSessions();
      $('cell-editor').focus();
    } catch (e) {
      notify(e);
    }
  });
}

function runCell() {
  const source = $('cell-editor').value;
  if (!notebook || !source.trim()) return;
  const name = notebook.name;
  return busy($('run-cell'), async () => {
    cellBusy = true;
    try {
      const r = await post(`/v1/sessions/${enc(name)}/cells`, { source });
      if (notebook?.name !== name) return;
      const cell = { cell: r.cell, source, run_id: r.outcome?.id ?? null, outcome: r.outcome };
      notebook.cells = [...notebook.cells.filter((c) => c.cell !== r.cell), cell].sort((a, b) => a.cell - b.cell);
      $('cell-editor').value = '';
      renderNotebook();
    } catch (e) {
      $('cells').append(errorNote(e));
    } finally {
      cellBusy = false;
    }
  });
}

async function deleteSession() {
  if (!notebook) return;
  try {
    await api('DELETE', `/v1/sessions/${enc(notebook.name)}`);
    notebook = null;
    renderNotebook();
    loadSessions();
  } catch (e) {
    notify(e);
  }
}

// ------------------------------------------------------------ batches

const batches = new Map(); // id → {id, state, total, done, counts, summary}
const idNumber = (id) => Number(/\d+$/.exec(id)?.[0] ?? 0);

async function loadBatches() {
  try {
    for (const b of await get('/v1/batches')) batches.set(b.id, b);
    renderBatches();
  } catch (e) {
    notify(e);
  }
}

function renderBatches() {
  const list = [...batches.values()].sort((a, b) => idNumber(b.id) - idNumber(a.id));
  fill($('batches'), list.map((b) =>
    h('li', { class: 'batch', testid: 'batch' },
      h('div', {}, h('strong', { text: b.id }), ' ', badge(b.state), muted(` ${b.done ?? 0} / ${b.total ?? '?'}`)),
      h('progress', { max: b.total || 1, value: b.done ?? 0 }),
      h('div', {}, Object.entries(b.counts ?? {}).map(([k, n]) =>
        h('span', { class: `chip ${statusClass(k)}`, text: `${k} ${n}` }))),
      b.summary ? jsonTree(b.summary, 'summary', 2) : '')),
  'no batches yet (POST /v1/batches or llmos batch)');
}

// ------------------------------------------------------------ tabs and wiring

function showTab(name) {
  for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('on', b.dataset.tab === name);
  for (const p of document.querySelectorAll('.pane')) p.hidden = p.dataset.pane !== name;
}

function main() {
  for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('token-ok').addEventListener('click', submitToken);
  $('token-input').addEventListener('keydown', (e) => e.key === 'Enter' && submitToken());
  codeKeys($('editor'), runEditor);
  codeKeys($('cell-editor'), runCell);
  $('run').addEventListener('click', runEditor);
  $('fix').addEventListener('click', () => startFix($('lang').value, $('editor').value));
  $('fix-select').addEventListener('change', (e) => {
    currentFix = e.target.value;
    renderFix();
    refreshFix(currentFix);
  });
  $('fix-retry').addEventListener('click', () => {
    const f = fixes.get(currentFix);
    if (f?.source != null) startFix(f.language, f.source);
  });
  $('fix-trace').addEventListener('click', () => currentFix && openFixTrace(currentFix));
  $('new-session').addEventListener('click', newSession);
  $('run-cell').addEventListener('click', runCell);
  $('nb-delete').addEventListener('click', deleteSession);
  // A fallback for a fix in flight when events are missed: poll it.
  setInterval(() => fixes.get(currentFix)?.state === 'running' && refreshFix(currentFix), 2000);

  listen();
  get('/v1/boot').then(setBoot, notify);
}

main();

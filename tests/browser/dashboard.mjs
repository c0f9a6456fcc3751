// Drives the `llmos serve` dashboard in headless Chromium (playwright-core
// with the system browser; nothing is downloaded).
//
//   node tests/browser/dashboard.mjs --url http://127.0.0.1:PORT --out DIR [--token TOKEN]
//
// The server must run with a fake LLM that repairs `print(undefined_name)`.
// Every step leaves a screenshot in DIR. Any console error, page error or
// failed request fails the test. Prints "dashboard: all steps passed".

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../host/dashboard/package.json'));
const { chromium } = require('playwright-core');

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const url = arg('--url');
const out = arg('--out', 'target/dashboard-screenshots');
const token = arg('--token');
if (!url) {
  console.error('usage: node tests/browser/dashboard.mjs --url http://127.0.0.1:PORT --out DIR [--token TOKEN]');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

const STEP_TIMEOUT = Number(process.env.DASHBOARD_TIMEOUT_MS || 60000);

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
page.setDefaultTimeout(STEP_TIMEOUT);

const problems = [];
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  // The 401 that makes the dashboard ask for the token is expected when one is given.
  if (token && /status of 401/.test(m.text())) return;
  problems.push(`console error: ${m.text()} (${m.location().url}:${m.location().lineNumber})`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.stack || e.message}`));
page.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));

const T = (id) => page.getByTestId(id);
const result = () => T('run-result');
const shot = (name) => page.screenshot({ path: path.join(out, name), fullPage: true });
const log = (s) => console.log(`dashboard: ${s}`);

async function run(language, source) {
  await T('tab-run').click();
  await T('lang-select').selectOption(language);
  await T('editor').fill(source);
  await T('run-button').click();
  const status = result().getByTestId('run-status');
  await status.waitFor();
  return (await status.textContent()).trim();
}

try {
  // a. boot
  await page.goto(url);
  if (token) {
    await T('token-input').waitFor();
    await T('token-input').fill(token);
    await T('token-submit').click();
  }
  await T('kernel-ready').waitFor();
  const stages = await T('boot-stage').count();
  check(stages >= 3, `expected at least 3 boot stages, found ${stages}`);
  await page.locator('#boot-summary').click(); // open the collapsed stage list for the picture
  await shot('boot.png');
  await page.locator('#boot-summary').click();
  log(`a. booted, ${stages} stages`);

  // b. a python run
  let status = await run('python', 'print("hello")\n6*7');
  check(status === 'ok', `run status: ${status}`);
  const stdout = await result().getByTestId('run-stdout').textContent();
  check(stdout.includes('hello'), `stdout: ${JSON.stringify(stdout)}`);
  await shot('run.png');
  log('b. python run ok');

  // c. a chart
  status = await run('python', 'from llmos import viz\nviz.plot([1, 4, 9, 16])');
  check(status === 'ok', `plot status: ${status}`);
  await page.waitForFunction(() => {
    const img = document.querySelector('[data-testid=run-result] [data-testid=output-img]');
    return img && img.complete && img.naturalWidth > 0;
  });
  await shot('plot.png');
  log('c. chart shown');

  // d. a 3D scene from JavaScript, drawn with three.js (WebGL via SwiftShader)
  status = await run('javascript',
    'kernel.viz.render3d({camera:{position:[3,3,3],target:[0,0,0]},objects:[{type:"mesh",vertices:[[0,0,0],[1,0,0],[0,1,0]],faces:[[0,1,2]],color:"#ff0000"}]})');
  check(status === 'ok', `scene status: ${status}`);
  await result().locator('[data-testid=scene-canvas][data-rendered="true"]').waitFor();
  const pixels = await page.evaluate(() => {
    const gl = document.querySelector('[data-testid=run-result] [data-testid=scene-canvas]');
    const c = document.createElement('canvas');
    c.width = gl.width;
    c.height = gl.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(gl, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let red = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] > 120 && d[i + 1] < 60 && d[i + 2] < 60) red++;
      colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return { red, colours: colours.size, total: d.length / 4 };
  });
  check(pixels.colours > 1, `the scene is one flat colour (${JSON.stringify(pixels)})`);
  check(pixels.red > 100, `no red triangle in the scene (${JSON.stringify(pixels)})`);
  await shot('scene.png');
  log(`d. scene drawn (${pixels.red} red pixels of ${pixels.total})`);

  // e. the refinement console: a failing program, repaired by the (fake) LLM
  await T('tab-run').click();
  await T('lang-select').selectOption('python');
  await T('editor').fill('print(undefined_name)');
  await T('fix-button').click();
  await T('fix-console').waitFor();
  await page.locator('[data-testid=fix-result][data-result]:not([data-result=running])').waitFor();
  const fixResult = (await T('fix-result').textContent()).trim();
  const fixStatus = await T('fix-result').getAttribute('data-result');
  check(fixStatus === 'fixed' && fixResult.includes('fixed'), `fix result: ${fixStatus} ${JSON.stringify(fixResult)}`);
  for (const side of ['diff-old', 'diff-new']) {
    const el = T(side).first();
    await el.waitFor();
    check((await el.textContent()).trim() !== '', `${side} is empty`);
  }
  const fixSteps = await T('fix-step').count();
  check(fixSteps >= 3, `expected at least 3 fix steps, found ${fixSteps}`);
  await shot('fix.png');
  await T('fix-trace-button').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=trace-viewer]')?.textContent.includes('attempts'));
  log(`e. fixed (${fixResult}), ${fixSteps} steps, trace shown`);

  // f. a notebook
  await T('tab-sessions').click();
  await T('session-lang').selectOption('python');
  await T('new-session-button').click();
  await T('notebook').waitFor();
  for (const [n, source] of [[1, 'x = 41'], [2, 'x + 1']]) {
    await T('cell-editor').fill(source);
    await T('run-cell-button').click();
    await page.waitForFunction((k) => document.querySelectorAll('[data-testid=notebook] [data-testid=cell]').length >= k, n);
  }
  const cells = T('notebook').getByTestId('cell');
  check((await cells.count()) === 2, `expected 2 cells, found ${await cells.count()}`);
  const second = cells.nth(1);
  const shown = await second.locator('[data-testid=run-value], [data-testid=run-stdout]').allTextContents();
  check(shown.some((t) => t.trim() === '42'), `second cell shows ${JSON.stringify(shown)}, not 42`);
  await shot('notebook.png');
  log('f. notebook: x + 1 = 42');

  // g. active runs and the error history (the fix's first, failing attempt)
  check((await T('active-runs').count()) === 1, 'no active-runs table');
  await T('error-history').waitFor();
  const errors = T('error-history').getByTestId('error-entry');
  await errors.first().waitFor();
  const nErrors = await errors.count();
  await errors.first().locator('button').first().click();
  await page.locator('[data-testid=trace-viewer] [data-testid=run-status]').first().waitFor();
  log(`g. ${nErrors} error(s) in the history, opened in the trace viewer`);
} catch (e) {
  console.error(`dashboard: FAILED: ${e.stack || e}`);
  await shot('failure.png').catch(() => {});
  for (const p of problems) console.error(`  ${p}`);
  await browser.close();
  process.exit(1);
}

if (problems.length) {
  console.error(`dashboard: ${problems.length} problem(s) in the page:`);
  for (const p of problems) console.error(`  ${p}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log('dashboard: all steps passed');

// llmos self-test (system volume, trusted tier): exercises every kernel API
// from JavaScript and prints one line per check.
const checks = [];
function check(name, f) {
  try { const r = f(); checks.push(`${r === false ? 'FAIL' : 'ok  '} ${name}`); }
  catch (e) { checks.push(`FAIL ${name}: ${e.name}: ${e.message}`); }
}
check('log', () => { kernel.log.info('selftest', { lang: 'js' }); });
check('storage', () => { kernel.storage.set('selftest', { n: 1 }); return kernel.storage.get('selftest').n === 1 && kernel.storage.delete('selftest'); });
check('viz.plot', () => kernel.viz.plot([1, 2, 3]) >= 0);
check('viz.canvas', () => kernel.viz.canvas(10, 10).fillColor('red').rect(0, 0, 5, 5).show() >= 0);
check('dom', () => { kernel.dom.root.appendChild(kernel.dom.createElement('p', { text: 'ok' })); return kernel.dom.querySelector('p').textContent === 'ok'; });
check('quantum', () => Math.abs(kernel.quantum.circuit(1).h(0).simulate().probabilities[0] - 0.5) < 1e-12);
for (const c of checks) console.log(c);
if (checks.some((c) => c.startsWith('FAIL'))) kernel.exit(1);

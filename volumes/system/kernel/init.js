// llmos init script for JavaScript sandboxes.
//
// Runs once at sandbox start, after the prelude (console, timers) and the
// standard library, inside the interpreter snapshot that every run starts
// from: nothing here costs anything per run. Like stdlib.js it is compiled
// under an internal file name, so it never shifts an artifact's lines.
//
// The completion value is a function the guest calls with the `kernel`
// object built by stdlib.js. It decides what artifacts see as globals.
(function (kernel) {
  'use strict';

  // The one global way out of the sandbox. Not writable or configurable, so
  // an artifact cannot replace it for code that runs after it.
  Object.defineProperty(globalThis, 'kernel', {
    value: kernel,
    writable: false,
    enumerable: false,
    configurable: false,
  });
})

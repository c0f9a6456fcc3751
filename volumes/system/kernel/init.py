"""llmos init script for Python sandboxes.

Runs once at sandbox start: the Python guest executes it while the
component is built (componentize-py snapshots the interpreter afterwards),
so nothing here costs anything per run, and it cannot shift an artifact's
line numbers. It decides what every artifact finds ready.
"""

# The kernel API and its submodules, imported into the snapshot so that
# `import llmos` / `from llmos import storage` cost nothing at run time.
import llmos
import llmos.dom
import llmos.log
import llmos.quantum
import llmos.storage
import llmos.viz

# Artifacts see `llmos` like any installed package; nothing else of the
# kernel is global (the guest removes this module from sys.modules).

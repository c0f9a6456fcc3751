# llmos self-test (system volume, trusted tier): exercises every kernel API
# from Python and prints one line per check.
import math
from llmos import log, storage, viz, dom, quantum

checks = []


def check(name, f):
    try:
        r = f()
        checks.append(("FAIL " if r is False else "ok   ") + name)
    except Exception as e:
        checks.append("FAIL %s: %s: %s" % (name, type(e).__name__, e))


def store():
    storage.set("selftest", {"n": 1})
    return storage.get("selftest")["n"] == 1 and storage.delete("selftest")


def document():
    dom.root().append_child(dom.create_element("p", text="ok"))
    return dom.query_selector("p").text == "ok"


check("log", lambda: log.info("selftest", lang="python"))
check("storage", store)
check("viz.plot", lambda: viz.plot([1, 2, 3]) >= 0)
check("viz.canvas", lambda: viz.canvas(10, 10).fill_color("red").rect(0, 0, 5, 5).show() >= 0)
check("dom", document)
check("quantum", lambda: math.isclose(quantum.Circuit(1).h(0).simulate().probabilities[0], 0.5))
print("\n".join(checks))
if any(c.startswith("FAIL") for c in checks):
    raise SystemExit(1)

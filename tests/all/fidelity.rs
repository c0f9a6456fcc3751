//! Fidelity under hostile input (issue 9): whatever text, nesting or stack
//! tampering an artifact throws at the guest, the outcome is the language's
//! own error (class, line) or success — never a trap — it ends quickly, and
//! the host's peak RSS stays bounded.

use std::sync::Once;
use std::time::Duration;

use llmos_tests::{fixture_path, measure_llmos, scratch_data_dir};
use serde_json::Value;

/// Wall-time bound for one hostile run (default limits, 2 shared cores).
const WALL: Duration = Duration::from_secs(6);
/// Peak RSS bound for the whole `llmos` process.
const RSS: u64 = 640 << 20;

/// Compile both components into the cache once, so the bounds measure the
/// hostile run, not Cranelift.
fn warm() {
    static WARM: Once = Once::new();
    WARM.call_once(|| {
        for f in ["hostile/surrogate_value.js", "hostile/surrogate_value.py"] {
            let p = fixture_path(f);
            measure_llmos(
                &["run", p.to_str().expect("utf-8 path"), "--json"],
                &scratch_data_dir("fidelity-warm"),
            );
        }
    });
}

/// Run a hostile fixture through the CLI; check time and memory bounds;
/// return the `--json` outcome.
fn hostile(rel: &str) -> Value {
    warm();
    let p = fixture_path(&format!("hostile/{rel}"));
    let name = format!("fidelity-{}", rel.replace(['/', '.'], "-"));
    let m = measure_llmos(
        &["run", p.to_str().expect("utf-8 path"), "--json"],
        &scratch_data_dir(&name),
    );
    let j = m.json();
    assert!(m.wall < WALL, "{rel}: took {:?}: {j}", m.wall);
    assert!(
        m.max_rss_bytes < RSS,
        "{rel}: peak RSS {} MiB",
        m.max_rss_bytes >> 20
    );
    j
}

fn status(j: &Value) -> &str {
    j["status"].as_str().unwrap_or("")
}

/// Status `error` with this class and line (and a column).
fn assert_error(rel: &str, class: &str, line: u64) -> Value {
    let j = hostile(rel);
    assert_eq!(status(&j), "error", "{rel}: {j}");
    let e = &j["error"];
    assert_eq!(e["class"], class, "{rel}: {j}");
    assert_eq!(e["line"], line, "{rel}: {j}");
    assert!(e["column"].as_u64().is_some(), "{rel}: {j}");
    j
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

#[test]
fn js_lone_surrogates_are_errors_not_traps() {
    let j = assert_error("surrogate_error.js", "Error", 2);
    assert_eq!(text(&j["error"]["message"]), "\u{FFFD} bad");

    let j = assert_error("surrogate_throw.js", "string", 3);
    assert_eq!(text(&j["error"]["message"]), "\u{FFFD} str");

    let j = hostile("surrogate_names.js");
    assert_eq!(status(&j), "error", "{j}");
    let e = &j["error"];
    // One bad code unit is one U+FFFD, never three.
    assert_eq!(text(&e["class"]), "Bad\u{FFFD}Name", "{j}");
    assert_eq!(text(&e["message"]), "x\u{FFFD}", "{j}");
    let frames = e["stack"].as_array().cloned().unwrap_or_default();
    assert!(
        frames
            .iter()
            .any(|f| text(&f["function"]) == "f\u{FFFD}" && f["line"] == 4),
        "{j}"
    );
    let globals = e["globals"].as_array().cloned().unwrap_or_default();
    assert!(globals.iter().any(|g| g["name"] == "v"), "{j}");

    let j = hostile("surrogate_value.js");
    assert_eq!(status(&j), "ok", "{j}");
    assert!(text(&j["value"]).starts_with("'abc"), "{j}");
}

#[test]
fn python_lone_surrogates_are_errors_not_traps() {
    for rel in ["surrogate_error.py", "surrogate_escape.py"] {
        let j = assert_error(rel, "ValueError", 3);
        assert_eq!(text(&j["error"]["message"]), "\u{FFFD}", "{rel}: {j}");
        assert!(j["trap"].is_null(), "{rel}: {j}");
    }
    let j = hostile("surrogate_value.py");
    assert_eq!(status(&j), "ok", "{j}");
    assert_eq!(text(&j["value"]), "'abc\\ud800'", "{j}");
}

#[test]
fn js_stack_tampering_cannot_hide_the_position() {
    let j = assert_error("stack_tamper.js", "TypeError", 8);
    assert_eq!(j["error"]["column"], 3, "{j}");
    let j = assert_error("throw_getters.js", "Object", 9);
    assert_eq!(j["error"]["column"], 9, "{j}");
}

#[test]
fn python_exception_tampering_cannot_hide_the_position() {
    let j = assert_error("str_raises.py", "Renamed", 9);
    assert!(text(&j["error"]["message"]).contains("unprintable"), "{j}");
    assert_error("traceback_none.py", "ZeroDivisionError", 7);
}

#[test]
fn python_deep_structures_never_trap() {
    for rel in ["deep_list_free.py", "deep_tuple_free.py"] {
        let j = hostile(rel);
        assert_eq!(status(&j), "ok", "{rel}: {j}");
    }
    // A million nested dicts outgrow the default memory limit: a
    // MemoryError, reported without freeing the structure recursively.
    let j = hostile("deep_dict_free.py");
    let ok = status(&j) == "ok" || j["error"]["class"] == "MemoryError";
    assert!(ok, "{j}");
    assert!(j["trap"].is_null() || status(&j) == "memory_limit", "{j}");
    assert_ne!(status(&j), "stack_overflow", "{j}");

    let j = assert_error("deep_list_value.py", "RecursionError", 5);
    assert!(j["trap"].is_null(), "{j}");
}

/// Not fixed yet: CPython's repr guard measures the shadow stack, which
/// list_repr barely uses, and Py_ReprEnter is linear per level, so print()
/// of a 10^6-deep list burns the fuel budget.
#[test]
#[ignore = "needs a CPython-level fix (repr depth on wasm)"]
fn python_print_of_a_deep_list_is_a_recursion_error() {
    let j = assert_error("deep_list_print.py", "RecursionError", 5);
    assert!(j["trap"].is_null(), "{j}");
}

/// QuickJS-ng disables its C stack limit on WASI and JSON.stringify's
/// cycle check is linear per level; guests/quickjs/patches caps the nesting
/// at 5 000 levels with a RangeError, so a million levels fail fast.
#[test]
fn js_json_stringify_of_a_deep_object_is_a_range_error() {
    let j = hostile("json_deep.js");
    assert_eq!(status(&j), "ok", "{j}");
    assert_eq!(text(&j["value"]), "'RangeError'", "{j}");
}

#[test]
fn js_json_stringify_keeps_honest_nesting_and_cycle_errors() {
    let j = hostile("json_nesting.js");
    assert_eq!(status(&j), "ok", "{j}");
    assert_eq!(text(&j["value"]), "'19995,[{\"a\":,TypeError'", "{j}");
    // The cycle check is a pointer scan: 5 000 levels stay cheap.
    assert!(
        j["fuel_consumed"]
            .as_u64()
            .is_some_and(|f| f < 1_000_000_000),
        "{j}"
    );
}

#[test]
fn js_huge_spread_is_catchable() {
    // QuickJS refuses more than 65535 arguments with a RangeError, which the
    // artifact catches and goes on. (With 10^7 elements the spread copy runs
    // out of memory first: QuickJS's catchable InternalError, not RangeError.)
    let j = hostile("spread_huge.js");
    assert_eq!(status(&j), "ok", "{j}");
    assert_eq!(text(&j["value"]), "'RangeError,RangeError'", "{j}");
}

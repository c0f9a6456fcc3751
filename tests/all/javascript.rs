//! JavaScript (QuickJS) guest: values, output and error reports.

use llmos::Status;
use llmos::outcome::ErrorKind;
use llmos_tests::{run, run_fixture};

#[test]
fn success_with_stdout_stderr_and_value() {
    let o = run_fixture("js", "js/hello.js", Default::default());
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.language, "javascript");
    assert_eq!(o.stdout, "primes: 2, 3, 5, 7, 11\n");
    assert_eq!(o.stderr, "a note on stderr\n");
    assert_eq!(o.value.as_deref(), Some("28"));
    assert!(o.error.is_none());
    assert!(o.fuel_consumed.is_some_and(|f| f > 0));
    assert!(o.memory_peak_bytes > 0);
}

#[test]
fn completion_values_are_displayed() {
    assert_eq!(run("js", "1+1").value.as_deref(), Some("2"));
    assert_eq!(run("js", "'hi'").value.as_deref(), Some("'hi'"));
    assert_eq!(run("js", "let x = 1;").value, None);
    assert_eq!(run("js", "undefined").value, None);
    let o = run("js", "({a: 1, b: [1, 2]})");
    assert_eq!(o.value.as_deref(), Some("{ a: 1, b: [ 1, 2 ] }"));
}

#[test]
fn promises_are_settled() {
    let o = run("js", "async function f() { return 42; }\nf()");
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("42"));
    let o = run(
        "js",
        "async function f() {\n  throw new RangeError('nope');\n}\nf()",
    );
    assert_eq!(o.status, Status::Error, "{o:?}");
    let e = o.error.expect("error");
    assert_eq!(
        (e.class.as_str(), e.message.as_str(), e.line),
        ("RangeError", "nope", Some(2))
    );
}

#[test]
fn exception_in_nested_function_has_class_line_column_and_stack() {
    let o = run_fixture("js", "js/nested_error.js", Default::default());
    assert_eq!(o.status, Status::Error);
    let e = o.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert_eq!(e.class, "TypeError");
    assert_eq!(e.message, "cannot read property 'toUpperCase' of null");
    assert_eq!((e.line, e.column), (Some(3), Some(10)));
    let frames: Vec<_> = e
        .stack
        .iter()
        .map(|f| (f.function.as_str(), f.line))
        .collect();
    assert_eq!(frames, [("<eval>", 8), ("load", 6), ("parse", 3)]);
    assert!(e.stack.iter().all(|f| f.file == "nested_error.js"));
}

#[test]
fn reference_error_points_at_the_name() {
    let o = run_fixture("js", "js/reference_error.js", Default::default());
    let e = o.error.expect("error");
    assert_eq!(e.class, "ReferenceError");
    assert_eq!(e.message, "itme is not defined");
    assert_eq!((e.line, e.column), (Some(3), Some(31)));
}

#[test]
fn syntax_error_has_line_and_column() {
    let o = run_fixture("js", "js/syntax_error.js", Default::default());
    assert_eq!(o.status, Status::Error);
    let e = o.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.class, "SyntaxError");
    assert_eq!((e.line, e.column), (Some(3), Some(18)));
}

#[test]
fn runtime_syntax_error_is_not_a_syntax_kind() {
    let o = run("js", "const s = '{';\nJSON.parse(s);");
    let e = o.error.expect("error");
    assert_eq!(e.class, "SyntaxError");
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert_eq!(e.line, Some(2));
}

#[test]
fn thrown_non_errors_are_reported() {
    let o = run("js", "throw 'plain string';");
    let e = o.error.expect("error");
    assert_eq!(e.message, "plain string");
    assert_eq!(o.status, Status::Error);
}

#[test]
fn kernel_exit_ends_the_run_with_its_code() {
    let o = run(
        "js",
        "console.log('bye');\ntry { kernel.exit(3); } catch (e) { console.log('caught'); }\nconsole.log('after');",
    );
    assert_eq!(o.status, Status::Error, "{o:?}");
    assert_eq!(o.stdout, "bye\n");
    let e = o.error.expect("error");
    assert_eq!((e.kind, e.exit_code), (ErrorKind::Exit, Some(3)));
    assert_eq!(run("js", "kernel.exit(0)").status, Status::Ok);
}

#[test]
fn kernel_log_is_captured() {
    let o = run(
        "js",
        "kernel.log.info('hello', {n: 1});\nkernel.log.error('bad');",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.logs.len(), 2);
    assert_eq!(o.logs[0].message, "hello");
    assert_eq!(o.logs[0].fields, vec![("n".to_string(), "1".to_string())]);
}

#[test]
fn the_interpreter_is_preinitialised_at_build_time() {
    // Building a QuickJS runtime, context and prelude costs ~3.7M fuel; the
    // Wizer snapshot made by `make guests` (llmos-preinit) leaves only the run.
    let o = run("js", "1+1");
    assert!(
        o.fuel_consumed.is_some_and(|f| f < 1_000_000),
        "{:?}",
        o.fuel_consumed
    );
    // And each run still starts clean: globals do not leak between runs.
    assert_eq!(run("js", "globalThis.leak = 41").status, Status::Ok);
    assert_eq!(
        run("js", "typeof leak").value.as_deref(),
        Some("'undefined'")
    );
}

#[test]
fn set_timeout_callbacks_run_in_due_order_with_their_arguments() {
    let o = run(
        "js",
        "setTimeout(() => console.log('20'), 20);\n\
         setTimeout((a, b) => console.log('10', a, b), 10, 'x', 'y');\n\
         setTimeout(() => console.log('0'), NaN);",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.stdout, "0\n10 x y\n20\n");
    assert!(o.duration_ms >= 20.0, "{o:?}");
}

#[test]
fn awaiting_a_timer_settles_the_completion_promise() {
    let o = run(
        "js",
        "async function f() {\n  await new Promise(r => setTimeout(r, 20));\n  return 42;\n}\nf()",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("42"));
    // Top-level await in a script.
    let o = run("js", "await new Promise(r => setTimeout(r, 10));\n'done'");
    assert_eq!(o.value.as_deref(), Some("'done'"), "{o:?}");
}

#[test]
fn clear_timeout_prevents_the_callback() {
    let o = run(
        "js",
        "const t = setTimeout(() => console.log('never'), 10);\n\
         setTimeout(() => console.log('kept'), 20);\n\
         clearTimeout(t);\nclearTimeout(12345);\nclearTimeout();",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.stdout, "kept\n");
}

#[test]
fn set_interval_ticks_until_cleared() {
    let o = run(
        "js",
        "let n = 0;\nconst iv = setInterval((s) => {\n  console.log(s, ++n);\n  if (n === 3) clearInterval(iv);\n}, 5, 'tick');",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.stdout, "tick 1\ntick 2\ntick 3\n");
}

#[test]
fn exception_in_a_timer_callback_has_class_line_and_column() {
    let o = run(
        "js",
        "console.log('start');\nsetTimeout(() => {\n  null.x;\n}, 5);\nsetTimeout(() => console.log('never'), 50);",
    );
    assert_eq!(o.status, Status::Error, "{o:?}");
    assert_eq!(o.stdout, "start\n");
    let e = o.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert_eq!(e.class, "TypeError");
    assert_eq!((e.line, e.column), (Some(3), Some(3)));
}

#[test]
fn kernel_exit_in_a_timer_callback_ends_the_run() {
    let o = run(
        "js",
        "setInterval(() => {}, 1);\nsetTimeout(() => kernel.exit(7), 5);",
    );
    let e = o.error.expect("error");
    assert_eq!((e.kind, e.exit_code), (ErrorKind::Exit, Some(7)));
}

#[test]
fn an_interval_never_cleared_runs_until_the_timeout() {
    let o = llmos_tests::run_with("js", "setInterval(() => {}, 5)", |req| {
        req.limits.timeout = std::time::Duration::from_millis(300);
    });
    assert_eq!(o.status, Status::Timeout, "{o:?}");
    assert!(o.duration_ms < 5000.0, "took {} ms", o.duration_ms);
}

#[test]
fn top_level_variables_are_captured_with_the_error() {
    let o = run(
        "javascript",
        "const items = [1, 2, 3];\nlet total = 0;\nvar label = 'sum';\nfunction add(x) { return x.value + 1; }\nlet late;\ntotal = add(undefined);\nconst never = 1;\n",
    );
    let e = o.error.expect("error");
    let got: Vec<(String, String, String)> = e
        .globals
        .iter()
        .map(|v| (v.name.clone(), v.type_name.clone(), v.preview.clone()))
        .collect();
    for want in [
        ("items", "Array", "[ 1, 2, 3 ]"),
        ("total", "number", "0"),
        ("label", "string", "'sum'"),
        ("late", "undefined", "undefined"),
    ] {
        assert!(
            got.iter()
                .any(|g| (g.0.as_str(), g.1.as_str(), g.2.as_str()) == want),
            "{want:?} not in {got:?}"
        );
    }
    // Functions, builtins, the kernel object and uninitialised bindings are left out.
    for absent in ["add", "kernel", "console", "never"] {
        assert!(!got.iter().any(|g| g.0 == absent), "{absent} in {got:?}");
    }
}

//! Python (CPython) guest: values, output and error reports.

use llmos::Status;
use llmos::outcome::ErrorKind;
use llmos_tests::{run, run_fixture};

#[test]
fn success_with_stdout_and_value() {
    let o = run_fixture("python", "python/hello.py", Default::default());
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.language, "python");
    assert_eq!(o.stdout, "primes: 2, 3, 5, 7, 11\n");
    assert_eq!(o.value.as_deref(), Some("5.6"));
}

#[test]
fn last_expression_value_is_its_repr() {
    assert_eq!(run("python", "1+1").value.as_deref(), Some("2"));
    assert_eq!(run("python", "'hi'").value.as_deref(), Some("'hi'"));
    assert_eq!(run("python", "x = 1").value, None);
    assert_eq!(run("python", "None").value, None);
    assert_eq!(run("python", "print('a')").value, None);
}

#[test]
fn curated_stdlib_is_available() {
    let src = "import json, math, random, re, statistics, collections, itertools, functools, datetime, \
               decimal, fractions, dataclasses, typing, textwrap, string, heapq, bisect, copy, traceback, \
               io, base64, hashlib, uuid, csv, difflib\n\
               hashlib.sha256(b'x').hexdigest()[:8]";
    let o = run("python", src);
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("'2d711642'"));
}

#[test]
fn exception_in_nested_function_has_class_line_column_and_stack() {
    let o = run_fixture("python", "python/nested_error.py", Default::default());
    assert_eq!(o.status, Status::Error);
    let e = o.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert_eq!(e.class, "ZeroDivisionError");
    assert_eq!(e.message, "division by zero");
    assert_eq!((e.line, e.column), (Some(3), Some(12)));
    let frames: Vec<_> = e
        .stack
        .iter()
        .map(|f| (f.function.as_str(), f.line))
        .collect();
    assert_eq!(frames, [("<module>", 8), ("average", 6), ("ratio", 3)]);
}

#[test]
fn name_error_points_at_the_name() {
    let o = run_fixture("python", "python/name_error.py", Default::default());
    let e = o.error.expect("error");
    assert_eq!(e.class, "NameError");
    assert_eq!((e.line, e.column), (Some(3), Some(26)));
}

#[test]
fn syntax_error_has_line_and_column() {
    let o = run_fixture("python", "python/syntax_error.py", Default::default());
    let e = o.error.expect("error");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.class, "SyntaxError");
    assert_eq!((e.line, e.column), (Some(3), Some(14)));
}

#[test]
fn sys_exit_reports_its_code() {
    let o = run_fixture("python", "hostile/exit.py", Default::default());
    assert_eq!(o.status, Status::Error);
    assert_eq!(o.stdout, "leaving\n");
    let e = o.error.expect("error");
    assert_eq!((e.kind, e.exit_code), (ErrorKind::Exit, Some(3)));
    assert_eq!(run("python", "import sys\nsys.exit(0)").status, Status::Ok);
}

#[test]
fn os_exit_ends_the_instance_with_its_code() {
    let o = run_fixture("python", "hostile/os_exit.py", Default::default());
    assert_eq!(o.status, Status::Error, "{o:?}");
    assert_eq!(o.stdout, "leaving hard\n");
    let e = o.error.expect("error");
    assert_eq!((e.kind, e.exit_code), (ErrorKind::Exit, Some(3)));
}

#[test]
fn kernel_log_is_captured() {
    let o = run("python", "from llmos import log\nlog.warn('careful', n=2)");
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.logs.len(), 1);
    assert_eq!(o.logs[0].message, "careful");
    assert_eq!(o.logs[0].fields, vec![("n".to_string(), "2".to_string())]);
}

#[test]
fn each_run_starts_from_a_clean_interpreter() {
    assert_eq!(run("python", "leak = 41").status, Status::Ok);
    let o = run("python", "leak + 1");
    assert_eq!(o.error.map(|e| e.class).as_deref(), Some("NameError"));
}

#[test]
fn misspelt_names_carry_python_s_suggestion() {
    let o = run("python", "lenght = 3\nprint(lenth)");
    let e = o.error.expect("error");
    assert_eq!(e.class, "NameError");
    assert_eq!(
        e.message,
        "name 'lenth' is not defined. Did you mean: 'lenght'?"
    );
    let o = run("python", "import math\nmath.sqr(2)");
    let e = o.error.expect("error");
    assert_eq!(e.class, "AttributeError");
    assert!(
        e.message.ends_with("Did you mean: 'sqrt'?"),
        "{}",
        e.message
    );
    let o = run("python", "x = 1\nx.nope");
    assert_eq!(
        o.error.map(|e| e.message).as_deref(),
        Some("'int' object has no attribute 'nope'")
    );
}

#[test]
fn top_level_variables_are_captured_with_the_error() {
    let o = run(
        "python",
        "import json\nitems = list(range(100))\nlabel = 'sum'\ndef add(x):\n    return x['value']\nclass C: pass\ntotal = add(None)\n",
    );
    let e = o.error.expect("error");
    let names: Vec<&str> = e.globals.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["items", "label"], "{:?}", e.globals);
    let items = &e.globals[0];
    assert_eq!(items.type_name, "list");
    assert!(
        items.preview.starts_with("[0, 1, 2") && items.preview.len() <= 200,
        "{}",
        items.preview
    );
}

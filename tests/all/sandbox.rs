//! No capabilities by default: files, environment and network are out of reach.

use llmos::Status;
use llmos_tests::{run, run_with};

fn error_class(lang: &str, src: &str) -> String {
    let o = run(lang, src);
    assert_eq!(o.status, Status::Error, "{src}: {o:?}");
    o.error.map(|e| e.class).unwrap_or_default()
}

#[test]
fn python_cannot_read_files() {
    for path in ["/etc/passwd", "/proc/self/environ", "Cargo.toml", "."] {
        let class = error_class("python", &format!("open({path:?}).read()"));
        assert!(
            [
                "FileNotFoundError",
                "PermissionError",
                "OSError",
                "IsADirectoryError"
            ]
            .contains(&class.as_str()),
            "{path}: {class}"
        );
    }
    let o = run("python", "import os\nos.listdir('/')");
    assert_ne!(o.status, Status::Ok, "{o:?}");
}

#[test]
fn python_sees_no_environment() {
    // SAFETY: the variable is set before any run and only read by the host.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("LLMOS_TEST_SECRET", "hunter2")
    };
    let o = run("python", "import os\nsorted(os.environ)");
    assert_eq!(o.value.as_deref(), Some("[]"), "{o:?}");
    assert_eq!(
        error_class("python", "import os\nos.environ['HOME']"),
        "KeyError"
    );
    let o = run("python", "import os\nos.getenv('LLMOS_TEST_SECRET')");
    assert_eq!(o.value, None);
}

#[test]
fn python_cannot_open_sockets() {
    let o = run(
        "python",
        "import socket\ns = socket.create_connection(('127.0.0.1', 80), timeout=1)",
    );
    assert_eq!(o.status, Status::Error, "{o:?}");
}

#[test]
fn javascript_has_no_host_objects() {
    let o = run(
        "js",
        "[typeof require, typeof process, typeof std, typeof os, typeof fetch, typeof XMLHttpRequest].join()",
    );
    assert_eq!(
        o.value.as_deref(),
        Some("'undefined,undefined,undefined,undefined,undefined,undefined'")
    );
    let o = run("js", "import('os')");
    assert_eq!(o.status, Status::Error, "{o:?}");
}

#[test]
fn seeded_randomness_is_reproducible() {
    let src = "import random\n[random.random() for _ in range(3)]";
    let a = run_with("python", src, |r| r.seed = Some(7));
    let b = run_with("python", src, |r| r.seed = Some(7));
    let c = run_with("python", src, |r| r.seed = Some(8));
    assert_eq!(a.value, b.value);
    assert_ne!(a.value, c.value);
    let d = run("python", src);
    let e = run("python", src);
    assert_ne!(d.value, e.value, "unseeded runs draw fresh host randomness");
}

#[test]
fn javascript_randomness_comes_from_the_host_even_after_preinit() {
    let src = "[Math.random(), Math.random()].join()";
    let a = run_with("js", src, |r| r.seed = Some(7));
    let b = run_with("js", src, |r| r.seed = Some(7));
    assert_eq!(a.value, b.value);
    assert_ne!(
        run("js", src).value,
        run("js", src).value,
        "the snapshot must not bake in a seed"
    );
}

//! `kernel.storage` / `llmos.storage` through the real components: values,
//! quotas, isolation between artifacts, persistence across processes, and
//! durability when the host is killed mid-burst.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use llmos::Status;
use llmos::kernel::storage::store::Store;
use llmos_tests::{llmos_bin, repo, run_as, run_with, test_config};

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

#[test]
fn javascript_round_trips_json_values() {
    let id = unique("js-values");
    let o = run_as(
        "javascript",
        &id,
        r##"
const s = kernel.storage;
s.set("n", 42);
s.set("obj", { a: [1, 2.5, null, true], b: "é✓" });
s.set("user:1", "ann");
s.set("user:2", "bob");
s.set("user%_", "literal");
const before = s.get("missing", "dflt");
const out = [s.get("n"), s.get("obj"), s.list("user:"), s.list("user%"), s.has("n"), before];
out.push(s.delete("n"), s.delete("n"), s.get("n"), s.list().length, s.clear(), s.list());
JSON.stringify(out)
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(
        o.value.as_deref(),
        Some(
            r##"'[42,{"a":[1,2.5,null,true],"b":"é✓"},["user:1","user:2"],["user%_"],true,"dflt",true,false,null,4,4,[]]'"##
        )
    );
}

#[test]
fn python_round_trips_json_values() {
    let id = unique("py-values");
    let o = run_as(
        "python",
        &id,
        r##"
from llmos import storage
storage.set("n", 42)
storage.set("obj", {"a": [1, 2.5, None, True], "b": "é✓"})
storage.set("list", (1, 2))
out = [storage.get("n"), storage.get("obj"), storage.get("list"), storage.get("nope", 7),
       storage.has("n"), storage.list(), storage.delete("n"), storage.delete("n"), storage.clear()]
out
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(
        o.value.as_deref(),
        Some(
            "[42, {'a': [1, 2.5, None, True], 'b': 'é✓'}, [1, 2], 7, True, ['list', 'n', 'obj'], True, False, 2]"
        )
    );
}

#[test]
fn two_artifacts_never_see_each_others_keys() {
    let (a, b) = (unique("iso-a"), unique("iso-b"));
    let o = run_as(
        "javascript",
        &a,
        r##"kernel.storage.set("secret", "a's"); kernel.storage.set("k2", 1)"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    let o = run_as(
        "python",
        &b,
        r##"
from llmos import storage
(storage.get("secret"), storage.list(), storage.clear(), storage.has("k2"))
"##,
    );
    assert_eq!(o.value.as_deref(), Some("(None, [], 0, False)"), "{o:?}");
    let o = run_as(
        "javascript",
        &a,
        r##"JSON.stringify(kernel.storage.list())"##,
    );
    assert_eq!(o.value.as_deref(), Some(r##"'["k2","secret"]'"##));
}

#[test]
fn each_quota_is_a_catchable_storage_error() {
    let id = unique("quota-js");
    let o = run_as(
        "javascript",
        &id,
        r##"
const codes = [];
function attempt(f) { try { f(); codes.push("ok"); } catch (e) { codes.push(`${e.name}:${e.code}:${e instanceof kernel.StorageError}`); } }
attempt(() => kernel.storage.set("k".repeat(600), 1));       // key length
attempt(() => kernel.storage.set("", 1));                    // empty key
attempt(() => kernel.storage.set("big", "x".repeat(1100000)));  // value size
const mb = "y".repeat(1000000);
for (let i = 0; i < 16; i++) attempt(() => kernel.storage.set("mb" + i, mb));
attempt(() => kernel.storage.set("mb16", mb));               // namespace bytes
attempt(() => kernel.storage.set("s", undefined));           // not JSON
codes.join(" ")
"##,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    let v = o.value.unwrap_or_default();
    let parts: Vec<&str> = v.trim_matches('\'').split(' ').collect();
    assert_eq!(parts[0], "StorageError:invalid-key:true");
    assert_eq!(parts[1], "StorageError:invalid-key:true");
    assert_eq!(parts[2], "StorageError:quota-exceeded:true");
    assert!(parts[3..19].iter().all(|p| *p == "ok"), "{parts:?}");
    assert_eq!(parts[19], "StorageError:quota-exceeded:true");
    assert!(parts[20].starts_with("TypeError"), "{parts:?}");
}

#[test]
fn key_count_quota_from_python() {
    let id = unique("quota-py");
    // 10,000 durable writes (one fsync each): give it time on a busy machine.
    let o = run_with(
        "python",
        r##"
from llmos import storage, StorageError
for i in range(10000):
    storage.set("k%d" % i, i)
try:
    storage.set("one-too-many", 1)
except StorageError as e:
    err = (e.code, "10000" in str(e))
storage.set("k5", "replacing is fine")
(err, len(storage.list()))
"##,
        |r| {
            r.artifact_id = id.clone();
            r.limits.timeout = Duration::from_secs(120);
            r.limits.fuel = Some(llmos::limits::DEFAULT_FUEL * 10);
        },
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(
        o.value.as_deref(),
        Some("(('quota-exceeded', True), 10000)")
    );
}

#[test]
fn an_uncaught_storage_error_names_the_artifacts_line() {
    let o = run_as(
        "javascript",
        &unique("line"),
        "const a = 1;\n\nkernel.storage.set('x'.repeat(1000), a);\n",
    );
    assert_eq!(o.status, Status::Error);
    let e = o.error.expect("error");
    assert_eq!(e.class, "StorageError");
    assert_eq!(e.line, Some(3), "{e:?}");
    assert!(e.message.contains("512"), "{}", e.message);

    let o = run_as(
        "python",
        &unique("line"),
        "from llmos import storage\n\nstorage.set('', 1)\n",
    );
    let e = o.error.expect("error");
    assert_eq!(
        (e.class.as_str(), e.line),
        ("StorageError", Some(3)),
        "{e:?}"
    );
}

fn llmos(data: &std::path::Path) -> Command {
    let cfg = test_config();
    let mut c = Command::new(llmos_bin());
    c.env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", data)
        .current_dir(repo());
    c
}

#[test]
fn values_persist_across_processes() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = dir.path().join("writer.py");
    let reader = dir.path().join("reader.js");
    std::fs::write(
        &writer,
        "from llmos import storage\nstorage.set('greeting', {'text': 'hi', 'n': 3})\n",
    )
    .expect("write");
    std::fs::write(
        &reader,
        "const g = kernel.storage.get('greeting'); console.log(g.text, g.n)\n",
    )
    .expect("write");
    let w = llmos(data.path())
        .args(["run", &writer.display().to_string(), "--id", "shared"])
        .output()
        .expect("spawn");
    assert_eq!(
        w.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&w.stderr)
    );
    let r = llmos(data.path())
        .args(["run", &reader.display().to_string(), "--id", "shared"])
        .output()
        .expect("spawn");
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&r.stdout), "hi 3\n");
}

/// A child `llmos run` writes k0, k1, ... as fast as it can; once another
/// process has seen a few hundred committed keys, the child is SIGKILLed.
/// Every key seen committed must read back, the keys must be a gap-free
/// prefix with the right values, and the database must be intact.
#[test]
fn sigkill_during_a_burst_of_writes_loses_nothing_committed() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let burst = dir.path().join("burst.js");
    std::fs::write(
        &burst,
        "for (let i = 0; ; i++) kernel.storage.set('k' + i, { i, pad: 'v'.repeat(i % 50) });\n",
    )
    .expect("write");
    let mut child = llmos(data.path())
        .args([
            "run",
            &burst.display().to_string(),
            "--id",
            "burst",
            "--fuel",
            "none",
            "--timeout",
            "120s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let db = data.path().join(llmos::engine::STORAGE_FILE);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while Instant::now() < deadline {
        if db.exists()
            && let Ok(s) = Store::open(&db, llmos::limits::Quotas::default().storage)
            && let Ok(u) = s.usage("burst")
        {
            seen = u.keys;
            if seen >= 300 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(seen >= 300, "the child committed only {seen} keys in 60 s");

    let store = Store::open(&db, llmos::limits::Quotas::default().storage)
        .expect("database opens after the kill");
    let keys = store.keys("burst", "").expect("keys");
    let n = keys.len() as u64;
    assert!(
        n >= seen,
        "{seen} keys were committed but only {n} survived"
    );
    for i in 0..n {
        let v = store
            .get("burst", &format!("k{i}"))
            .expect("get")
            .unwrap_or_else(|| panic!("k{i} lost (of {n})"));
        let v: serde_json::Value = serde_json::from_str(&v).expect("valid JSON");
        assert_eq!(v["i"], i, "k{i}");
        assert_eq!(v["pad"].as_str().map(str::len), Some((i % 50) as usize));
    }
    assert_eq!(store.usage("burst").expect("usage").keys, n);
}

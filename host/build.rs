//! Checks that the dashboard's front-end dependency (three.js, installed
//! from npm by `make dashboard`) is in place before `llmos serve` embeds it.

fn main() {
    println!("cargo:rerun-if-changed=dashboard/index.html");
    println!("cargo:rerun-if-changed=dashboard/app.js");
    println!("cargo:rerun-if-changed=dashboard/style.css");
    println!("cargo:rerun-if-changed=dashboard/package-lock.json");
    if std::env::var_os("CARGO_FEATURE_SERVE").is_none() {
        return;
    }
    let three = std::path::Path::new("dashboard/node_modules/three/build/three.module.min.js");
    println!("cargo:rerun-if-changed={}", three.display());
    if !three.exists() {
        eprintln!(
            "error: the dashboard's three.js is missing ({}).\n\
             Run `make dashboard` (npm ci in host/dashboard), or build without the `serve` feature.",
            three.display()
        );
        std::process::exit(1);
    }
}

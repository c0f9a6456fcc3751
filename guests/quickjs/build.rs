// Give the guest a large linear-memory shadow stack so that deep JS recursion
// exhausts Wasmtime's native wasm stack (a clean StackOverflow trap) before
// QuickJS's C frames overflow the shadow stack into other linear memory.
fn main() {
    println!("cargo:rustc-link-arg-cdylib=-zstack-size=8388608");
    println!("cargo:rerun-if-changed=build.rs");
}

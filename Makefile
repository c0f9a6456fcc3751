# llmos — the only place guests are built.
#
#   make run     build everything, run the demo artifacts
#   make test    build everything, run the test suite
#   make bench   build everything, print the benchmark table
#
# Every prerequisite is installed here, idempotently: Debian packages (clang,
# llvm-ar, wasi-libc), rustup targets, and a Python venv with componentize-py.

SHELL := /bin/bash
.DEFAULT_GOAL := build

ROOT        := $(abspath .)
# A persistent target dir outside the clone is only a speed-up: delete it and
# everything rebuilds from scratch.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/llmos/cargo-target
COMPONENTS  := $(ROOT)/target/components
VENV        := $(ROOT)/target/guest-venv
STAMPS      := $(ROOT)/target/stamps
LLMOS       := $(CARGO_TARGET_DIR)/release/llmos
PREINIT     := $(CARGO_TARGET_DIR)/release/llmos-preinit

APT_PACKAGES        := clang-16 llvm-16 lld-16 wasi-libc curl patch redis-server lua5.4
# The guests' C compiler: Lua's setjmp/longjmp needs wasm exception
# handling, which clang-16 lacks (Debian ships clang-22 in bookworm-security),
# and clang-22's wasm target has bulk memory and non-trapping float-to-int
# on by default (clang-16: neither), which made QuickJS ~8 % faster.
LUA_APT_PACKAGES    := clang-22 llvm-22
# The dashboard's browser tests drive Debian's Chromium (playwright-core from npm).
BROWSER_APT_PACKAGES := chromium
DASHBOARD           := $(ROOT)/host/dashboard
COMPONENTIZE_PY     := componentize-py==0.25.1
SUDO                := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

WIT_FILES     := $(wildcard wit/*.wit)
QUICKJS_SRCS  := $(shell find guests/quickjs -type f -not -path '*/target/*' 2>/dev/null) $(wildcard volumes/system/kernel/*.js)
LUA_SRCS      := $(shell find guests/lua -type f -not -path '*/target/*' 2>/dev/null) $(wildcard volumes/system/kernel/lua/*.lua)
PYTHON_SRCS   := $(shell find guests/python volumes/system/kernel -type f -name '*.py' -o -type f -name '*.txt' 2>/dev/null)

SYSTEM_FILES  := $(shell find volumes/system -type f ! -name MANIFEST.sha256 ! -path '*/__pycache__/*' ! -name '*.pyc' 2>/dev/null)

.PHONY: build guests prereqs test run bench eval-fix clean fmt dashboard

# ---------------------------------------------------------------- prerequisites
prereqs: $(STAMPS)/apt $(STAMPS)/apt-lua $(STAMPS)/rustup $(STAMPS)/venv

$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi
	@touch $@

$(STAMPS)/apt-lua:
	@mkdir -p $(STAMPS)
	@if ! dpkg -s $(LUA_APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(LUA_APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(LUA_APT_PACKAGES); \
	fi
	@touch $@

$(STAMPS)/apt-browser:
	@mkdir -p $(STAMPS)
	@if ! dpkg -s $(BROWSER_APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing $(BROWSER_APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_APT_PACKAGES); \
	fi
	@touch $@

# The dashboard's npm packages (three.js, embedded by `llmos serve`;
# playwright-core for the browser tests), exactly as the lock file says.
# Anything that builds the host (`llmos-preinit` for the guests included)
# needs them first: host/build.rs checks.
dashboard: $(STAMPS)/npm
$(STAMPS)/npm: $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json
	@mkdir -p $(STAMPS)
	cd $(DASHBOARD) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMPS)/rustup:
	@mkdir -p $(STAMPS)
	rustup target add wasm32-wasip2
	@touch $@

$(STAMPS)/venv:
	@mkdir -p $(STAMPS)
	@[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(COMPONENTIZE_PY)
	@touch $@

# ----------------------------------------------------------------------- guests
guests: $(COMPONENTS)/quickjs.wasm $(COMPONENTS)/python.wasm $(COMPONENTS)/lua.wasm

# QuickJS-ng as rquickjs-sys ships it, plus our patches (guests/quickjs/patches,
# each explains itself). The crate is fetched from crates.io, checked against
# the checksum Cargo.lock pinned before patching, and patched in target/vendor;
# guests/quickjs/Cargo.toml points [patch.crates-io] there.
RQUICKJS_SYS_VERSION := 0.14.0
RQUICKJS_SYS_SHA256  := cee271d0eeba64f0915b846cb7ae02e16faf3dfdffdca91731101d9d30fe3423
VENDOR               := $(ROOT)/target/vendor
QUICKJS_PATCHES      := $(sort $(wildcard guests/quickjs/patches/*.patch))

# $(call vendor-crate,CRATE,VERSION,SHA256,PATCHES): the recipe that puts
# CRATE-VERSION from crates.io, checked against SHA256 (Cargo.lock's
# checksum) and with PATCHES applied, in $(VENDOR)/CRATE.
define vendor-crate
	@mkdir -p $(VENDOR)
	rm -rf $(VENDOR)/$(1) $(VENDOR)/$(1)-$(2)
	[ -f $(VENDOR)/$(1)-$(2).crate ] || { \
	  curl -sSfL --retry 3 -o $(VENDOR)/$(1)-$(2).crate.tmp \
	    https://static.crates.io/crates/$(1)/$(1)-$(2).crate && \
	  mv $(VENDOR)/$(1)-$(2).crate.tmp $(VENDOR)/$(1)-$(2).crate; }
	echo "$(3)  $(VENDOR)/$(1)-$(2).crate" | sha256sum -c --quiet - \
	  || { rm -f $(VENDOR)/$(1)-$(2).crate; exit 1; }
	tar -xzf $(VENDOR)/$(1)-$(2).crate -C $(VENDOR)
	for p in $(4); do patch -d $(VENDOR)/$(1)-$(2) -p1 --quiet --forward < $$p || exit 1; done
	mv $(VENDOR)/$(1)-$(2) $(VENDOR)/$(1)
	@touch $(VENDOR)/$(1)/.patched
endef

$(VENDOR)/rquickjs-sys/.patched: $(QUICKJS_PATCHES) $(STAMPS)/apt
	$(call vendor-crate,rquickjs-sys,$(RQUICKJS_SYS_VERSION),$(RQUICKJS_SYS_SHA256),$(QUICKJS_PATCHES))

# Wasmtime and its wasmtime-environ as crates.io ships them, plus our patches
# (host/patches/CRATE, each explains itself); the workspace's Cargo.toml points
# [patch.crates-io] there, so every cargo command on the host workspace needs
# them first (HOST_DEPS).
WASMTIME_VERSION         := 48.0.8
WASMTIME_SHA256          := a2afcadb2e7d0417cb8f3f322c66eff49338b288f22290c0ca0bd3e9570732aa
WASMTIME_PATCHES         := $(sort $(wildcard host/patches/wasmtime/*.patch))
WASMTIME_ENVIRON_SHA256  := 2de252f4aedfff6c2054ea5bea2454878a931c56e2553c6356b581e5e30a7e4e
WASMTIME_ENVIRON_PATCHES := $(sort $(wildcard host/patches/wasmtime-environ/*.patch))
HOST_DEPS                := $(VENDOR)/wasmtime/.patched $(VENDOR)/wasmtime-environ/.patched

$(VENDOR)/wasmtime/.patched: $(WASMTIME_PATCHES) $(STAMPS)/apt
	$(call vendor-crate,wasmtime,$(WASMTIME_VERSION),$(WASMTIME_SHA256),$(WASMTIME_PATCHES))

$(VENDOR)/wasmtime-environ/.patched: $(WASMTIME_ENVIRON_PATCHES) $(STAMPS)/apt
	$(call vendor-crate,wasmtime-environ,$(WASMTIME_VERSION),$(WASMTIME_ENVIRON_SHA256),$(WASMTIME_ENVIRON_PATCHES))

# QuickJS-ng (rquickjs) + wit-bindgen; rustc emits a component for wasm32-wasip2.
# QuickJS's C is compiled by clang-22 (see LUA_APT_PACKAGES).
# The component is then pre-initialised (Wizer, `llmos-preinit`): its `init`
# builds the QuickJS runtime, context and prelude once, at build time.
$(COMPONENTS)/quickjs.wasm: $(QUICKJS_SRCS) $(WIT_FILES) $(STAMPS)/apt $(STAMPS)/apt-lua $(STAMPS)/rustup $(VENDOR)/rquickjs-sys/.patched | $(STAMPS)/npm $(HOST_DEPS)
	@mkdir -p $(COMPONENTS)
	cd guests/quickjs && \
	  RQUICKJS_SYS_NO_WASI_SDK=1 \
	  CC_wasm32_wasip2=clang-22 AR_wasm32_wasip2=llvm-ar-22 \
	  CFLAGS_wasm32_wasip2="-isystem /usr/include/wasm32-wasi" \
	  cargo build --release --locked --target wasm32-wasip2
	cargo build --release --locked -p llmos --bin llmos-preinit
	$(PREINIT) $(CARGO_TARGET_DIR)/wasm32-wasip2/release/llmos_guest_quickjs.wasm $@

# Lua 5.4 (mlua's vendored lua-src) + wit-bindgen; rustc emits a component
# for wasm32-wasip2, then `llmos-preinit` snapshots it after `init` (Lua
# state, prelude and kernel module built once). Lua's C is compiled with
# `-mllvm -wasm-enable-sjlj` (by lua-src): setjmp/longjmp become wasm
# exceptions; guests/lua/csrc supplies the setjmp.h and runtime that
# Debian's wasi-libc lacks (see guests/lua/build.rs). A fixed string-hash
# seed (luai_makeseed) keeps the snapshot reproducible: it is the same in
# every run anyway, as it is baked into the snapshot.
LUA_CFLAGS := -isystem /usr/include/wasm32-wasi -isystem $(ROOT)/guests/lua/csrc/include -Dluai_makeseed(L)=0x6c756121u \
  -include $(ROOT)/guests/lua/csrc/include/llmos_countdown.h

# lua-src (Lua's C sources for mlua) as crates.io ships it, plus our patches
# (guests/lua/patches, each explains itself), checked against the checksum
# Cargo.lock pinned and patched in target/vendor; guests/lua/Cargo.toml
# points [patch.crates-io] there.
LUA_SRC_VERSION := 551.0.2
LUA_SRC_SHA256  := d400ffef0e3d4d29287092bdc5a276d0bf468b2c69709d5bab0d469312d9f947
LUA_PATCHES     := $(sort $(wildcard guests/lua/patches/*.patch))

$(VENDOR)/lua-src/.patched: $(LUA_PATCHES) $(STAMPS)/apt
	$(call vendor-crate,lua-src,$(LUA_SRC_VERSION),$(LUA_SRC_SHA256),$(LUA_PATCHES))

$(COMPONENTS)/lua.wasm: $(LUA_SRCS) $(WIT_FILES) $(STAMPS)/apt $(STAMPS)/apt-lua $(STAMPS)/rustup $(VENDOR)/lua-src/.patched | $(STAMPS)/npm $(HOST_DEPS)
	@mkdir -p $(COMPONENTS) $(STAMPS)
	@# lua-src's build script tracks neither CFLAGS nor the patched sources:
	@# rebuild Lua when either changes.
	@if [ "$$(cat $(STAMPS)/lua-cflags 2>/dev/null)" != '$(LUA_CFLAGS) $(LUA_PATCHES)' ] \
	    || [ $(VENDOR)/lua-src/.patched -nt $(STAMPS)/lua-cflags ]; then \
	  (cd guests/lua && cargo clean -q --release --target wasm32-wasip2 -p mlua-sys) && \
	  echo '$(LUA_CFLAGS) $(LUA_PATCHES)' > $(STAMPS)/lua-cflags; \
	fi
	cd guests/lua && \
	  CC_wasm32_wasip2=clang-22 AR_wasm32_wasip2=llvm-ar-22 CFLAGS_wasm32_wasip2="$(LUA_CFLAGS)" \
	  cargo build --release --locked --target wasm32-wasip2
	cargo build --release --locked -p llmos --bin llmos-preinit
	$(PREINIT) $(CARGO_TARGET_DIR)/wasm32-wasip2/release/llmos_guest_lua.wasm $@

# CPython via componentize-py; only modules imported at build time exist at run time.
$(COMPONENTS)/python.wasm: $(PYTHON_SRCS) $(WIT_FILES) $(STAMPS)/venv
	@mkdir -p $(COMPONENTS)
	cd guests/python && env -u VIRTUAL_ENV -i PATH="$$PATH" HOME=/nonexistent PYTHONDONTWRITEBYTECODE=1 \
	  $(VENV)/bin/componentize-py -d $(ROOT)/wit -w language-session componentize \
	  -p . -p $(ROOT)/volumes/system/kernel/python -p $(ROOT)/volumes/system/kernel guest -o $@.tmp && mv $@.tmp $@

# --------------------------------------------------------------- system volume
# SHA-256 of every file of the system volume; boot refuses a volume that
# does not match it.
volumes/system/MANIFEST.sha256: $(SYSTEM_FILES)
	cd volumes/system && find . -type f ! -name MANIFEST.sha256 ! -path '*/__pycache__/*' ! -name '*.pyc' \
	  | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum > $(ROOT)/target/MANIFEST.sha256.tmp \
	  && mv $(ROOT)/target/MANIFEST.sha256.tmp MANIFEST.sha256

# ------------------------------------------------------------------------- host
build: guests volumes/system/MANIFEST.sha256 dashboard $(HOST_DEPS)
	cargo build --release --locked -p llmos
	@# Precompile every component for both engines into the user's cache, so
	@# the first `llmos run` after a build compiles nothing (a no-op when
	@# the cache already holds them).
	$(LLMOS) check
	$(LLMOS) check --unmetered

run: build
	@for f in tests/fixtures/demo/*; do \
	  echo; echo "\$$ llmos run $$f"; \
	  $(LLMOS) run $$f; echo "(exit code $$?)"; \
	done
	@echo; echo "\$$ llmos run system:/bin/selftest.py   # a verified system artifact: the trusted tier"
	@$(LLMOS) run system:/bin/selftest.py; echo "(exit code $$?)"

# Component artifacts for the tests (tests/fixtures/component: Rust commands
# for wasm32-wasip2, one of them importing the llmos kernel).
FIXTURE_COMPONENTS := $(ROOT)/target/test-components
$(FIXTURE_COMPONENTS)/.built: $(shell find tests/fixtures/component -type f 2>/dev/null) $(WIT_FILES) $(STAMPS)/rustup
	cd tests/fixtures/component && cargo build --release --locked --target wasm32-wasip2
	@mkdir -p $(FIXTURE_COMPONENTS)
	for b in hello exit3 trap spin hog kernel alien; do \
	  cp $(CARGO_TARGET_DIR)/wasm32-wasip2/release/$$b.wasm $(FIXTURE_COMPONENTS)/$$b.wasm; done
	touch $@

test: build $(FIXTURE_COMPONENTS)/.built $(STAMPS)/apt-browser
	cargo test --release --locked --workspace
	@echo; echo "\$$ eval-fix with the corpus's reference fixes, recorded into a cassette, then replayed offline"
	rm -f $(ROOT)/target/eval-cassette.jsonl
	LLMOS_EVAL_REFERENCE=1 LLMOS_EVAL_STRICT=1 LLMOS_EVAL_CASSETTE=$(ROOT)/target/eval-cassette.jsonl \
	  cargo run --release --locked -p llmos-tests --bin eval-fix > $(ROOT)/target/eval-record.log; \
	  status=$$?; tail -n 12 $(ROOT)/target/eval-record.log; exit $$status
	env -u LLMOS_LLM_PROVIDER LLMOS_EVAL_STRICT=1 LLMOS_EVAL_CASSETTE=$(ROOT)/target/eval-cassette.jsonl \
	  cargo run --release --locked -p llmos-tests --bin eval-fix > $(ROOT)/target/eval-replay.log; \
	  status=$$?; tail -n 12 $(ROOT)/target/eval-replay.log; exit $$status
	@echo; echo "\$$ cargo build -p llmos --lib --no-default-features   # the smallest embedding"
	cargo build --release --locked -p llmos --lib --no-default-features
	@echo; echo "\$$ cargo run --example embed   # llmos embedded in another Rust program"
	LLMOS_DATA_DIR=$(ROOT)/target/example-data LLMOS_CACHE_DIR=$(ROOT)/target/test-cache \
	  cargo run --release --locked -p llmos --example embed

bench: build
	cargo bench --locked -p llmos-tests --bench kernel
	cargo bench --locked -p llmos-tests --bench batch
	cargo bench --locked -p llmos-tests --bench session
	cargo bench --locked -p llmos-tests --bench serve

# The repair loop on tests/fixtures/buggy with the configured LLM provider
# (LLMOS_LLM_PROVIDER, LLMOS_LLM_URL, LLMOS_LLM_MODEL, OPENAI_API_KEY/ANTHROPIC_API_KEY).
eval-fix: build
	cargo run --release --locked -p llmos-tests --bin eval-fix

fmt: $(HOST_DEPS)
	cargo fmt --all
	cd guests/quickjs && cargo fmt
	cd guests/lua && cargo fmt

clean:
	rm -rf target

# Thin wrapper over the CMake presets. `make demo` and `make test` first
# install whatever is missing (see scripts/install-deps.sh).
.PHONY: all deps deps-demo deps-deb build wasm fuzz-build test demo bench fuzz web deb asan tsan clean \
        crash-explore tsan-explorer

all: build

deps:
	@scripts/install-deps.sh test

deps-demo:
	@scripts/install-deps.sh demo

deps-deb:
	@scripts/install-deps.sh deb

build:
	cmake --preset default >/dev/null
	cmake --build --preset default

wasm:
	cmake --preset wasm >/dev/null
	cmake --build --preset wasm

fuzz-build:
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz

# Builds every flavour that exists, then runs every test once.
test: deps
	$(MAKE) --no-print-directory build
	@if [ -f wasm/CMakeLists.txt ]; then $(MAKE) --no-print-directory wasm; fi
	@if [ -f fuzz/CMakeLists.txt ]; then $(MAKE) --no-print-directory fuzz-build; fi
	ctest --preset default

demo: deps-demo build
	scripts/demo.sh

# The browser benchmark needs the WebAssembly module, so bench builds it too.
bench: deps build wasm
	bench/run-all.sh

fuzz: deps fuzz-build
	scripts/fuzz.sh $(FUZZ_SECONDS)

web: deps wasm
	scripts/serve-web.sh

# build/qcowkit_VERSION_ARCH.deb, from the install rules (packaging/). It holds
# the WebAssembly module when build-wasm/ has one (`make wasm` first).
deb: deps-deb build
	cd build && cpack -G DEB

asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan
	ctest --preset asan

tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan
	ctest --preset tsan

# The crash explorer for longer than make test runs it: SECONDS in total
# (default 600), shared between its kinds; see docs/reliability-explorer.md.
SECONDS ?= 600
crash-explore: deps
	cmake --preset default >/dev/null
	cmake --build --preset default --target reliability_tests
	scripts/crash-explore.sh $(SECONDS)

# The explorer and the concurrency tests under ThreadSanitizer (a build of
# the core and the reliability tests only; SECONDS shared as above).
TSAN_SECONDS ?= 240
tsan-explorer: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan --target reliability_tests
	build-tsan/tests/reliability/reliability_tests "[concurrency]"
	scripts/crash-explore.sh $(TSAN_SECONDS) build-tsan

clean:
	rm -rf build build-asan build-tsan build-fuzz build-wasm

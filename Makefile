# The two commands of the README. Everything else is CMake and ctest.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
CONFIG ?= collector/warmline.ini
JOBS ?= $(shell nproc)

.PHONY: all bootstrap node-deps ui-deps ui-screenshot build run test check sanitize fuzz clean

all: build

bootstrap:
	@tools/bootstrap.sh

# The official RudderStack Node SDK that the integration tests send with
# (tests/integration/rudder_node: package.json pins it, package-lock.json is
# committed): npm ci when node_modules is missing or the lockfile changed.
NODE_DEPS = tests/integration/rudder_node
NODE_STAMP = $(NODE_DEPS)/node_modules/.package-lock.json
node-deps: $(NODE_STAMP)
$(NODE_STAMP): $(NODE_DEPS)/package-lock.json $(NODE_DEPS)/package.json
	npm ci --omit=optional --ignore-scripts --no-audit --no-fund --prefix $(NODE_DEPS)
	@touch $@

# playwright-core for the page's browser test (tests/ui, lockfile committed; it drives
# Debian's chromium and downloads no browser).
UI_DEPS = tests/ui
UI_STAMP = $(UI_DEPS)/node_modules/.package-lock.json
ui-deps: $(UI_STAMP)
$(UI_STAMP): $(UI_DEPS)/package-lock.json $(UI_DEPS)/package.json
	npm ci --omit=optional --ignore-scripts --no-audit --no-fund --prefix $(UI_DEPS)
	@touch $@

# The README's screenshot (docs/page-hot.png) from the page test's output: a separate
# step, so that CI never rewrites a tracked file.
ui-screenshot: build ui-deps
	cd $(BUILD) && WL_UI_ONLY=hot ctest -R '^ui\.' --output-on-failure
	@mkdir -p docs
	cp $(BUILD)/ui-out/hot.png docs/page-hot.png

build: bootstrap
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD) -j $(JOBS)

# The collector in the foreground with the bundled config; data under ./var.
run: build
	@mkdir -p var
	@[ -s var/org_salt ] || (umask 077 && head -c 32 /dev/urandom > var/org_salt && echo "make: created var/org_salt")
	$(BUILD)/warmline-collector --config $(CONFIG)

# The README's test command, and what CI runs (.ci/run): the suite, the
# suite under sanitizers, then every fuzz target for a minute.
test:
	$(MAKE) check
	$(MAKE) sanitize
	$(MAKE) fuzz FUZZ_SECONDS=60

# The suite alone: unit, integration and fuzz-corpus replays through ctest.
check: build node-deps ui-deps
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Every test again on a build with AddressSanitizer, UBSan and LeakSanitizer
# (a leak or error makes the collector exit non-zero, which fails its test).
sanitize: bootstrap node-deps ui-deps
	cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DWL_SANITIZE=ON
	cmake --build build-sanitize -j $(JOBS)
	cd build-sanitize && ctest --output-on-failure -j $(JOBS)

# The libFuzzer targets of tests/fuzz (clang, ASan, UBSan), each run for
# FUZZ_SECONDS on a copy of its seed corpus; fails on any crash, leak or
# timeout and prints the path of the input that caused it.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= frame_stream envelope ping_validate config_rules api_params named_csv state \
	security_query rudder_batch networks_csv
fuzz: bootstrap
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWL_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) build-sanitize build-fuzz

# The two commands of the README. Everything else is CMake and ctest.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
CONFIG ?= collector/warmline.ini
JOBS ?= $(shell nproc)

.PHONY: all bootstrap build run test sanitize clean

all: build

bootstrap:
	@tools/bootstrap.sh

build: bootstrap
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD) -j $(JOBS)

# The collector in the foreground with the bundled config; data under ./var.
run: build
	@mkdir -p var
	@[ -s var/org_salt ] || (umask 077 && head -c 32 /dev/urandom > var/org_salt && echo "make: created var/org_salt")
	$(BUILD)/warmline-collector --config $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Every test again on a build with AddressSanitizer, UBSan and LeakSanitizer
# (a leak or error makes the collector exit non-zero, which fails its test).
sanitize: bootstrap
	cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DWL_SANITIZE=ON
	cmake --build build-sanitize -j $(JOBS)
	cd build-sanitize && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) build-sanitize

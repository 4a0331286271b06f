# dirgw — the two commands that matter:
#   make demo   build, start a local regional repository (Orthanc + DICOMweb), send synthetic
#               studies through the gateway, print status
#   make test   build with ASan+UBSan and run every unit and integration test
# Both install the Debian packages they need first (make deps).

SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD_DIR ?= build
TEST_BUILD_DIR ?= build-test
BENCH_BUILD_DIR ?= build-release
# Unity (jumbo) builds, CMake option DIRGW_UNITY_BUILD: about half the cold compile time. Read
# when a build directory is configured; UNITY=OFF compiles one translation unit per source file.
UNITY ?= ON

DEB_PACKAGES := build-essential cmake pkg-config python3 \
	libdcmtk-dev dcmtk libboost-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev sqlite3 \
	libyaml-cpp-dev libcli11-dev libpugixml-dev googletest libgtest-dev nlohmann-json3-dev libhowardhinnant-date-dev tzdata libsystemd-dev zlib1g-dev libarchive-dev libopenjp2-7-dev \
	orthanc orthanc-dicomweb curl iproute2 util-linux rpm rpmlint lintian file libxml2-utils clang libclang-rt-14-dev lld openssl python3-hl7 python3-fusepy python3-pydicom

.PHONY: all deps build test unit integration demo clean format package help bench fuzz

all: build

help:
	@sed -n '1,6p' Makefile

# Installs only what is missing; runs apt-get update once, and only when something is.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIRGW_BUILD_TESTS=OFF -DDIRGW_UNITY_BUILD=$(UNITY)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

$(TEST_BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(TEST_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug -DDIRGW_SANITIZE=ON -DDIRGW_LEAN_DEBUG=ON -DDIRGW_BUILD_TESTS=ON -DDIRGW_UNITY_BUILD=$(UNITY)

# tests/run_suite.sh: builds what the integration tests run, then runs them JOBS at a time
# (RUN_SERIAL ones alone: rate measurements) while the unit tests and the fuzz targets build and
# run at nice 19 beside them, in whatever CPU the integration tests leave.
test: deps $(TEST_BUILD_DIR)/CMakeCache.txt
	bash tests/run_suite.sh $(TEST_BUILD_DIR) $(JOBS)

unit: deps $(TEST_BUILD_DIR)/CMakeCache.txt
	cmake --build $(TEST_BUILD_DIR) -j$(JOBS)
	cd $(TEST_BUILD_DIR) && ctest --output-on-failure -L unit

integration: deps $(TEST_BUILD_DIR)/CMakeCache.txt
	cmake --build $(TEST_BUILD_DIR) -j$(JOBS)
	cd $(TEST_BUILD_DIR) && ctest --output-on-failure -L integration

demo: build
	python3 tests/integration/demo.py --build-dir $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR) $(BENCH_BUILD_DIR) build-fuzz

# Benchmarks: release build, loopback only, DCMTK and Orthanc baselines measured in the same run.
$(BENCH_BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BENCH_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DDIRGW_BUILD_TESTS=OFF -DDIRGW_UNITY_BUILD=$(UNITY)

# The null HTTP sink of the forwarding benchmark is Debian's nginx; the WAN case's packet delay
# (bench/nfqdelay.py) needs iptables for its NFQUEUE rules (this kernel has no netem).
BENCH_PACKAGES := nginx-light iptables

bench: deps $(BENCH_BUILD_DIR)/CMakeCache.txt
	@for p in $(BENCH_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$p; done
	cmake --build $(BENCH_BUILD_DIR) -j$(JOBS)
	python3 bench/run.py --build-dir $(BENCH_BUILD_DIR) $(BENCH_ARGS)

# Packages: a .deb (CPack) and an .rpm (packaging/rpm/dirgw.spec), in $(BUILD_DIR)/packages.
package: deps
	bash packaging/build-packages.sh $(BUILD_DIR)

# libFuzzer: each target for FUZZ_SECONDS (clang, ASan+UBSan); a crash is copied into
# tests/data/regressions/ and the run fails.
FUZZ_SECONDS ?= 60
fuzz: deps
	bash tests/fuzz/run.sh --seconds $(FUZZ_SECONDS) --build-dir build-fuzz

# tasker - top-level entry points. Each target installs missing Debian packages first
# (scripts/bootstrap.sh, needs root or sudo), so a fresh Debian 12 machine needs nothing else.
#
#   make run        build, then `tasker dev --demo`: the whole stack on a private PostgreSQL,
#                   each example workflow run once, then serving on :8080 until Ctrl-C
#   make test       build and run the whole test suite (ctest)
#   make test-asan  the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer
#   make build      build build/tasker and libtasker
#   make format     reformat the C sources with clang-format
#   make bench      build, then `tasker bench all`: every benchmark suite on a private durable
#                   PostgreSQL (or DATABASE_URL), tables on stdout, bench/results/latest.json;
#                   BENCH_ARGS adds options, e.g. make bench BENCH_ARGS=--quick (bench/README.md)
#   make bench-peers  tasker vs graphile-worker on one PostgreSQL (bench/peers/; installs
#                   the pinned npm packages on first use, so the npm registry must be reachable)
#   make profile    perf (the workload's processes, PostgreSQL included) and callgrind over a
#                   workload: WORKLOAD=e2e|sql|throughput (default e2e); report and flame
#                   graphs in bench/profiles/out/ (bench/profiles/README.md)
#   make clean      remove the build trees (the private cluster in .tasker/ is kept)

BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build run test test-asan format bootstrap clean bench bench-peers profile

all: build

bootstrap:
	@sh scripts/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/tasker dev --demo --templates examples/templates

test: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTK_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: bootstrap
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DTK_WERROR=ON -DTK_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS)

bench: build
	./$(BUILD)/tasker bench all $(BENCH_ARGS)

# ARGS is passed to bench/peers/harness.mjs, e.g. make bench-peers ARGS=--quick
bench-peers: build
	@sh bench/peers/run.sh $(ARGS)

format:
	@find include src tests bench examples bindings -name node_modules -prune -o -name '*.[ch]' -print 2>/dev/null | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)

profile: bootstrap
	@bash scripts/profile.sh $(or $(WORKLOAD),e2e)

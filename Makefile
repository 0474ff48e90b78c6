# crid: build, run, test, install. `make run` and `make test` work on a fresh Debian machine as root.
SHELL := /bin/bash
DOTNET ?= dotnet
CONFIGURATION ?= Release
OUT := out
PREFIX ?= /usr/local
# Packages the integration tests use: a real OCI runtime and conmon (each container's monitor),
# a static busybox for test rootfs, CNI plugins, and the iproute2/util-linux tools tests inspect
# namespaces with.
TEST_DEBS := runc conmon busybox-static iproute2 containernetworking-plugins util-linux
TEST_TOOLS := runc conmon busybox ip nsenter findmnt

# NativeAOT by default: a third of the JIT build's memory and start-up (docs/benchmark.md).
# `make build AOT=false` publishes the framework-dependent JIT apphost instead.
AOT ?= true
# The ILCompiler links with clang; Debian may only have a versioned one (clang-14).
AOT_CC = $(notdir $(shell command -v clang 2>/dev/null || ls /usr/bin/clang-[0-9]* 2>/dev/null | grep -E '/clang-[0-9]+$$' | sort -V | tail -1))

.PHONY: build run test test-deps build-deps install clean bench

build: build-deps
	@# The other build's files would linger beside the binary (a JIT crid.dll beside an AOT crid).
	rm -rf $(OUT)/crid $(OUT)/crid.dbg $(OUT)/*.dll $(OUT)/*.pdb $(OUT)/*.runtimeconfig.json $(OUT)/*.deps.json \
	  $(OUT)/runtimes $(OUT)/web.config $(OUT)/*.staticwebassets.endpoints.json
	$(DOTNET) publish src/Crid/Crid.csproj -c $(CONFIGURATION) -o $(OUT) --nologo -v quiet -p:PublishAot=$(AOT) \
	  $(if $(filter true,$(AOT)),-p:CppCompilerAndLinker=$(AOT_CC))
	@test -x $(OUT)/crid && echo "built $(OUT)/crid (AOT=$(AOT))"

build-deps:
	@if [ "$(AOT)" = true ] && [ -z "$(AOT_CC)" ]; then \
	   echo "installing the NativeAOT linker: clang zlib1g-dev"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang zlib1g-dev >/dev/null; \
	 fi

run: build
	$(OUT)/crid

test-deps:
	@missing=""; for t in $(TEST_TOOLS); do command -v $$t >/dev/null || missing=1; done; \
	 test -d /usr/lib/cni || missing=1; \
	 if [ -n "$$missing" ]; then \
	   echo "installing test packages: $(TEST_DEBS)"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_DEBS) >/dev/null; \
	 fi

test: test-deps build
	@set -o pipefail; $(DOTNET) test Cri.sln -c $(CONFIGURATION) --nologo 2>&1 | tee $(OUT)/test.log; rc=$$?; \
	 awk '/(Passed|Failed)! +- +Failed:/ { gsub(",",""); f+=$$4; p+=$$6; s+=$$8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' $(OUT)/test.log; \
	 exit $$rc

# The benchmark against the daemon `make build` just published; BENCH_ARGS=--quick for a short pass.
bench: build
	$(DOTNET) build src/Crid.Bench/Crid.Bench.csproj -c $(CONFIGURATION) --nologo -v quiet
	$(DOTNET) src/Crid.Bench/bin/$(CONFIGURATION)/net10.0/Crid.Bench.dll --daemon $(OUT)/crid --json $(OUT)/bench.json $(BENCH_ARGS)

install: build
	install -D -m 0755 $(OUT)/crid $(DESTDIR)$(PREFIX)/bin/crid
	install -D -m 0644 packaging/crid.service $(DESTDIR)/etc/systemd/system/crid.service
	@if [ ! -e $(DESTDIR)/etc/crid/crid.yaml ]; then install -D -m 0644 packaging/crid.yaml $(DESTDIR)/etc/crid/crid.yaml; fi

clean:
	rm -rf $(OUT)
	find src tests -type d \( -name bin -o -name obj \) -prune -exec rm -rf {} +

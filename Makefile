# crid: build, run, test, install. `make run` and `make test` work on a fresh Debian machine as root.
SHELL := /bin/bash
DOTNET ?= dotnet
CONFIGURATION ?= Release
OUT := out
PREFIX ?= /usr/local
# Packages the integration tests use: a real OCI runtime and conmon (each container's monitor),
# a static busybox for test rootfs, CNI plugins, the iproute2/util-linux tools tests inspect
# namespaces with, and for the image tests a plain-HTTP registry on 127.0.0.1 (docker-registry)
# and skopeo to push test images to it.
TEST_DEBS := runc conmon busybox-static iproute2 containernetworking-plugins util-linux docker-registry skopeo
TEST_TOOLS := runc conmon busybox ip nsenter findmnt docker-registry skopeo

# NativeAOT by default: a third of the JIT build's memory and start-up (docs/benchmark.md).
# `make build AOT=false` publishes the framework-dependent JIT apphost instead.
AOT ?= true
# The ILCompiler links with clang; Debian may only have a versioned one (clang-14).
AOT_CC = $(notdir $(shell command -v clang 2>/dev/null || ls /usr/bin/clang-[0-9]* 2>/dev/null | grep -E '/clang-[0-9]+$$' | sort -V | tail -1))

.PHONY: build run test test-deps build-deps install clean bench

# What the daemon is built from: `make install` rebuilds only when one of these is newer than out/crid.
SOURCES := $(shell find api src/Crid src/Crid.Server src/Crid.Core src/Crid.Linux src/Crid.Api src/Crid.Runtime src/Crid.Images src/Crid.Streaming -path '*/obj' -prune -o -path '*/bin' -prune -o -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.proto' \) -print) \
  Directory.Build.props Directory.Packages.props

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

$(OUT)/crid: $(SOURCES)
	$(MAKE) build

# The binary `make build` left (AOT or JIT, whichever it was), rebuilt only when the sources changed.
# A JIT build is an apphost beside its .dll files: it goes to $(PREFIX)/lib/crid whole, with a
# $(PREFIX)/bin/crid that execs it. The unit file and its documentation follow PREFIX.
install: $(OUT)/crid
	@if [ -e $(OUT)/crid.dll ]; then \
	   echo "installing the JIT build into $(DESTDIR)$(PREFIX)/lib/crid"; \
	   rm -rf $(DESTDIR)$(PREFIX)/lib/crid && mkdir -p $(DESTDIR)$(PREFIX)/lib/crid $(DESTDIR)$(PREFIX)/bin && \
	   cp -a $(OUT)/crid $(OUT)/*.dll $(OUT)/*.json $(DESTDIR)$(PREFIX)/lib/crid/ && \
	   printf '#!/bin/sh\nexec %s/lib/crid/crid "$$@"\n' '$(PREFIX)' > $(DESTDIR)$(PREFIX)/bin/crid && chmod 0755 $(DESTDIR)$(PREFIX)/bin/crid; \
	 else \
	   install -D -m 0755 $(OUT)/crid $(DESTDIR)$(PREFIX)/bin/crid; \
	 fi
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/crid/README.md
	install -D -m 0644 SECURITY.md $(DESTDIR)$(PREFIX)/share/doc/crid/SECURITY.md
	mkdir -p $(DESTDIR)/etc/systemd/system
	sed 's|@PREFIX@|$(PREFIX)|g' packaging/crid.service > $(DESTDIR)/etc/systemd/system/crid.service
	@if [ ! -e $(DESTDIR)/etc/crid/crid.yaml ]; then install -D -m 0644 packaging/crid.yaml $(DESTDIR)/etc/crid/crid.yaml; fi

clean:
	rm -rf $(OUT)
	find src tests -type d \( -name bin -o -name obj \) -prune -exec rm -rf {} +

# equivd — the two commands: `make run` (set up, build, run the main job on the bundled default)
# and `make test` (set up, build, run every test). Both install what they need first.
SWIFT ?= swift
# The clang that SwiftPM compiles the C targets with, for benchmarks of C code alone.
CC_BENCH ?= $(dir $(shell command -v $(SWIFT)))clang
# The project's Python: Debian's python3 with system packages plus onnxruntime (scripts/install-deps.sh).
PYTHON := .venv/bin/python
RELEASE_BIN := .build/release

.PHONY: run test deps deps-torch build build-debug swift-test python-test conv-c-test memcheck bench bench-conv bench-model bench-resample bench-resamplers bench-service bench-fleet bench-replay bench-partial deb test-package canonicalizers fixed-part table table-swift real-table partial-table soak sanitize fuzz libfuzzer libfuzzer-short fixtures models samples onnx-proto clean

run: deps build
	$(RELEASE_BIN)/equivd replay Samples/labels.csv --bundle Models

test: deps-torch build-debug swift-test python-test conv-c-test libfuzzer-short test-package

deps:
	@scripts/install-deps.sh

deps-torch:
	@scripts/install-deps.sh --torch

build:
	$(SWIFT) build -c release --product equivd
	$(SWIFT) build -c release --product equivctl

build-debug:
	$(SWIFT) build --build-tests

# The convolution suites run again with each narrower kernel (EQUIVD_CONV_ISA), so every kernel
# this machine can run is checked.
swift-test:
	$(SWIFT) test --skip-build
	for isa in avx2 portable; do EQUIVD_CONV_ISA=$$isa $(SWIFT) test --skip-build --filter "ConvolutionTests|LinearTests|NodeConformanceTests|WholeModelTests" || exit 1; done

# Reference checks against numpy/scipy and onnxruntime, and the training toolkit's own tests;
# they drive the debug equivd.
python-test:
	EQUIVD=.build/debug/equivd PYTHONPATH=Training $(PYTHON) -m pytest -q Tests/python Training/tests

# The convolution kernels in C alone against nested-loop references (Tests/CDirectConv): natively
# with each kernel (EQUIVD_CONV_ISA; one the CPU lacks falls back to the widest it has), then
# cross-compiled for aarch64 and run under qemu-user, NEON and portable.
CONV_SOURCES := Sources/CDirectConv/conv.c Sources/CDirectConv/thin.c Sources/CDirectConv/sinc.c
CONV_TESTS := conv_reference_test thin_reference_test sinc_reference_test
conv-c-test:
	mkdir -p .build/conv-c-test
	for t in $(CONV_TESTS); do \
	  cc -O2 -Wall -Wextra -Werror -ISources/CDirectConv/include $(CONV_SOURCES) Tests/CDirectConv/$$t.c -o .build/conv-c-test/$$t -lpthread -lm || exit 1; \
	  for isa in avx512 avx2 portable; do EQUIVD_CONV_ISA=$$isa .build/conv-c-test/$$t || exit 1; done; \
	  aarch64-linux-gnu-gcc -O2 -static -Wall -Wextra -Werror -ISources/CDirectConv/include $(CONV_SOURCES) Tests/CDirectConv/$$t.c -o .build/conv-c-test/$$t-aarch64 -lpthread -lm || exit 1; \
	  for isa in neon portable; do EQUIVD_CONV_ISA=$$isa qemu-aarch64 .build/conv-c-test/$$t-aarch64 || exit 1; done; \
	done

# The Debian package (.build/deb/equivd_<version>_<arch>.deb): the Swift runtime linked in.
deb: deps
	scripts/make-deb.sh

# The package installed into a Debian 12 chroot without Swift (debootstrap, cached in /var/tmp;
# root needed): about 6 minutes from cold, 2 with the chroot and the static build made.
test-package: deb
	scripts/test-package.sh

bench: deps build
	$(PYTHON) bench/frontend_bench.py --equivd $(RELEASE_BIN)/equivd --alloc-check --memory-check

# Batch-1 latency of the bundled models, YAMNet and CREPE versus onnxruntime, both pinned to one core,
# same inputs, interleaved. EQUIVD_CONV_ISA=avx2 (or portable) picks a narrower convolution
# kernel; OpenBLAS picks its kernels from OPENBLAS_CORETYPE when set.
bench-model: deps-torch build
	$(PYTHON) scripts/fetch-crepe.py
	$(PYTHON) scripts/fetch-basic-pitch.py
	$(PYTHON) bench/model_bench.py --equivd $(RELEASE_BIN)/equivd

# The convolution kernel alone on the classifier's three big convolutions, each ISA the CPU has,
# pinned to one core, beside the FMA peak of each vector width (docs/benchmarks.md).
bench-conv:
	mkdir -p .build/bench-conv
	$(CC_BENCH) -O2 -ISources/CDirectConv/include $(CONV_SOURCES) bench/conv_kernel_bench.c -o .build/bench-conv/conv -lpthread -lm
	$(CC_BENCH) -O2 bench/fma_peak.c -o .build/bench-conv/fma_peak
	@echo "FMA peak, G lane-FMAs/s: $$(taskset -c 1 .build/bench-conv/fma_peak)"
	@echo "| kernel | conv | M multiply-adds | median, G MAC/s | best, G MAC/s |"
	@echo "| --- | --- | ---: | ---: | ---: |"
	@for isa in avx512 avx2 portable; do EQUIVD_CONV_ISA=$$isa taskset -c 1 .build/bench-conv/conv; done

# What canonicalizing by resampling costs a window: the sinc kernel alone for each ISA, then in
# situ beside one YAMNet call, pinned, interleaved.
bench-resample: deps build
	mkdir -p .build/bench-resample
	$(CC_BENCH) -O2 -ISources/CDirectConv/include $(CONV_SOURCES) bench/sinc_kernel_bench.c -o .build/bench-resample/sinc -lpthread -lm
	@echo "| kernel | shift, bins | taps | median, ms | best, ms |"
	@echo "| --- | ---: | ---: | ---: | ---: |"
	@for isa in avx512 avx2 portable; do EQUIVD_CONV_ISA=$$isa taskset -c 1 .build/bench-resample/sinc; done
	$(PYTHON) bench/resample_bench.py --equivd $(RELEASE_BIN)/equivd

# libsamplerate's converters against libsoxr's recipes (the C libraries through ctypes): SNR
# against an exact band-limited sweep, aliasing, ns per sample, for file replay and per-window
# canonicalization (about 3 minutes).
bench-resamplers: deps
	$(PYTHON) bench/resampler_bench.py

# equivd run live on the ALSA file-plugin device in real time: CPU, RSS, latency to a socket client.
bench-service: deps build
	$(PYTHON) bench/service_bench.py --equivd $(RELEASE_BIN)/equivd --seconds 120

# One daemon at 100x real time publishing to a real mosquitto with two subscribers, steady and
# through a 30-second broker outage: throughput, CPU, memory, queue, losses (about 2.5 minutes).
bench-fleet: deps build
	$(PYTHON) bench/fleet_bench.py --equivd $(RELEASE_BIN)/equivd

# Replay throughput on one core versus a numpy/scipy + onnxruntime pipeline doing the same work.
bench-replay: deps build
	$(PYTHON) bench/replay_bench.py --equivd $(RELEASE_BIN)/equivd

# What mode partial costs beyond canon, in classifier calls (equivd replay pinned to one core).
bench-partial: deps build
	$(PYTHON) bench/partial_bench.py --equivd $(RELEASE_BIN)/equivd

# Real recordings nobody here made (Debian's GM soundfonts rendered by fluidsynth at set-up, and
# their resample-shifted copies): YAMNet frozen with a canonicalizer byod trains without labels,
# and a classifier byod trains on equivd's features, through equivd replay, into
# docs/results.md "Real recordings" (about 20 minutes a set). REAL_SET: instruments (every
# pitch: no canonical pose) or registers (each instrument near its own register: a pose).
REAL_SET := instruments
REAL := data/recordings/$(REAL_SET)
real-table: deps-torch build
	scripts/fetch-recordings.sh --set $(REAL_SET)
	PYTHONPATH=Training $(PYTHON) -m equivtrain byod --manifest $(REAL)/train.csv --out data/bundles/yamnet-$(REAL_SET) \
	  --classifier data/pretrained/yamnet.onnx --input-spec data/pretrained/yamnet.input.json \
	  --label-map $(REAL)/yamnet_label_map.json --activation sigmoid
	PYTHONPATH=Training $(PYTHON) -m equivtrain byod --manifest $(REAL)/train.csv --out data/bundles/byod-$(REAL_SET) --train-classifier \
	  --steps 400 --patience 3
	PYTHONPATH=Training $(PYTHON) -m equivtrain real-table --recordings $(REAL) --equivd $(RELEASE_BIN)/equivd \
	  --bundle "YAMNet, frozen (AudioSet, 521 outputs mapped to 7 labels)=data/bundles/yamnet-$(REAL_SET)" \
	  --bundle "equivd-feature classifier trained by byod --train-classifier=data/bundles/byod-$(REAL_SET)"

# 24 hours of audio through equivd run at 100x real time with 50 clients (about 15 minutes).
soak: deps build
	$(PYTHON) scripts/soak.py --equivd $(RELEASE_BIN)/equivd --audio-hours 24 --speed 100 --out soak.json

# Every seeded-mutation fuzzer at length, release build: 1M inputs each (ONNX files, ONNX graphs,
# audio files, bundle.json, socket request streams) per seed.
fuzz: deps
	for seed in 1 2 3; do EQUIVD_FUZZ_ITERATIONS=1000000 EQUIVD_FUZZ_SEED=$$seed $(SWIFT) test -c release -Xswiftc -enable-testing --filter Fuzz; done

# Re-export the whole-model fixtures with PyTorch and record onnxruntime's outputs.
fixtures: deps-torch
	$(PYTHON) Tests/EquivModelTests/Fixtures/make_fixtures.py

# Regenerate Sources/EquivModel/Generated/onnx.pb.swift (needs protobuf-compiler and libonnx-dev).
onnx-proto:
	scripts/gen-onnx-proto.sh

# The default bundle (Models/), row (b)'s bundle, docs/results.md and Samples/, all from the seed
# (about 53 minutes on 2 cores, from its parts: data 10, classifier 6, canonicalizers 7, fixed part 8,
# table 22).
models: deps-torch build
	PYTHONPATH=Training $(PYTHON) -m equivtrain models --data data --out Models --table docs/results.md
	PYTHONPATH=Training $(PYTHON) -m equivtrain samples --out Samples

# The results table of Models/ and data/noprior-bundle on the test sets (about 20 minutes).
table: deps build
	PYTHONPATH=Training $(PYTHON) -m equivtrain table

# Both canonicalizers again for the frozen classifier in Models/ (with prior: the bundle; without:
# row (b)'s bundle in data/noprior-bundle), the fixed part (mode partial), then the table (about 40
# minutes; `make models` ends so).
canonicalizers: deps-torch build
	PYTHONPATH=Training $(PYTHON) -m equivtrain canonicalizers

# The results table again through equivd replay, side by side in docs/results.md (about 30 minutes;
# needs the test sets and Python figures of `make table` or `make models`). ROWS=p reruns row (p) only.
table-swift: deps build
	PYTHONPATH=Training $(PYTHON) -m equivtrain table-swift --equivd $(RELEASE_BIN)/equivd $(if $(ROWS),--rows $(ROWS))

# The separator and FixedPose of mode `partial` (row (p)), added to Models/ (about 8 minutes;
# `canonicalizers` and `models` end so).
fixed-part: deps-torch build
	PYTHONPATH=Training $(PYTHON) -m equivtrain fixed-part --bundle Models

# Speed shift with only the rotation-locked part translated back: the ceilings and estimates of the
# fixed part, measured on 8 paired machines per class (about 10 minutes; docs/results.md).
partial-table: deps-torch build
	PYTHONPATH=Training $(PYTHON) -m equivtrain partial-table

samples: deps
	PYTHONPATH=Training $(PYTHON) -m equivtrain samples --out Samples

clean:
	rm -rf .build

# libFuzzer (coverage-guided, AddressSanitizer) on the audio-file reader, the ONNX loader,
# bundle.json and the socket request reader: 1M executions each (Fuzz/run.sh; Fuzz/ is its own package).
libfuzzer: deps
	Fuzz/run.sh 1000000 3600

# The short libFuzzer pass `make test` runs: 20 000 executions or a minute per harness.
libfuzzer-short:
	Fuzz/run.sh 20000 60

# valgrind memcheck over a release replay of every sample: 0 errors or it fails. Debian's
# valgrind 3.19 cannot read Swift 6.3's DWARF, so it runs a copy with the debug info stripped.
memcheck: deps build
	objcopy --strip-debug $(RELEASE_BIN)/equivd .build/equivd-nodebug
	valgrind --error-exitcode=99 --leak-check=no --track-origins=yes .build/equivd-nodebug replay Samples/labels.csv --bundle Models --quiet

# memcheck first, then ThreadSanitizer over the service: its Swift suites, then the daemon under the end-to-end tests
# (audio paced at 1x; a race makes the daemon exit 66). AddressSanitizer the same way, with
# LeakSanitizer on (scripts/lsan.supp: TOMLKit's and XCTest's own leaks).
sanitize: deps memcheck
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter "EquivServiceTests|ALSACapture|SampleRing"
	TSAN_OPTIONS="halt_on_error=1 exitcode=66" EQUIVD=.build-tsan/debug/equivd EQUIVD_TEST_SPEED=1 $(PYTHON) -m pytest -q Tests/python/test_service.py Tests/python/test_faults.py
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp $(SWIFT) test --sanitize=address --scratch-path .build-asan --filter "EquivServiceTests|ALSACapture|SampleRing"
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp EQUIVD=.build-asan/debug/equivd EQUIVD_TEST_SPEED=1 $(PYTHON) -m pytest -q Tests/python/test_service.py Tests/python/test_faults.py

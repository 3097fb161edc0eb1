# equivd — the two commands: `make run` (set up, build, run the main job on the bundled default)
# and `make test` (set up, build, run every test). Both install what they need first.
SWIFT ?= swift
PYTHON ?= python3
RELEASE_BIN := .build/release

.PHONY: run test deps build build-debug swift-test python-test bench samples clean

run: deps build
	$(RELEASE_BIN)/equivd features Samples

test: deps build-debug swift-test python-test

deps:
	@scripts/install-deps.sh

build:
	$(SWIFT) build -c release --product equivd
	$(SWIFT) build -c release --product equivctl

build-debug:
	$(SWIFT) build --build-tests

swift-test:
	$(SWIFT) test --skip-build

# Reference checks against numpy/scipy; they drive the debug equivd that swift-test built.
python-test:
	EQUIVD=.build/debug/equivd $(PYTHON) -m pytest -q Tests/python

bench: deps build
	$(PYTHON) bench/frontend_bench.py --equivd $(RELEASE_BIN)/equivd --alloc-check --memory-check

samples: deps
	scripts/make-samples.sh

clean:
	rm -rf .build

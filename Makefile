# Every target sets up .venv on first use (editable install of this project).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast bench bench-quick profile report sweep alternate train-reference \
	bench-reference profile-reference sweep-reference alternate-reference report-reference \
	reference lint clean

# A user's runs (bench, profile, report) write under out/ (ignored by git); only the
# *-reference targets rewrite the committed set in bench/results/ and profiles/reports/.

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the whole suite on every core (pytest-xdist; worksteal evens out the long tests), the
# 15 slowest listed, after the Numba kernels are compiled once per format, the formats in
# parallel (implementations/precompile.py); test-fast: the edit-test loop (kernels,
# gradients, checks, bad input)
test: $(STAMP)
	$(PY) -m implementations.precompile float32 & $(PY) -m implementations.precompile float64; wait
	$(VENV)/bin/pytest -q -n auto --dist worksteal --durations=15

FAST_TESTS = tests/test_kernels.py tests/test_gradients.py tests/test_bad_input.py \
	tests/test_registry_and_settings.py tests/test_formats.py
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -n auto $(FAST_TESTS)

bench: $(STAMP)
	$(PY) -m bench.suite.run

bench-quick: $(STAMP)
	$(PY) -m bench.suite.run --quick

profile: $(STAMP)
	$(VENV)/bin/mnist-tiers profile

report: $(STAMP)
	$(VENV)/bin/mnist-tiers report

sweep: $(STAMP)
	$(VENV)/bin/mnist-tiers sweep

sweep-reference: $(STAMP)
	$(VENV)/bin/mnist-tiers sweep --reference

# whole epochs of numba-fused and numpy alternating in one process (medians of 3 rounds)
alternate: $(STAMP)
	$(VENV)/bin/mnist-tiers alternate

alternate-reference: $(STAMP)
	$(VENV)/bin/mnist-tiers alternate --reference

# 10-epoch training runs of every fast CPU tier, saved for the report's accuracy curves
# (each default is the registry's, read when the recipe runs, after set-up; override on the
# command line, e.g. make train-reference REF_TIERS="numpy numba")
REGISTRY = $(PY) -c "from implementations import registry as r; print($(1))"
REF_TIERS ?= $(shell $(call REGISTRY,' '.join(r.names(r.select(device='cpu', fast=True)))))
# ... and in other number formats (tier:format), for the report's precision table
REF_FORMATS ?= $(shell $(call REGISTRY,' '.join(f'{t}:{f}' for t, f in r.REFERENCE_FORMATS)))
# ... and the fastest CPU tier at other widths, for the report's accuracy-vs-width table
WIDTH_TIER ?= $(shell $(call REGISTRY,r.WIDTH_STUDY))
REF_WIDTHS ?= 32 300 800
train-reference: $(STAMP)
	@dir=bench/results/$$($(PY) -c "from implementations.machine import machine_name as m; print(m())"); \
	mkdir -p $$dir; for t in $(REF_TIERS); do \
	  echo "training $$t (10 epochs) -> $$dir/train-$$t.json"; \
	  $(VENV)/bin/mnist-tiers train --tier $$t --epochs 10 --json --no-progress > $$dir/.train-$$t.tmp \
	    && mv $$dir/.train-$$t.tmp $$dir/train-$$t.json || exit 1; done; \
	for tf in $(REF_FORMATS); do t=$${tf%:*}; f=$${tf#*:}; \
	  echo "training $$t in $$f (10 epochs) -> $$dir/train-$$t-$$f.json"; \
	  $(VENV)/bin/mnist-tiers train --tier $$t --dtype $$f --epochs 10 --json --no-progress \
	    > $$dir/.train-$$t-$$f.tmp && mv $$dir/.train-$$t-$$f.tmp $$dir/train-$$t-$$f.json \
	    || exit 1; done; \
	for h in $(REF_WIDTHS); do \
	  echo "training $(WIDTH_TIER) at H=$$h (10 epochs) -> $$dir/train-$(WIDTH_TIER)-h$$h.json"; \
	  $(VENV)/bin/mnist-tiers train --tier $(WIDTH_TIER) --hidden $$h --epochs 10 --json \
	    --no-progress > $$dir/.train-h$$h.tmp && mv $$dir/.train-h$$h.tmp \
	    $$dir/train-$(WIDTH_TIER)-h$$h.json || exit 1; done

bench-reference: $(STAMP)
	$(PY) -m bench.suite.run --reference

profile-reference: $(STAMP)
	$(VENV)/bin/mnist-tiers profile --reference

report-reference: $(STAMP)
	$(VENV)/bin/mnist-tiers report --reference

# the committed reference set of this machine: trainings, benchmarks, profiles, report
reference: train-reference bench-reference profile-reference sweep-reference \
	alternate-reference report-reference

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks

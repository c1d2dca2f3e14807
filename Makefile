# The course's two commands (see README): `make course` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# nbgrader shells out to `alembic`, so the venv's bin/ must be on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: course test test-fast bench paper setup data release lab clean browser

course: setup data release   ## everything: install, data, student release, all notebooks -> build/
	$(BIN)/python -m course_site.build

# Two test processes (pytest-xdist), one BLAS/OpenMP thread each (two kernels with two threads
# each on two cores run many times slower than with one). Each file -- a notebook's cells, a
# module's fixtures -- runs in one process (--dist loadfile; conftest.py also keeps a notebook
# with the one whose model it reuses), so every notebook is executed once per run; notebooks
# come first, so the longest start first.
# The solution notebooks run in tests/test_grading.py (graded, every cell checked).
TEST_WORKERS ?= 2
TEST_ENV = OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

test: setup data browser     ## everything, then the whole test suite at the quick budget
	$(TEST_ENV) COURSE_BUDGET=$${COURSE_BUDGET:-quick} $(BIN)/python -m pytest \
	  -n $(TEST_WORKERS) --dist loadfile --durations=20 --nbval-lax notebooks tests

test-fast: setup data        ## the edit loop: unit tests only (no notebook, grading or browser run)
	$(TEST_ENV) COURSE_BUDGET=quick $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile \
	  -m "not slow" tests

bench: setup data            ## meta-training throughput, laptop accuracy -> build/results.json "benchmarks"
	$(BIN)/python -m course_site.benchmarks
	$(BIN)/python -m course_site.grading_benchmark
	$(BIN)/python -m course_site.laptop

paper: setup data            ## paper-scale MAML and ProtoNets on a GPU -> build/paper.json (hours)
	$(BIN)/python -m course_site.paper

FORMGRADER := $(VENV)/etc/jupyter/jupyter_server_config.d/course_grading.json
setup: $(VENV)/.installed $(FORMGRADER)

$(FORMGRADER): $(VENV)/.installed course_grading/grade/formgrader.py   # totals less late penalties
	$(BIN)/python -m course_grading.grade.formgrader >/dev/null

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[all]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

data: setup                  ## find or fetch the data sets and cache decoded tensors
	$(BIN)/python -m course_lib.data prepare

release: setup               ## regenerate assignments/ from solutions/ with nbgrader
	$(BIN)/python -m course_grading.grade.assignments release

# the browser tests (the book, JupyterLab, the Formgrader) drive Debian's headless Chromium
browser:                     ## install chromium + chromium-driver when missing (root: apt-get)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and chromium-driver (apt-get) for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; \
	  elif [ "$${CI:-}" = true ]; then \
	    echo "chromium and chromium-driver are missing and this is not root:" \
	         "apt-get install chromium chromium-driver" >&2; exit 1; \
	  else \
	    echo "NOTE: chromium / chromium-driver are missing and this is not root, so the" \
	         "browser test of the course book is skipped (sudo apt-get install chromium chromium-driver)"; \
	  fi; \
	fi

lab: setup                   ## JupyterLab on the repository (students)
	$(BIN)/jupyter lab $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

clean:
	rm -rf build gradebook.db

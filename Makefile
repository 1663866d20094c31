# The two commands: `make run` (set up, then run the demo) and `make test` (set up, then lint and test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# command:debian-package pairs of the real peers the tests talk to
TEST_TOOLS := redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools \
	nc:netcat-openbsd curl:curl tshark:tshark systemd-analyze:systemd hexdump:bsdextrautils \
	chromium:chromium chromedriver:chromium-driver haproxy:haproxy
BENCH_TOOLS := $(TEST_TOOLS) socat:socat wrk:wrk

.PHONY: run test lint bench venv test-tools bench-tools clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-e '.[test]' --config-settings editable_mode=compat
	@$(BIN)/twistd --help | grep tcpplay >/dev/null || { echo "twistd does not list tcpplay: plugin not installed" >&2; exit 1; }
	@touch $(STAMP)

# Install the Debian packages of missing peers when root with apt-get; otherwise name them and stop.
define ensure_tools
	@missing=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if command -v nc >/dev/null 2>&1 && ! nc -h 2>&1 | grep -qE '^[[:space:]]*-N'; then missing="$$missing netcat-openbsd"; fi; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$$(echo $$missing)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing system packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing system packages, install them with: sudo apt-get install $$missing" >&2; exit 1; \
	  fi; \
	fi
endef

test-tools:
	$(call ensure_tools,$(TEST_TOOLS))

bench-tools:
	$(call ensure_tools,$(BENCH_TOOLS))

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) test-tools lint
	$(BIN)/python -m pytest -q

run: $(STAMP)
	$(BIN)/twistd -n --pidfile= tcpplay demo

bench: $(STAMP) bench-tools
	$(BIN)/python bench/proxy_bench.py --decode --decode-process
	$(BIN)/python bench/web_bench.py

clean:
	rm -rf $(VENV) build dist *.egg-info

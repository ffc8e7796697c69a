# The two commands of the README: `make run` and `make test`. Everything else is a helper.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
MANAGE := $(BIN)/python manage.py

.PHONY: run test test-fast lint format lock messages clean

# PORT and SANDBOX_PORT from the environment win over .env (`PORT=18300 SANDBOX_PORT=18390 make
# run`); the API bases that .env leaves empty follow SANDBOX_PORT (console/settings.py).
# Bytecode compiled ahead: where PYTHONDONTWRITEBYTECODE is set (as in many containers), every
# `manage.py` command (tag_users, jobs) would compile the project again at each start (~0.15 s).
run: $(VENV)/.installed-run
	@$(BIN)/python -m compileall -q console tagging chatbot wecom manage.py
	@$(BIN)/python -m console.envfile
	@$(MANAGE) runconsole --check-ports
	@$(MANAGE) bootstrap
	@$(MANAGE) runconsole

test: $(VENV)/.installed-dev
	@DJANGO_SETTINGS_MODULE=tests.settings $(MANAGE) compiletranslations --verbosity 0
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

# The inner loop: everything but the browser journeys and the slow groups, on both cores
# (about a minute). `make test` and CI still run everything.
test-fast: $(VENV)/.installed-dev
	@DJANGO_SETTINGS_MODULE=tests.settings $(MANAGE) compiletranslations --verbosity 0
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 -m "not browser and not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Extract our strings into the zh-hans catalogue (needs GNU gettext: apt-get install gettext).
messages: $(VENV)/.installed-dev
	@# makemessages runs with DEBUG on so that it needs no keys; it does not serve anything.
	DEBUG=true $(MANAGE) makemessages --locale zh_Hans --no-obsolete --ignore '.venv/*' --ignore 'var/*' \
		--ignore 'tests/*' --ignore 'bench/*' --ignore 'build/*' \
		--add-location file

# Re-pin constraints.txt from a fresh resolution of pyproject.toml.
lock:
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip --quiet install --upgrade pip
	$(VENV)-lock/bin/python -m pip --quiet install ".[dev]"
	$(VENV)-lock/bin/python -m pip freeze --exclude tag-console > constraints.txt
	rm -rf $(VENV)-lock

$(VENV)/.created:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (python3.11 or python3)."; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed; $(PYTHON) is older."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@$(PIP) install --upgrade pip
	@touch $@

$(VENV)/.installed-run: $(VENV)/.created pyproject.toml constraints.txt
	@echo "Installing the console into $(VENV)…"
	@$(PIP) install --constraint constraints.txt --config-settings editable_mode=compat --editable ".[postgres,redis]"
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.created pyproject.toml constraints.txt
	@echo "Installing the console and its test tools into $(VENV)…"
	@$(PIP) install --constraint constraints.txt --config-settings editable_mode=compat --editable ".[dev]"
	@touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis

# dbfleet.postgresql — build and test entry points.  `make help` lists them.
# Everything runs from the repository root (which is the collection root) with .venv/bin first on PATH.
# CI: .ci/run  (== `make test` on a fresh Debian machine, as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg

# Lazily evaluated (=), so it is computed after `bootstrap` has created the venv.
SITE_PACKAGES = $(shell $(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)
# build/collections holds the link to this checkout; site-packages holds the collections the
# `ansible` package bundles (community.postgresql, ansible.posix, ...): Galaxy is not reachable.
LINT_COLLECTIONS_PATH = $(ROOT)/build/collections:$(SITE_PACKAGES)

PYTEST := python -m pytest
PYTEST_OPTS ?= -o cache_dir=tests/output/.pytest_cache -ra
FLEETLAB := tests/lab/fleetlab
INVENTORY := inventories/lab
STAGE := scripts/stage.sh
SUMMARY := $(ROOT)/tests/output/test-summary.txt
SUBMAKE := $(MAKE) --no-print-directory
# `make test KEEP_GOING=1` runs every stage even after a failure (still exits non-zero).
export KEEP_GOING

.PHONY: help bootstrap lab-up lab-down lab-status sanity changelog-lint units lint integration \
        molecule build build-check test demo clean

help:
	@echo "Targets:"
	@echo "  bootstrap     apt packages (bindep.txt, profile test), .venv from requirements.txt, build/collections link"
	@echo "  lab-up        start the fleet lab (tests/lab/fleetlab up; writes $(INVENTORY)/hosts.yml)"
	@echo "  lab-down      stop the fleet lab and remove everything it created"
	@echo "  lab-status    what the fleet lab runs"
	@echo "  sanity        ansible-test sanity (scripts/sanity.sh) + antsibull-changelog lint"
	@echo "  units         pytest tests/unit"
	@echo "  lint          ansible-lint, production profile, offline"
	@echo "  integration   lab-up, then pytest tests/integration tests/lab (the lab stays up)"
	@echo "  molecule      molecule test --all (scenarios under extensions/molecule/)"
	@echo "  build         ansible-galaxy collection build -> build/"
	@echo "  build-check   build, install the artifact into a temp dir, ansible-doc every module from it"
	@echo "  test          bootstrap sanity units lint integration molecule build-check (fail fast, summary;"
	@echo "                KEEP_GOING=1 runs every stage anyway)"
	@echo "  demo          bootstrap, lab-up, playbooks/demo.yml: nightly backups dumped now, then a freshness check per host"
	@echo "  clean         lab-down, remove build/ and tests/output/"

bootstrap:
	@echo "== bootstrap: scripts/bootstrap.sh"
	@scripts/bootstrap.sh

# --- fleet lab -----------------------------------------------------------------------------------
define need_fleetlab
	@if [[ ! -x $(FLEETLAB) ]]; then echo "$(FLEETLAB) is missing or not executable: the fleet lab is not available" >&2; exit 1; fi
endef

lab-up:
	$(need_fleetlab)
	@echo "== lab-up: $(FLEETLAB) up"
	@$(FLEETLAB) up

lab-down:
	@if [[ -x $(FLEETLAB) ]]; then echo "== lab-down: $(FLEETLAB) down"; $(FLEETLAB) down; \
	 else echo "== lab-down: $(FLEETLAB) not present, nothing to stop"; fi

lab-status:
	$(need_fleetlab)
	@echo "== lab-status: $(FLEETLAB) status"
	@$(FLEETLAB) status

# --- static checks -------------------------------------------------------------------------------
sanity: changelog-lint
	@echo "== sanity: scripts/sanity.sh (ansible-test sanity --python 3.11 --venv)"
	@scripts/sanity.sh

changelog-lint:
	@echo "== changelog-lint: antsibull-changelog lint"
	@antsibull-changelog lint
	@antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	@echo "[changelog] RESULT: antsibull-changelog lint ok ($$(find changelogs/fragments -name '*.y*ml' | wc -l) fragment(s))"

lint:
	@echo "== lint: ansible-lint (profile production, offline; .ansible-lint)"
	@ANSIBLE_COLLECTIONS_PATH="$(LINT_COLLECTIONS_PATH)" ansible-lint $$([[ -t 1 ]] || echo --nocolor)

# --- tests ---------------------------------------------------------------------------------------
# Exit status 5 is pytest's "no tests collected": accepted here only, while tests/unit is empty.
units:
	@echo "== units: $(PYTEST) $(PYTEST_OPTS) tests/unit"
	@rc=0; if [[ -d tests/unit ]]; then $(PYTEST) $(PYTEST_OPTS) tests/unit || rc=$$?; else rc=5; fi; \
	 if [[ $$rc -eq 5 ]]; then echo "RESULT: no unit tests"; exit 0; fi; exit $$rc

# The lab's opt-in tests run here too: one stops and restarts a replica, one waits for cron to fire.
integration: lab-up
	@echo "== integration: $(PYTEST) $(PYTEST_OPTS) --durations=15 tests/integration tests/lab (the 15 slowest listed)"
	@DBFLEET_LAB_DISRUPTIVE=1 DBFLEET_LAB_SLOW=1 $(PYTEST) $(PYTEST_OPTS) --durations=15 tests/integration tests/lab

# Molecule 26 works in collection mode only from the collection root (where galaxy.yml is): it then finds the
# scenarios under extensions/molecule/ and their shared extensions/molecule/config.yml. `reset` first drops
# Molecule's cached state (a run killed half-way would otherwise skip create, i.e. `fleetlab up`).
molecule:
	@if [[ -z "$$(find extensions/molecule -name molecule.yml 2>/dev/null | head -n 1)" ]]; then \
	   echo "== molecule: no scenarios under extensions/molecule/"; echo "RESULT: no molecule scenarios"; \
	 else \
	   if [[ ! -e build/collections/ansible_collections/dbfleet/postgresql/galaxy.yml ]]; then \
	     echo "build/collections/ansible_collections/dbfleet/postgresql is missing: run make bootstrap" >&2; exit 1; fi; \
	   echo "== molecule: molecule test --all (extensions/molecule/)"; \
	   start=$$(date +%s); \
	   molecule reset --all >/dev/null 2>&1 || true; \
	   molecule test --all; \
	   echo "RESULT: molecule test --all passed ($$(( $$(date +%s) - start ))s)"; \
	 fi

# --- artifact ------------------------------------------------------------------------------------
build:
	@echo "== build: ansible-galaxy collection build --force --output-path build/"
	@scripts/build-check.sh --build-only

build-check:
	@echo "== build-check: build, install into a temp dir, ansible-doc every module from it"
	@scripts/build-check.sh

# --- everything ----------------------------------------------------------------------------------
test:
	@mkdir -p tests/output && rm -f $(SUMMARY)
	@$(STAGE) bootstrap   $(SUBMAKE) bootstrap
	@$(STAGE) sanity      $(SUBMAKE) sanity
	@$(STAGE) units       $(SUBMAKE) units
	@$(STAGE) lint        $(SUBMAKE) lint
	@$(STAGE) integration $(SUBMAKE) integration
	@$(STAGE) molecule    $(SUBMAKE) molecule
	@$(STAGE) build-check $(SUBMAKE) build-check
	@echo; echo "===== summary (logs: tests/output/stages/) ====="; cat $(SUMMARY)
	@! grep -q ' FAILED ' $(SUMMARY)

demo: bootstrap lab-up
	@echo "== demo: ansible-playbook playbooks/demo.yml -i $(INVENTORY) -e backup_run_now=true"
	@ansible-playbook playbooks/demo.yml -i $(INVENTORY) -e backup_run_now=true

clean: lab-down
	@echo "== clean: rm -rf build/ tests/output/"
	@rm -rf build tests/output

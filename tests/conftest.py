"""Shared pytest set-up for tests/unit, tests/integration and tests/lab.

* ``build/collections`` goes first on ``sys.path``, so
  ``import ansible_collections.dbfleet.postgresql.plugins...`` imports this checkout (through the
  link ``make bootstrap`` creates) and merges with the collections the ``ansible`` package ships
  (``ansible_collections`` is a namespace package).
* The repository root goes on ``sys.path`` too, so ``tests.lab.pytest_fleetlab`` is importable;
  that plugin (the ``fleetlab`` fixtures) is registered only when the file exists.
* ``ANSIBLE_CONFIG`` points at the repository's ansible.cfg, for ansible-playbook & co. started
  by tests from any working directory.
"""

import os
import sys
import warnings

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_DIR = os.path.join(REPO_ROOT, "build", "collections")
COLLECTION_LINK = os.path.join(COLLECTIONS_DIR, "ansible_collections", "dbfleet", "postgresql")

if not os.path.isdir(COLLECTION_LINK):
    warnings.warn(
        "%s is missing: run `make bootstrap` so `ansible_collections.dbfleet.postgresql` "
        "resolves to this checkout" % COLLECTION_LINK,
        stacklevel=1,
    )

for _path in (REPO_ROOT, COLLECTIONS_DIR):
    if _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)

os.environ["ANSIBLE_CONFIG"] = os.path.join(REPO_ROOT, "ansible.cfg")

pytest_plugins = []
if os.path.isfile(os.path.join(REPO_ROOT, "tests", "lab", "pytest_fleetlab.py")):
    pytest_plugins.append("tests.lab.pytest_fleetlab")

"""Fleet lab: a small PostgreSQL fleet on one machine, for dbfleet.postgresql's tests.

Five "hosts" on loopback addresses, each a mount + UTS namespace holding its own sshd, cron
and (for the database hosts) PostgreSQL 15, with per-host directories bind-mounted over the
usual paths; plus an S3 endpoint (moto's server mode). Run as root:

    fleetlab.py up | down | status [--json]
    fleetlab.py exec HOST -- CMD...      run CMD inside HOST's namespaces
    fleetlab.py stop-pg HOST | start-pg HOST

The code lives in the package fleetlab_pkg/ (see its __init__ for the map); this module is the
entry point and re-exports the names the pytest plugin (which loads this file by path), the
tests and the benchmarks use. Only the standard library is used, except boto3 (imported
lazily) to create the bucket.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The package is imported as tests.lab.fleetlab_pkg whoever runs this file (the CLI wrapper
# runs it as a script), so there is only ever one copy of it in a process.
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

# pylint: disable=wrong-import-position,unused-import
from tests.lab.fleetlab_pkg.cli import main  # noqa: E402
from tests.lab.fleetlab_pkg.config import (  # noqa: E402,F401
    BY_NAME, DEBIAN, HOSTS, INVENTORY, KEY, LOGS, PG_BIN, PG_DATA, PG_HOSTS, PGDG, PGDG_HOST, PRIMARY, REPLICAS, REPO,
    RUN, S3_BUCKET, S3_URL, STATE, Host, LabError)
from tests.lab.fleetlab_pkg.inventory import host_vars, inventory_vars  # noqa: E402,F401
from tests.lab.fleetlab_pkg.namespaces import host_cmd, lab_mounts, lab_processes  # noqa: E402,F401
from tests.lab.fleetlab_pkg.postgres import psql_command  # noqa: E402,F401
from tests.lab.fleetlab_pkg.proc import mnt_ns, proc_alive, proc_comm  # noqa: E402,F401
from tests.lab.fleetlab_pkg.s3 import s3_client  # noqa: E402,F401
from tests.lab.fleetlab_pkg.state import load_secrets  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())

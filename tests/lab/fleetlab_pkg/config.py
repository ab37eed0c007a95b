"""What the lab is made of: its paths, its hosts and where each host keeps PostgreSQL.

Everything else in the package reads these names; nothing here does any work.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
INVENTORY = REPO / "inventories" / "lab" / "hosts.yml"
STATE = Path("/var/lib/dbfleet-lab")
RUN = STATE / "run"
LOGS = STATE / "logs"
KEY = STATE / "ssh" / "id_ed25519"
SECRETS = STATE / "secrets.json"
CREATED = STATE / "created.json"

# Every process the lab starts carries this variable, so `down` can find its children
# (postgres backends, archive_command, ...) even if some record got lost.
MARKER = "DBFLEET_LAB_MEMBER"

PG_VERSION = "15"
PG_PORT = 5432
WAL_ARCHIVE = "/srv/wal-archive"
REPL_PASSFILE = "/var/lib/postgresql/.replicator.pgpass"

S3_ADDR = "127.0.0.15"
S3_PORT = 9000
S3_URL = f"http://{S3_ADDR}:{S3_PORT}"
S3_BUCKET = "dbfleet-offsite"
S3_ACCESS_KEY = "dbfleet-lab"
S3_SECRET_KEY = "dbfleet-lab-secret"
S3_REGION = "us-east-1"

SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Layout:
    """Where a host keeps PostgreSQL, and how its superuser gets in over the local socket."""
    name: str
    bin: str
    data: str
    conf: str  # the directory holding postgresql.conf
    log: str  # the file `pg_ctl start -l` writes
    cluster_dirs: tuple[str, ...]  # what a rebuild removes
    password_key: str | None = None  # secrets key of the postgres password, if local auth wants one


# Debian's postgresql-common layout (pg_createcluster 15 main).
DEBIAN = Layout("debian", bin=f"/usr/lib/postgresql/{PG_VERSION}/bin", data=f"/var/lib/postgresql/{PG_VERSION}/main",
                conf=f"/etc/postgresql/{PG_VERSION}/main", log=f"/var/log/postgresql/postgresql-{PG_VERSION}-main.log",
                cluster_dirs=(f"/etc/postgresql/{PG_VERSION}", f"/var/lib/postgresql/{PG_VERSION}"))
# PGDG's RPM layout (RHEL family), cluster made by hand with initdb; password-only local auth.
PGDG = Layout("pgdg", bin=f"/usr/pgsql-{PG_VERSION}/bin", data=f"/var/lib/pgsql/{PG_VERSION}/data",
              conf=f"/var/lib/pgsql/{PG_VERSION}/data", log=f"/var/lib/pgsql/{PG_VERSION}/pgstartup.log",
              cluster_dirs=(f"/var/lib/pgsql/{PG_VERSION}",), password_key="pgdg_postgres_password")

# The Debian hosts' paths, under the names the benchmarks and tests know (fleetlab.PG_BIN).
PG_BIN = DEBIAN.bin
PG_DATA = DEBIAN.data

# Per-host directories bind-mounted over these paths: (path, owner, group, mode), as Debian has them.
HOST_DIRS = (
    ("/srv", "root", "root", 0o755),
    ("/var/lib/postgresql", "postgres", "postgres", 0o755),
    ("/etc/postgresql", "postgres", "postgres", 0o755),
    ("/run/postgresql", "postgres", "postgres", 0o2775),
    ("/var/log/postgresql", "root", "postgres", 0o1775),
    ("/etc/cron.d", "root", "root", 0o755),
    ("/var/spool/cron/crontabs", "root", "crontab", 0o1730),
    ("/opt/dbfleet", "root", "root", 0o755),
    ("/etc/dbfleet", "root", "root", 0o755),
    ("/var/lib/dbfleet", "root", "root", 0o755),
    ("/var/log/dbfleet", "root", "root", 0o755),
    # Lab extras: each host has its own host keys and sshd_config ...
    ("/etc/ssh", "root", "root", 0o755),
)
# ... and the PGDG host its own /var/lib/pgsql (postgres' home on RHEL) and /usr/pgsql-15.
PGDG_DIRS = (
    ("/var/lib/pgsql", "postgres", "postgres", 0o700),
    (f"/usr/pgsql-{PG_VERSION}", "root", "root", 0o755),
)
# Its own /etc/hosts (knows the lab names) and a quiet /etc/crontab (the machine's
# hourly/daily run-parts would otherwise run once per lab host).
HOST_FILES = ("/etc/hosts", "/etc/crontab")


@dataclass(frozen=True)
class Host:
    name: str
    addr: str
    role: str  # primary | replica | backup | pgdg

    @property
    def is_db(self) -> bool:
        """In the inventory's `db` group (the Debian primary and its replicas)."""
        return self.role in ("primary", "replica")

    @property
    def runs_pg(self) -> bool:
        return self.is_db or self.role == "pgdg"

    @property
    def pg_role(self) -> str:
        """What pg_is_in_recovery() should say: only the replicas are standbys."""
        return "replica" if self.role == "replica" else "primary"

    @property
    def layout(self) -> Layout:
        return PGDG if self.role == "pgdg" else DEBIAN

    @property
    def dirs(self) -> tuple:
        return HOST_DIRS + (PGDG_DIRS if self.role == "pgdg" else ())

    @property
    def root(self) -> Path:
        """This host's private files as seen from the real machine."""
        return STATE / "hosts" / self.name / "root"

    def path(self, inside: str) -> Path:
        """Where a path inside the host lives on the real machine."""
        return self.root / inside.lstrip("/")

    @property
    def tag(self) -> str:
        # argv[0] of the namespace holder: names the host and the lab in `ps`.
        return f"dbfleet-lab:{self.name}:{STATE}"


HOSTS = (
    Host("db-primary", "127.0.0.11", "primary"),
    Host("db-replica-1", "127.0.0.12", "replica"),
    Host("db-replica-2", "127.0.0.13", "replica"),
    Host("backup-box", "127.0.0.14", "backup"),
    Host("db-pgdg", "127.0.0.16", "pgdg"),
)
BY_NAME = {h.name: h for h in HOSTS}
PRIMARY = HOSTS[0]
REPLICAS = tuple(h for h in HOSTS if h.role == "replica")
PGDG_HOST = BY_NAME["db-pgdg"]
PG_HOSTS = tuple(h for h in HOSTS if h.runs_pg)
LAB_ADDRS = tuple(h.addr for h in HOSTS) + (S3_ADDR,)
LAB_ADDR_RE = re.compile(r"(?<![\d.])(?:" + "|".join(re.escape(a) for a in LAB_ADDRS) + r")(?![\d])")

# Command -> Debian package, checked before anything starts.
REQUIRED = (
    (f"{PG_BIN}/postgres", "postgresql-15"),
    (f"{PG_BIN}/initdb", "postgresql-15"),
    (f"{PG_BIN}/psql", "postgresql-client-15"),
    (f"{PG_BIN}/pg_basebackup", "postgresql-client-15"),
    ("/usr/bin/pg_createcluster", "postgresql-common"),
    ("/usr/bin/pg_ctlcluster", "postgresql-common"),
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/lib/openssh/sftp-server", "openssh-sftp-server"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/sbin/cron", "cron"),
    ("/usr/bin/unshare", "util-linux"),
    ("/usr/bin/nsenter", "util-linux"),
    ("/usr/sbin/runuser", "util-linux"),
    ("/bin/mount", "mount"),
    ("/bin/hostname", "hostname"),
)


class LabError(Exception):
    """A failure with a message meant for the person running the lab."""


def say(msg: str) -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"fleetlab: warning: {msg}", file=sys.stderr, flush=True)

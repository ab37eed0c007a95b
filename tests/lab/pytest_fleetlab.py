"""pytest plugin: the session-scoped ``fleet_lab`` fixture.

Load it with ``pytest_plugins = ["tests.lab.pytest_fleetlab"]`` or ``-p tests.lab.pytest_fleetlab``
(from the repository root). The fixture runs ``tests/lab/fleetlab up`` once per session (a no-op
taking well under a second when the lab already runs) and never tears the lab down, so several
test runs share one lab; ``make lab-down`` removes it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def _load_fleetlab():
    # By file path, so the plugin also works when loaded under another module name.
    if "dbfleet_fleetlab" in sys.modules:
        return sys.modules["dbfleet_fleetlab"]
    spec = importlib.util.spec_from_file_location("dbfleet_fleetlab", _HERE / "fleetlab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["dbfleet_fleetlab"] = module
    spec.loader.exec_module(module)
    return module


fleetlab = _load_fleetlab()


class FleetLab:
    """A handle on the running fleet lab."""

    def __init__(self):
        self.repo: Path = fleetlab.REPO
        self.inventory: Path = fleetlab.INVENTORY
        self.state_dir: Path = fleetlab.STATE
        self.ssh_key: Path = fleetlab.KEY
        self.hosts: tuple[str, ...] = tuple(h.name for h in fleetlab.HOSTS)
        self.db_hosts: tuple[str, ...] = tuple(h.name for h in fleetlab.HOSTS if h.is_db)
        self.primary: str = fleetlab.PRIMARY.name
        self.replicas: tuple[str, ...] = tuple(h.name for h in fleetlab.REPLICAS)
        # Every host running PostgreSQL: the db group plus db-pgdg (PGDG layout, password auth, group pgdg).
        self.pg_hosts: tuple[str, ...] = tuple(h.name for h in fleetlab.PG_HOSTS)
        self.pgdg: str = fleetlab.PGDG_HOST.name
        self.s3_endpoint_url: str = fleetlab.S3_URL
        self.s3_bucket: str = fleetlab.S3_BUCKET
        self._secrets = fleetlab.load_secrets(create=False)
        self.vars: dict = fleetlab.inventory_vars(self._secrets)

    def _host(self, host: str):
        try:
            return fleetlab.BY_NAME[host]
        except KeyError:
            raise ValueError(f"unknown lab host {host!r}; hosts: {', '.join(self.hosts)}") from None

    def host_addr(self, host: str) -> str:
        return self._host(host).addr

    def host_vars(self, host: str) -> dict:
        """The inventory's variables of that host (group `all`'s, with the host's own on top)."""
        h = self._host(host)
        return {**self.vars, **fleetlab.host_vars(h, self._secrets)}

    def pg_bin(self, host: str) -> str:
        """Where the host's PostgreSQL binaries are (/usr/pgsql-15/bin on db-pgdg); none are on PATH there."""
        return self._host(host).layout.bin

    def pg_data(self, host: str) -> str:
        return self._host(host).layout.data

    def exec(self, host: str, *cmd: str, check: bool = True, input: str | None = None,  # pylint: disable=redefined-builtin
             timeout: float = 300, user: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run cmd inside the host's namespaces (nsenter, no SSH); optionally as another user,
        with env added to this process's environment."""
        argv = fleetlab.host_cmd(self._host(host), list(cmd), user=user)
        return subprocess.run(argv, input=input, capture_output=True, text=True, check=check, timeout=timeout,
                              cwd="/", env={**os.environ, **env} if env else None)

    def ssh_argv(self, host: str) -> list[str]:
        return ["ssh", "-i", str(self.ssh_key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                f"root@{self.host_addr(host)}"]

    def ssh(self, host: str, cmd: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a shell command on the host over real SSH with the lab key."""
        return subprocess.run(self.ssh_argv(host) + [cmd], capture_output=True, text=True, check=check,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def psql(self, host: str, sql: str, db: str = "postgres") -> str:
        """Run SQL as postgres over the host's unix socket; unaligned, tuples only, '|'-separated.
        On db-pgdg the superuser's password goes to that one psql in PGPASSWORD (not on its command line).
        Raises CalledProcessError (with psql's stderr) on any SQL error."""
        argv, env = fleetlab.psql_command(self._host(host), db)
        return self.exec(host, *argv, input=sql, user="postgres", env=env).stdout.rstrip("\n")

    def _fleetlab(self, *args: str) -> subprocess.CompletedProcess:
        res = subprocess.run([str(_HERE / "fleetlab"), *args], capture_output=True, text=True, timeout=300, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"fleetlab {' '.join(args)} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
        return res

    def stop_pg(self, host: str) -> None:
        self._fleetlab("stop-pg", host)

    def start_pg(self, host: str) -> None:
        """Start it again; returns once replication involving the host streams again."""
        self._fleetlab("start-pg", host)

    def status(self) -> dict:
        """fleetlab status --json, whatever its exit code."""
        import json  # pylint: disable=import-outside-toplevel
        res = subprocess.run([str(_HERE / "fleetlab"), "status", "--json"], capture_output=True, text=True,
                             timeout=120, check=False)
        return json.loads(res.stdout)

    def s3_client(self):
        return fleetlab.s3_client()


@pytest.fixture(scope="session")
def fleet_lab() -> FleetLab:
    """The running fleet lab (brought up on first use, left up afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("the fleet lab needs root (mount namespaces, sshd on port 22, PostgreSQL as postgres)")
    res = subprocess.run([str(_HERE / "fleetlab"), "up"], capture_output=True, text=True, timeout=600, check=False)
    if res.returncode != 0:
        pytest.fail(f"tests/lab/fleetlab up failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}",
                    pytrace=False)
    return FleetLab()

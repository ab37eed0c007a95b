"""PostgreSQL on any lab host, whatever its layout: finding, starting and stopping the server,
running SQL as the superuser, and the marker that says which cluster `up` built."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
from pathlib import Path

from .config import PG_PORT, STATE, Host, LabError
from .namespaces import in_host, recorded_ns, run_in
from .proc import (all_pids, ensure_port, mnt_ns, proc_alive, proc_comm, read_pid, signal_and_wait, tail, wait_for,
                   write_file)
from .state import load_secrets


def postmaster_pid(h: Host) -> int | None:
    pid = read_pid(h.path(f"{h.layout.data}/postmaster.pid"))
    return pid if in_host(h, pid, "postgres") else None


def system_identifier(h: Host) -> int | None:
    # ControlFileData starts with the 64-bit system identifier.
    try:
        with open(h.path(f"{h.layout.data}/global/pg_control"), "rb") as fh:
            return struct.unpack("<Q", fh.read(8))[0]
    except (OSError, struct.error):
        return None


# --- SQL -----------------------------------------------------------------------------------------

def psql_command(h: Host, db: str = "postgres") -> tuple[list[str], dict]:
    """argv and extra environment to run SQL from stdin as superuser postgres over the host's
    socket, run as OS user postgres: unaligned, tuples only, '|'-separated, stop on error.
    Where local auth wants a password it travels in PGPASSWORD, never on the command line."""
    argv = [f"{h.layout.bin}/psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", "-"]
    if not h.layout.password_key:
        return argv, {}
    return argv + ["-U", "postgres"], {"PGPASSWORD": load_secrets(create=False)[h.layout.password_key]}


def psql(h: Host, sql: str, db: str = "postgres", check: bool = True, timeout: int = 120):
    """Run SQL (via stdin, so nothing secret shows in `ps`) as postgres over the host's socket."""
    argv, env = psql_command(h, db)
    return run_in(h, argv, user="postgres", input_text=sql, check=check, timeout=timeout, env=env,
                  what=f"psql on {h.name}")


def app_data_sql(customers: int, orders: int) -> str:
    """Database app_prod: customers and their orders, the same shape on every primary."""
    return f"""\
CREATE DATABASE app_prod;
\\connect app_prod
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT g, 'Customer ' || g, 'customer' || g || '@example.com',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '7 minutes'
FROM generate_series(1, {customers}) AS g;
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    amount numeric(10, 2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO orders
SELECT g, 1 + g % {customers}, ((g * 37) % 50000) / 100.0, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '90 seconds'
FROM generate_series(1, {orders}) AS g;
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
ANALYZE;
"""


# --- start and stop ------------------------------------------------------------------------------

def stop_pg(h: Host, mode: str = "fast") -> None:
    pid = postmaster_pid(h)
    if not pid:
        return
    res = run_in(h, [f"{h.layout.bin}/pg_ctl", "stop", "-D", h.layout.data, "-m", mode, "-w", "-t", "60", "-s"],
                 user="postgres", check=False, timeout=90)
    if postmaster_pid(h):
        # No usable cluster config (half-built host): signal the postmaster directly.
        os.kill(pid, signal.SIGINT if mode != "immediate" else signal.SIGQUIT)
        if not wait_for(lambda: not proc_alive(pid), 30):
            raise LabError(f"PostgreSQL on {h.name} (pid {pid}) did not stop: {res.stderr.strip()}")


def pg_remnants(h: Host) -> list[int]:
    """Leftovers of a crashed server: its children, or its not-yet-reaped postmaster, which
    make a new postmaster believe the old one still runs."""
    ns = recorded_ns(h)
    found = [p for p in all_pids() if proc_alive(p) and mnt_ns(p) == ns and proc_comm(p) == "postgres"]
    old = read_pid(h.path(f"{h.layout.data}/postmaster.pid"))
    if old and Path(f"/proc/{old}").exists() and not proc_alive(old):
        found.append(old)  # a zombie
    return found


def start_pg(h: Host) -> None:
    if postmaster_pid(h):
        return
    if not wait_for(lambda: not pg_remnants(h), 15, 0.1):
        signal_and_wait([p for p in pg_remnants(h) if proc_alive(p)], 5)
        wait_for(lambda: not pg_remnants(h), 10, 0.1)
    ensure_port(h.addr, PG_PORT, f"PostgreSQL of {h.name}")
    lay = h.layout
    # On Debian hosts pg_ctl as pg_ctlcluster runs it (same server command line, so pg_lsclusters
    # & co. see the cluster), without pg_ctlcluster's fixed ~2 s of readiness probing.
    conf = [] if lay.conf == lay.data else ["-o", f"-c config_file={lay.conf}/postgresql.conf"]
    res = run_in(h, [f"{lay.bin}/pg_ctl", "start", "-D", lay.data, "-l", lay.log, "-w", "-t", "90", "-s", *conf],
                 user="postgres", check=False, timeout=120)
    if res.returncode != 0 or not postmaster_pid(h):
        raise LabError(f"PostgreSQL on {h.name} did not start ({res.stderr.strip() or res.stdout.strip()}); "
                       f"log {h.path(lay.log)}:\n{tail(h.path(lay.log))}")


def wipe_cluster(h: Host) -> None:
    stop_pg(h, "immediate")
    for inside in h.layout.cluster_dirs:
        shutil.rmtree(h.path(inside), ignore_errors=True)
    ready_marker(h).unlink(missing_ok=True)


# --- what `up` built -----------------------------------------------------------------------------

def ready_marker(h: Host) -> Path:
    return STATE / "hosts" / h.name / "pg-ready.json"


def read_marker(h: Host) -> dict:
    try:
        return json.loads(ready_marker(h).read_text())
    except (OSError, ValueError):
        return {}


def write_marker(h: Host, digest: str) -> None:
    """Record the cluster `up` built (its system identifier) and the secrets it was given."""
    write_file(ready_marker(h), json.dumps({"sysid": system_identifier(h), "secrets": digest}) + "\n", 0o600)


def marker_matches(h: Host) -> bool:
    """The data directory holds the cluster `up` built, not a half-built or foreign one."""
    sysid = system_identifier(h)
    return bool(sysid) and read_marker(h).get("sysid") == sysid

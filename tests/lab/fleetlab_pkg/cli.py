"""The commands: up | down | status [--json] | exec HOST -- CMD | stop-pg HOST | start-pg HOST."""

from __future__ import annotations

import argparse
import concurrent.futures
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import time

from .config import (BY_NAME, HOSTS, INVENTORY, KEY, LOGS, PG_HOSTS, PGDG_HOST, PRIMARY, REPLICAS, REQUIRED, RUN,
                     S3_ADDR, STATE, Host, LabError, say, warn)
from .hosts import ensure_host, ensure_mount_targets
from .inventory import remove_inventory, write_inventory
from .namespaces import (forget_dead_hosts, holder_or_fail, holder_pid, lab_mounts, lab_processes, ns_prefix,
                         referencing_processes)
from .pgdg import ensure_pgdg
from .postgres import postmaster_pid, start_pg, stop_pg
from .proc import proc_alive, proc_cmdline, read_pid, run, signal_and_wait, wait_for, write_file
from .replication import all_streaming, ensure_replication, streaming_replicas
from .s3 import ensure_bucket, start_moto
from .state import StateLock, load_secrets, remove_created
from .status import gather_status, print_status


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the fleet lab must run as root (it creates mount namespaces, binds port 22 on "
                       "127.0.0.11-16 and runs PostgreSQL as postgres): sudo tests/lab/fleetlab "
                       + " ".join(sys.argv[1:]))


def check_prerequisites() -> None:
    missing = sorted({pkg for path, pkg in REQUIRED if not os.access(path, os.X_OK)})
    for name, pkg in (("postgres", "postgresql-common"), ("sshd", "openssh-server")):
        try:
            pwd.getpwnam(name)
        except KeyError:
            missing.append(pkg)
    try:
        grp.getgrnam("crontab")
    except KeyError:
        missing.append("cron")
    if missing:
        raise LabError("missing Debian packages: " + " ".join(sorted(set(missing)))
                       + f" (apt-get install {' '.join(sorted(set(missing)))})")
    # Installed, not imported: importing boto3 takes longer than a warm `up`.
    probe = subprocess.run(["/usr/bin/python3", "-c", "import importlib.util as u, sys; "
                            "sys.exit(not (u.find_spec('psycopg') and u.find_spec('boto3')))"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        warn("/usr/bin/python3 lacks psycopg or boto3, which the collection's modules need on the hosts: "
             "apt-get install python3-psycopg python3-boto3")


# --- up ------------------------------------------------------------------------------------------

def cmd_up(_args) -> int:
    require_root()
    check_prerequisites()
    started = time.monotonic()
    changes: list[str] = []
    with StateLock(create=True):
        pubkey = prepare_state()
        sec = load_secrets()
        moto = start_moto(changes)  # moto takes a second or two to import: let it start meanwhile
        ensure_mount_targets()
        forget_dead_hosts()
        ensure_fleet(pubkey, sec, moto, changes)
        write_inventory(sec, changes)
    took = time.monotonic() - started
    report = gather_status()
    print_status(report)
    if changes:
        say(f"fleet lab up in {took:.1f}s ({len(changes)} change(s): {', '.join(changes)})")
    else:
        say(f"fleet lab already up, nothing to do ({took:.1f}s)")
    say(f"inventory: {INVENTORY}  ssh key: {KEY}")
    return 0 if report["ok"] else 1


def prepare_state() -> str:
    """The state dir's layout and the controller key; returns the public key."""
    if not (RUN / "lab.json").exists():
        # A fresh state dir: processes of a lab whose state was lost would hold our ports.
        strays = lab_processes()
        if strays:
            warn(f"stopping {len(strays)} process(es) left over from an earlier lab")
            signal_and_wait(list(strays), 5)
    for sub in ("ssh", "hosts", "run", "logs"):
        (STATE / sub).mkdir(mode=0o700, exist_ok=True)
    write_file(RUN / "lab.json", json.dumps({"created": time.time()}) + "\n", 0o600)
    if not KEY.exists() or not KEY.with_suffix(".pub").exists():
        KEY.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dbfleet-lab-controller", "-f", str(KEY)])
    return KEY.with_suffix(".pub").read_text()


def ensure_fleet(pubkey: str, sec: dict, moto, changes: list) -> None:
    """Side by side, as none needs another: the Debian fleet (its hosts, then the primary and its
    replicas), db-pgdg (its host, then its cluster), and the bucket."""
    debian_hosts = [h for h in HOSTS if h is not PGDG_HOST]

    def debian() -> None:
        with concurrent.futures.ThreadPoolExecutor(len(debian_hosts)) as pool:
            list(pool.map(lambda h: ensure_host(h, pubkey, changes), debian_hosts))
        ensure_replication(sec, changes)

    def pgdg() -> None:
        ensure_host(PGDG_HOST, pubkey, changes)
        ensure_pgdg(PGDG_HOST, sec, changes)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(debian), pool.submit(pgdg), pool.submit(ensure_bucket, moto, changes)]
        for job in jobs:
            job.result()


# --- down ----------------------------------------------------------------------------------------

def cmd_down(_args) -> int:
    require_root()
    with StateLock(create=False) as lock:
        if lock is None and not lab_processes():
            INVENTORY.unlink(missing_ok=True)
            say("fleet lab is not up; nothing to do")
            return 0
        stop_servers()
        stop_processes()
        mounts = lab_mounts()
        if mounts:
            raise LabError(f"refusing to delete {STATE}: still mounted: {', '.join(mounts)}")
        remove_created()
        remove_inventory()
        if STATE.exists():
            shutil.rmtree(STATE)
    # ssh ControlPersist masters (Ansible's) notice their server is gone within moments.
    wait_for(lambda: not referencing_processes(), 3, 0.1)
    for pid, args in referencing_processes().items():
        warn(f"process {pid} still mentions the lab (not started by it, left alone): {args}")
    say("fleet lab down: processes stopped, state and inventory removed")
    return 0


def stop_servers() -> None:
    """Clean PostgreSQL shutdowns first: replicas, then the servers they might stream from."""
    for group in (REPLICAS, tuple(h for h in PG_HOSTS if h.role != "replica")):
        with concurrent.futures.ThreadPoolExecutor(len(group)) as pool:
            for fut in [pool.submit(stop_pg, h) for h in group if holder_pid(h)]:
                try:
                    fut.result()
                except LabError as exc:
                    warn(str(exc))


def stop_processes() -> None:
    procs = lab_processes()
    for name in [f"{h.name}.{kind}" for h in HOSTS for kind in ("holder", "sshd", "cron")] + ["moto"]:
        pid = read_pid(RUN / f"{name}.pid")
        if pid and proc_alive(pid) and (pid in procs or any(s in " ".join(proc_cmdline(pid))
                                                            for s in (str(STATE), S3_ADDR))):
            procs.setdefault(pid, f"pid file {name}.pid")
    survivors = signal_and_wait(list(procs), 5)
    survivors += [p for p in lab_processes() if p not in survivors]
    if survivors:
        raise LabError("these lab processes survived SIGKILL: " + ", ".join(
            f"{p} ({' '.join(proc_cmdline(p))[:80]})" for p in survivors))


# --- status, exec, stop-pg, start-pg -------------------------------------------------------------

def cmd_status(args) -> int:
    require_root()
    report = gather_status()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
        say("fleet lab: all up" if report["ok"] else "fleet lab: NOT all up (tests/lab/fleetlab up repairs it)")
    return 0 if report["ok"] else 1


def pg_host(name: str) -> Host:
    h = BY_NAME.get(name)
    if h is None:
        raise LabError(f"unknown host {name!r}; lab hosts: {', '.join(BY_NAME)}")
    if not h.runs_pg:
        raise LabError(f"{name} runs no PostgreSQL (database hosts: {', '.join(x.name for x in PG_HOSTS)})")
    holder_or_fail(h)
    return h


def cmd_stop_pg(args) -> int:
    require_root()
    h = pg_host(args.host)
    stop_pg(h)
    say(f"PostgreSQL on {h.name} stopped")
    return 0


def cmd_start_pg(args) -> int:
    require_root()
    h = pg_host(args.host)
    start_pg(h)
    # Return a healthy lab: wait for whichever streams involve this host.
    streams = {"primary": [r for r in REPLICAS if postmaster_pid(r)], "replica": [h]}.get(h.role, [])
    if streams and postmaster_pid(PRIMARY) and not wait_for(lambda: all_streaming(streams), 30, 0.2):
        warn("replication did not resume within 30s: " + json.dumps(streaming_replicas()))
    say(f"PostgreSQL on {h.name} started")
    return 0


def cmd_exec(argv: list[str]) -> int:
    require_root()
    if not argv or argv[0] not in BY_NAME:
        raise LabError(f"usage: fleetlab exec HOST -- CMD... (hosts: {', '.join(BY_NAME)})")
    h, cmd = BY_NAME[argv[0]], argv[1:]
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        raise LabError("fleetlab exec: no command given")
    os.execvp("nsenter", ns_prefix(holder_or_fail(h)) + cmd)
    return 127  # not reached


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["exec"]:
            return cmd_exec(argv[1:])
        parser = argparse.ArgumentParser(prog="fleetlab", description="Fleet lab: a small PostgreSQL fleet on one "
                                         f"machine (logs: {LOGS}).")
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("up", help="start or repair the lab (idempotent)").set_defaults(func=cmd_up)
        sub.add_parser("down", help="stop everything and remove what the lab created").set_defaults(func=cmd_down)
        st = sub.add_parser("status", help="what runs; exit 0 only if everything is up")
        st.add_argument("--json", action="store_true", help="machine-readable output")
        st.set_defaults(func=cmd_status)
        sub.add_parser("exec", help="fleetlab exec HOST -- CMD...: run CMD inside HOST's namespaces")
        for name, func in (("stop-pg", cmd_stop_pg), ("start-pg", cmd_start_pg)):
            p = sub.add_parser(name, help=f"{name.split('-', maxsplit=1)[0]} one host's PostgreSQL")
            p.add_argument("host", help=", ".join(h.name for h in PG_HOSTS))
            p.set_defaults(func=func)
        args = parser.parse_args(argv)
        return args.func(args)
    except LabError as exc:
        print(f"fleetlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

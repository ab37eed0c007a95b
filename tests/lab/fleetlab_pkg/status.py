"""`fleetlab status`: what runs, per host and for S3; a host answers for itself only."""

from __future__ import annotations

import concurrent.futures

from .config import BY_NAME, HOSTS, INVENTORY, S3_BUCKET, S3_URL, Host, say
from .hosts import cron_pid, ssh_banner, sshd_pid
from .namespaces import holder_pid
from .postgres import postmaster_pid, psql
from .s3 import bucket_state

PG_STATUS_SQL = """\
SELECT pg_is_in_recovery(),
       coalesce((SELECT string_agg(application_name || '=' || state, ',' ORDER BY application_name)
                 FROM pg_stat_replication), ''),
       coalesce((SELECT status FROM pg_stat_wal_receiver), ''),
       current_setting('archive_mode');
"""


def pg_status(h: Host) -> dict:
    res = psql(h, PG_STATUS_SQL, check=False, timeout=10)
    if res.returncode != 0 or res.stdout.count("|") < 3:
        return {"up": False}
    recovery, senders, receiver, archive_mode = res.stdout.strip().split("|", 3)
    pg = {"up": True, "role": "replica" if recovery == "t" else "primary", "layout": h.layout.name,
          "data_directory": h.layout.data, "archive_mode": archive_mode}
    if pg["role"] == "primary":
        pg["replicas"] = dict(x.split("=", 1) for x in senders.split(",") if "=" in x)
    else:
        pg["wal_receiver"] = receiver or "not connected"
    return pg


def host_status(h: Host) -> dict:
    holder = holder_pid(h)
    info = {"addr": h.addr, "role": h.role, "namespace": bool(holder),
            "sshd": bool(holder and sshd_pid(h) and ssh_banner(h.addr)),
            "cron": bool(holder and cron_pid(h))}
    info["ok"] = info["sshd"] and info["cron"]
    if h.runs_pg:
        pg = pg_status(h) if holder and postmaster_pid(h) else {"up": False}
        info["postgres"] = pg
        # A stopped replica turns that replica red, not the primary.
        info["ok"] = info["ok"] and pg["up"] and pg.get("role") == h.pg_role and (
            h.role != "replica" or pg.get("wal_receiver") == "streaming")
    return info


def gather_status() -> dict:
    with concurrent.futures.ThreadPoolExecutor(len(HOSTS) + 1) as pool:
        s3_future = pool.submit(bucket_state)
        hosts = dict(zip(BY_NAME, pool.map(host_status, HOSTS)))
        s3 = {"url": S3_URL, "bucket": S3_BUCKET, **s3_future.result()}
    s3["ok"] = s3["up"] and s3["bucket_exists"] and s3["versioning"]
    return {"hosts": hosts, "s3": s3, "ok": all(i["ok"] for i in hosts.values()) and s3["ok"],
            "inventory": str(INVENTORY) if INVENTORY.exists() else None}


def pg_text(info: dict) -> str:
    pg = info.get("postgres")
    if pg is None:
        return "-"
    if not pg["up"]:
        return "DOWN"
    if pg["role"] == "replica":
        return f"up, replica; {pg.get('wal_receiver')}"
    if info["role"] == "pgdg":
        return f"up, primary (pgdg: {pg['data_directory']}, password auth); archive_mode {pg['archive_mode']}"
    reps = pg.get("replicas", {})
    return "up, primary; replicas: " + (", ".join(f"{k} {v}" for k, v in sorted(reps.items())) or "none")


def print_status(report: dict) -> None:
    def word(flag: bool) -> str:
        return "up" if flag else "DOWN"
    say(f"{'HOST':<13} {'ADDRESS':<11} {'SSHD':<5} {'CRON':<5} POSTGRES")
    for name, info in report["hosts"].items():
        say(f"{name:<13} {info['addr']:<11} {word(info['sshd']):<5} {word(info['cron']):<5} {pg_text(info)}"
            + ("" if info["ok"] else "   <-- not healthy"))
    s3 = report["s3"]
    s3txt = (f"bucket {s3['bucket']} {'present' if s3['bucket_exists'] else 'MISSING'}, "
             f"versioning {'on' if s3['versioning'] else 'OFF'}") if s3["up"] else "DOWN"
    say(f"{'s3':<13} {S3_URL:<25} {s3txt}")

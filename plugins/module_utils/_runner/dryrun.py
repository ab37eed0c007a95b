# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dry run: what a run would dump, prune and remove from the WAL archive -- creating, writing and locking nothing.

It builds every command line with the functions the real run uses.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from .basebackup import basebackup_argv
from .dump import dump_stages, pipeline_text
from .log import Log
from .manifest import ROLE_PASSWORDS_NOTE, RUNNER_VERSION
from .naming import BASE_NAME, GLOBALS_NAME, artifact_name, format_stamp, iso, partial_name, utcnow
from .retention import collect_entries, schedule_plan
from .run import DumpRun
from .server import server_info
from .wal import clean_wal_archive


def dry_run(cfg):
    """Return the dry-run report of ``cfg``: ``would_dump``, ``would_prune``, ``wal_cleanup``, errors."""
    run = DumpRun(cfg, Log(None, cfg["name"], True), dry_run=True)
    now = utcnow()
    stamp = format_stamp(now)
    report = {"status": "ok", "dry_run": True, "name": cfg["name"], "kind": cfg["kind"], "started_at": iso(now), "finished_at": None,
              "would_dump": [], "would_prune": [], "artifacts": [], "pruned": [], "errors": [], "warnings": [],
              "not_dumped": [], "runner_version": RUNNER_VERSION}
    if cfg["kind"] == "basebackup":
        if run.prepare():
            report["would_dump"].append(_would_base_backup(run, stamp))
    else:
        report["would_dump"].extend(_would_dump(run, stamp))
    # Retention as it would run if every dump tonight succeeds (a failed dump prunes nothing).
    names = set(item["db"] for item in report["would_dump"])
    entries = collect_entries(cfg["dest"], names) if os.path.isdir(cfg["dest"]) else []
    entries += [{"db": db, "stamp": stamp, "manifest": None, "dumps": [], "status": "ok", "schedule": cfg["name"], "hypothetical": True}
                for db in names]
    keep, delete = schedule_plan(run, entries, now)
    for entry in delete:
        report["would_prune"].extend(list(entry["dumps"]) + ([entry["manifest"]] if entry["manifest"] else []))
    if cfg["kind"] == "basebackup" and cfg["wal_archive"] and report["would_dump"]:
        kept = [entry for entry in keep if not entry.get("hypothetical")]
        if any(entry.get("status") == "ok" for entry in kept):
            report["wal_cleanup"] = clean_wal_archive(run, kept)
        else:
            report["wal_cleanup"] = {"archive": cfg["wal_archive"], "keep_from": None, "removed": 0, "would_remove": [], "dry_run": True,
                                     "skipped": "only tonight's base backup would be kept: the cutoff is its start WAL file, "
                                                "known once it has run"}
    report["not_dumped"] = list(run.not_dumped)
    report["errors"] = list(run.errors)
    report["warnings"] = list(run.warnings)
    report["status"] = "ok" if not report["errors"] else "failed"
    report["finished_at"] = iso(utcnow())
    return report


def _would_base_backup(run, stamp):
    plan = run.base_plan
    final = os.path.join(run.dest, artifact_name(BASE_NAME, stamp, "directory", "none"))
    argv = basebackup_argv(run.tools["pg_basebackup"], os.path.join(run.dest, partial_name(os.path.basename(final))), plan,
                           "dbfleet-%s-%s" % (run.cfg["name"], stamp))
    return {"db": BASE_NAME, "kind": "basebackup", "pipeline": " ".join(argv), "path": final,
            "compression": plan["compression"], "compression_level": plan["level"], "compression_by": plan["by"],
            "reason": plan["reason"]}


def _would_dump(run, stamp):
    cfg = run.cfg
    dbs = []
    role_passwords = True
    if run.prepare():
        dbs = run.select_databases() or []
        if cfg["globals"]:
            role_passwords = server_info(run, None)["reads_role_passwords"] is not False
    jobs = [(db, "database", run.plan) for db in dbs] + ([(GLOBALS_NAME, "globals", run.globals_plan)] if cfg["globals"] else [])
    items = []
    for db, kind, plan in jobs:
        if plan is None:
            break
        final = os.path.join(cfg["dest"], artifact_name(db, stamp, plan["format"], plan["external_compression"]))
        stages = dump_stages(run, kind, plan, os.path.join(cfg["dest"], partial_name(os.path.basename(final))), role_passwords)
        item = {
            "db": db, "kind": kind, "pipeline": pipeline_text(stages), "path": final,
            "compression": plan["compression"], "compression_level": plan["level"], "compression_by": plan["by"],
            "reason": plan["reason"]}
        if kind == "globals":
            item["role_passwords"] = role_passwords
            if not role_passwords:
                item["reason"] += "; " + ROLE_PASSWORDS_NOTE
        items.append(item)
    return items


def format_report(report):
    """The dry-run report as text for a person."""
    lines = ["dry run of %s (nothing is written)" % report["name"]]
    for item in report["would_dump"]:
        lines.append("would %s %s -> %s [%s]" % (
            "take base backup" if item["kind"] == "basebackup" else "dump %s" % item["kind"], item["db"], item["path"],
            item["reason"]))
        lines.append("    %s" % item["pipeline"])
    lines.extend("would not dump %r: %s" % (item["db"], item["reason"]) for item in report["not_dumped"])
    lines.extend("would prune %s" % path for path in report["would_prune"])
    wal = report.get("wal_cleanup")
    if wal:
        if wal.get("skipped"):
            lines.append("WAL archive %s: nothing would be removed now: %s" % (wal["archive"], wal["skipped"]))
        else:
            lines.append("WAL archive %s: would remove %d segments older than %s" % (wal["archive"], wal["removed"], wal["keep_from"]))
            lines.extend("would remove WAL %s" % os.path.join(wal["archive"], name) for name in wal.get("would_remove") or [])
    lines.extend("error: %s" % error for error in report["errors"])
    return "".join(line + "\n" for line in lines)

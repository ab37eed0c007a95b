# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: which artifacts to keep, which to prune -- never below the newest ``keep_min`` good ones.

:func:`plan_retention` decides (pure, no I/O); :func:`collect_entries` sees
what is in the destination, :func:`prune` deletes what the plan says.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

from .fsutil import fsync_dir, remove_path
from .manifest import entry_status
from .naming import parse_artifact_name, parse_stamp, utcnow


def plan_retention(entries, now, retention_days, keep_min):
    """Decide which dump sets to keep and which to delete.  Pure; no I/O.

    ``entries``: dicts, one per (database, stamp) set of files, with at least
    ``db``, ``stamp`` (stamp string or aware datetime) and ``status``:

    * ``"ok"``      -- its manifest says ok *and* the dump it names exists;
    * ``"failed"``  -- its manifest says failed;
    * ``"missing"`` -- manifest says ok but the dump is gone;
    * ``"unknown"`` -- a dump without a readable manifest.

    The age comes from the stamp in the file name, not from mtime: copying,
    restoring from off-site or ``touch`` changes mtime, the name does not.

    Rules, per database: the newest ``keep_min`` entries with status ok are
    always kept whatever their age (``keep_min`` is treated as at least 1, so
    the newest good dump survives any sequence of failures); only ok entries
    count as good; everything else (ok beyond keep_min, failed, missing,
    unknown) is deleted once older than ``retention_days`` days.  Entries not
    older than that are kept.  (The runner additionally prunes nothing for a
    database whose current run failed.)

    Returns ``(keep, delete)``: lists of shallow copies of the entries with a
    ``reason`` added, newest first per database.
    """
    keep_min = max(1, int(keep_min))
    horizon = datetime.timedelta(days=retention_days)
    by_db = {}
    for entry in entries:
        by_db.setdefault(entry["db"], []).append(entry)
    keep, delete = [], []
    for db in sorted(by_db):
        items = []
        for entry in by_db[db]:
            stamp = entry["stamp"]
            when = stamp if isinstance(stamp, datetime.datetime) else parse_stamp(stamp)
            items.append((when, entry))
        items.sort(key=lambda item: item[0], reverse=True)
        good_seen = 0
        for when, entry in items:
            out = dict(entry)
            is_good = entry.get("status") == "ok"
            if is_good and good_seen < keep_min:
                good_seen += 1
                out["reason"] = "one of the newest %d good dumps" % keep_min
                keep.append(out)
                continue
            if now - when <= horizon:
                out["reason"] = "not older than %s days" % retention_days
                keep.append(out)
                continue
            out["reason"] = "%s and older than %s days" % (
                {"ok": "good dump beyond the newest %d" % keep_min,
                 "failed": "failed run",
                 "missing": "manifest whose dump is gone"}.get(entry.get("status"), "dump without a manifest"),
                retention_days)
            delete.append(out)
    return keep, delete


def collect_entries(dest, dbs):
    """Scan ``dest`` for our artifacts of ``dbs``; one entry per (db, stamp) with a status (:func:`entry_status`)."""
    groups = {}
    try:
        names = os.listdir(dest)
    except FileNotFoundError:
        return []
    for name in names:
        parsed = parse_artifact_name(name)
        if parsed is None or parsed["db"] not in dbs:
            continue
        entry = groups.setdefault((parsed["db"], parsed["stamp"]), {
            "db": parsed["db"], "stamp": parsed["stamp"], "manifest": None, "dumps": [], "status": None})
        path = os.path.join(dest, name)
        if parsed["kind"] == "manifest":
            entry["manifest"] = path
        else:
            entry["dumps"].append(path)
    for entry in groups.values():
        entry["dumps"].sort()
        entry["status"] = entry_status(entry)
    return sorted(groups.values(), key=lambda item: (item["db"], item["stamp"]))


def prune(run, dbs):
    """Apply plan_retention to ``dbs`` (only databases whose run succeeded)."""
    if not dbs:
        return
    _keep, delete = plan_retention(collect_entries(run.dest, set(dbs)), utcnow(), run.cfg["retention_days"], run.cfg["keep_min"])
    for entry in delete:
        paths = list(entry["dumps"]) + ([entry["manifest"]] if entry["manifest"] else [])
        if run.dry_run:
            run.pruned.extend(paths)
            continue
        run.log("pruning %s %s (%s)" % (entry["db"], entry["stamp"], entry["reason"]))
        try:
            for path in paths:  # the dump first, then its manifest
                remove_path(path)
                run.pruned.append(path)
        except OSError as exc:
            message = "could not prune %s: %s" % (entry["stamp"], exc)
            run.log(message)
            run.errors.append(message)
    if delete and not run.dry_run:
        fsync_dir(run.dest)

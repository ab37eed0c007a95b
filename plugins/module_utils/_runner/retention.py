# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: which artifacts to keep, which to prune -- never below the newest ``keep_min`` good ones.

:func:`plan_retention` decides (pure, no I/O); :func:`collect_entries` sees
what is in the destination, :func:`own_entries` keeps what this schedule
made, :func:`schedule_plan` re-hashes the dumps the plan relies on, and
:func:`prune` deletes what the plan says.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

from .fsutil import fsync_dir, remove_path
from .hashing import hash_file, hash_tree
from .manifest import inspect_entry
from .naming import iso, parse_artifact_name, parse_stamp, utcnow

# A stamp further ahead than this is not "the newest dump" but a wrong clock or a planted file.
FUTURE_SLACK = datetime.timedelta(minutes=5)
FUTURE_REASON = "stamped in the future"
_DELETE_REASON = {"failed": "failed run", "missing": "manifest whose dump is gone", "corrupt": "dump that does not match its manifest"}


def plan_retention(entries, now, retention_days, keep_min, verify=None):
    """Decide which dump sets to keep and which to delete.  Pure; no I/O (but ``verify``'s).

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
    count as good, and with ``verify`` (a function of an entry, True when its
    dump still matches its manifest) only those it accepts -- it is asked, newest
    first, only about the entries that would be counted; everything else (ok
    beyond keep_min, failed, missing, unknown, rejected by ``verify``) is
    deleted once older than ``retention_days`` days.  Entries not older than
    that are kept.  An entry stamped more than ``FUTURE_SLACK`` ahead of
    ``now`` is kept and never counted as good.  (The runner additionally
    prunes nothing for a database whose current run failed.)

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
            status = entry.get("status")
            if when > now + FUTURE_SLACK:
                out["reason"] = FUTURE_REASON
                keep.append(out)
                continue
            if status == "ok" and good_seen < keep_min:
                if verify is None or verify(entry):
                    good_seen += 1
                    out["reason"] = "one of the newest %d good dumps" % keep_min
                    keep.append(out)
                    continue
                status = "corrupt"
            if now - when <= horizon:
                out["reason"] = "not older than %s days" % retention_days
                keep.append(out)
                continue
            if status == "ok":
                what = "good dump beyond the newest %d" % keep_min
            else:
                what = _DELETE_REASON.get(status, "dump without a manifest")
            out["reason"] = "%s and older than %s days" % (what, retention_days)
            delete.append(out)
    return keep, delete


def collect_entries(dest, dbs):
    """Scan ``dest`` for our artifacts of ``dbs``; one entry per (db, stamp).

    Each entry: ``db``, ``stamp``, ``manifest`` (path or None), ``dumps``
    (paths), and :func:`inspect_entry`'s ``status``, ``schedule`` and ``recorded``.
    """
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
        entry.update(inspect_entry(entry))
    return sorted(groups.values(), key=lambda item: (item["db"], item["stamp"]))


def own_entries(entries, schedule):
    """The entries ``schedule`` made: those whose manifest names it.

    An entry without a readable manifest belongs to nobody in particular; it
    counts as this schedule's only when no other schedule's manifest names
    the same database in this directory (then nobody else writes its dumps here).
    """
    shared = set(entry["db"] for entry in entries if entry.get("schedule") not in (None, schedule))
    return [entry for entry in entries
            if entry.get("schedule") == schedule or (entry.get("schedule") is None and entry["db"] not in shared)]


def verify_entry(dest, entry):
    """Why the dump of an ok entry no longer matches its manifest (size and SHA-256, read once), or None."""
    recorded = entry.get("recorded") or {}
    path = os.path.join(dest, os.path.basename(recorded.get("path") or ""))
    try:
        digest = hash_tree(path) if os.path.isdir(path) and not os.path.islink(path) else hash_file(path)
    except OSError as exc:
        return "cannot be read (%s)" % exc
    if digest.size != recorded.get("size") or digest.hexdigest() != recorded.get("sha256"):
        return ("does not match its manifest: %s bytes, sha256 %s now; the manifest says %s bytes, sha256 %s"
                % (digest.size, digest.hexdigest(), recorded.get("size"), recorded.get("sha256")))
    return None


def schedule_plan(run, entries, now, trusted=()):
    """:func:`plan_retention` of ``run``'s own entries, with the dumps it relies on checked.

    When the plan would delete something, it is made again with every keep_min
    candidate re-hashed (except ``trusted`` (db, stamp) pairs -- the dumps this
    run just made, hashed while they were written -- and the dry run's
    ``hypothetical`` entries): one that no longer matches
    its manifest is not good, and says so in a warning.  Entries stamped in the
    future are kept and warned about.
    """
    cfg = run.cfg
    entries = own_entries(entries, cfg["name"])
    trusted = set(trusted)

    def verify(entry):
        if entry.get("hypothetical") or (entry["db"], entry["stamp"]) in trusted:
            return True
        problem = verify_entry(run.dest, entry)
        if problem:
            _warn(run, "%s %s: the dump %s %s: not counted as a good dump (older good dumps are kept instead)"
                  % (entry["db"], entry["stamp"], os.path.basename((entry.get("recorded") or {}).get("path") or "?"), problem))
        return problem is None

    keep, delete = plan_retention(entries, now, cfg["retention_days"], cfg["keep_min"])
    if delete:
        keep, delete = plan_retention(entries, now, cfg["retention_days"], cfg["keep_min"], verify=verify)
    for entry in keep:
        if entry["reason"] == FUTURE_REASON:
            names = [os.path.basename(path) for path in entry["dumps"] + ([entry["manifest"]] if entry["manifest"] else [])]
            _warn(run, "%s is stamped in the future (the clock says %s): kept, but not counted as one of the newest good "
                       "dumps; check the host's clock" % (", ".join(names), iso(now)))
    return keep, delete


def _warn(run, message):
    run.log(message)
    run.warnings.append(message)


def prune(run, dbs, trusted=()):
    """Apply :func:`schedule_plan` to ``dbs`` (only databases whose run succeeded)."""
    if not dbs:
        return
    _keep, delete = schedule_plan(run, collect_entries(run.dest, set(dbs)), utcnow(), trusted)
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

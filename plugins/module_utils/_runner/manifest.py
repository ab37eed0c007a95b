# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests: the JSON sidecar of every artifact, saying ``ok`` or ``failed`` and why.

What retention may rely on comes from here: :func:`inspect_entry` tells whether
a (database, stamp) set of files is a good dump, and whose.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from .fsutil import read_json_object
from .naming import BASE_NAME

RUNNER_VERSION = "1.0.0"
MANIFEST_VERSION = 1
ROLE_PASSWORDS_NOTE = ("role passwords not included: the backup role cannot read pg_authid "
                       "(grant it pg_read_all_data, or dump as a superuser)")


def new_manifest(run, db, kind, stamp, plan):
    """A manifest for artifact ``db`` of ``kind`` (database, globals, basebackup), failed until it is published."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "runner_version": RUNNER_VERSION,
        "schedule": run.cfg["name"],
        "kind": kind,
        "db": db,
        "host": run.host,
        "stamp": stamp,
        "format": plan["format"],
        "compression": plan["compression"],
        "compression_level": plan["level"],
        "compression_by": plan["by"],
        "compression_note": plan["reason"],
        "requested_compression": plan["requested_compression"],
        "requested_compression_level": plan["requested_level"],
        "jobs": run.cfg["jobs"] if plan["format"] == "directory" else 1,
        "path": None,
        "size": None,
        "sha256": None,
        "files": None,
        "started_at": None,
        "finished_at": None,
        "duration_s": None,
        "status": "failed",
        "error": None,
        "exit_status": {},
        "pipeline": None,
        "pg_dump_version": run.pg_dump_version,
        "server_version": None,
        "db_size_bytes": None,
        "offsite": None,
        "notes": [],
    }


def new_base_manifest(run, stamp):
    """A manifest for the base backup of ``stamp``, with the WAL facts still unknown."""
    manifest = new_manifest(run, BASE_NAME, "basebackup", stamp, run.base_plan)
    manifest.update({"pg_dump_version": None, "pg_basebackup_version": run.pg_basebackup_version, "label": None,
                     "start_lsn": None, "end_lsn": None, "timeline": None, "end_timeline": None, "start_wal_file": None,
                     "end_wal_file": None, "wal_segment_size": None, "wal_ranges": None})
    return manifest


def public(manifest):
    """The manifest without its private keys (``_digest``): what is written and reported."""
    return dict((key, value) for key, value in manifest.items() if not key.startswith("_"))


def inspect_entry(entry):
    """What the manifest of a (db, stamp) entry says, checked against the entry's files.

    Returns a dict: ``status`` -- ``ok`` (the manifest says ok and the dump it
    names exists), ``failed`` (the manifest says failed, or is unreadable and
    there is no dump), ``missing`` (the manifest says ok but the dump is gone)
    or ``unknown`` (a dump without a readable manifest); ``schedule`` -- the
    schedule the manifest names (None without one); ``recorded`` -- the
    ``path``, ``size``, ``sha256`` and ``files`` an ok manifest records, else
    None.
    """
    result = {"status": "unknown", "schedule": None, "recorded": None}
    if entry["manifest"] is None:
        return result
    data, problem = read_json_object(entry["manifest"])
    if problem:
        result["status"] = "unknown" if entry["dumps"] else "failed"
        return result
    if isinstance(data.get("schedule"), str):
        result["schedule"] = data["schedule"]
    if data.get("status") != "ok":
        result["status"] = "failed"
        return result
    named = os.path.basename(data.get("path") or "")
    if named and any(os.path.basename(path) == named for path in entry["dumps"]):
        result["status"] = "ok"
        result["recorded"] = dict((key, data.get(key)) for key in ("path", "size", "sha256", "files"))
    else:
        result["status"] = "missing"
    return result

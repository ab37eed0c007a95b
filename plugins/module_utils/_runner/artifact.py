# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One artifact from start to end: a temp name, the dump (or base backup), then published or failed.

A file that looks like a backup is always a complete one: the artifact is
written to ``.{final}.partial-{pid}`` and renamed, together with its ``ok``
manifest, only when every stage succeeded; anything else removes the temp
file and writes a ``failed`` manifest saying what failed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from .basebackup import take_base_backup
from .dump import dump_directory, dump_stream
from .fsutil import json_bytes, try_remove, write_atomic, write_json_atomic
from .hashing import StreamDigest
from .log import clean_exc, fs_hint
from .manifest import ROLE_PASSWORDS_NOTE, new_base_manifest, new_manifest, public
from .naming import BASE_NAME, artifact_name, iso, manifest_name, partial_name, utcnow
from .pipeline import Terminated
from .server import server_info


def make_artifact(run, db, stamp, kind="database"):
    """Dump one database (kind "database"), the globals (kind "globals") or take the base backup
    (kind "basebackup", ``db`` is then ignored: the artifact is ``base``); return its manifest.

    The manifest is also appended to ``run.artifacts`` (even when a signal
    interrupts the dump).
    """
    if kind == "basebackup":
        db = BASE_NAME
        plan = run.base_plan
        manifest = new_base_manifest(run, stamp)
        final_name = artifact_name(BASE_NAME, stamp, "directory", "none")
    else:
        plan = run.globals_plan if kind == "globals" else run.plan
        manifest = new_manifest(run, db, kind, stamp, plan)
        final_name = artifact_name(db, stamp, plan["format"], plan["external_compression"])
    run.artifacts.append(manifest)
    started = utcnow()
    manifest["started_at"] = iso(started)
    final = os.path.join(run.dest, final_name)
    tmp = os.path.join(run.dest, partial_name(final_name))
    manifest_path = os.path.join(run.dest, manifest_name(db, stamp))
    info = server_info(run, db if kind == "database" else None)
    manifest["server_version"] = info["server_version"]
    if kind == "database":
        manifest["db_size_bytes"] = info["db_size_bytes"]
    elif kind == "globals":
        # pg_dumpall reads role passwords from pg_authid, which a superuser
        # or a member of pg_read_all_data may read; a role that cannot gets
        # the roles without their passwords instead of no globals at all.
        # Unknown (the query failed): try with passwords.
        manifest["role_passwords"] = info["reads_role_passwords"] is not False
        if not manifest["role_passwords"]:
            manifest["notes"].append(ROLE_PASSWORDS_NOTE)
            run.log(ROLE_PASSWORDS_NOTE)
    run.log("dumping %s %s -> %s (%s)" % (kind, db, final, plan["reason"]))
    error = None
    files = None
    digest = StreamDigest(run.part_size())
    try:
        if kind == "basebackup":
            error, files, digest = take_base_backup(run, tmp, final, manifest, info)
        elif plan["format"] == "directory":
            error, files, digest = dump_directory(run, db, plan, tmp, final, manifest)
        else:
            error = dump_stream(run, db, kind, plan, tmp, final, digest, manifest)
        if error is None:
            _finish(manifest, started)
            _publish(run, tmp, final, manifest_path, manifest,
                     {"status": "ok", "path": final, "size": digest.size, "sha256": digest.hexdigest(), "files": files})
    except Terminated as exc:
        _discard(run, tmp)
        error = "%s during the %s" % (exc.reason, "base backup" if kind == "basebackup" else "dump")
        _fail(run, manifest, manifest_path, started, error)
        raise
    except OSError as exc:
        error = "could not write %s: %s%s" % (final, exc, fs_hint(exc))
    except Exception as exc:  # pylint: disable=broad-except
        error = "internal error in the dump runner: %s" % clean_exc(exc)
    if error is not None:
        _discard(run, tmp)
        _fail(run, manifest, manifest_path, started, error)
    else:
        run.log("%s %s ok: %s, %s bytes, sha256 %s, %ss" % (kind, db, final, digest.size, digest.hexdigest(), manifest["duration_s"]))
    manifest["_digest"] = digest
    return manifest


def _finish(manifest, started):
    finished = utcnow()
    manifest["finished_at"] = iso(finished)
    manifest["duration_s"] = round((finished - started).total_seconds(), 3)


def _fail(run, manifest, manifest_path, started, error):
    manifest.update({"status": "failed", "error": error, "path": None, "size": None, "sha256": None, "files": None})
    _finish(manifest, started)
    run.log("FAILED %s %s: %s" % (manifest["kind"], manifest["db"], error))
    run.errors.append("%s %s: %s" % (manifest["kind"], manifest["db"], error))
    try:
        write_json_atomic(manifest_path, public(manifest))
    except OSError as exc:
        run.log("could not write the failed manifest %s: %s" % (manifest_path, exc))


def _publish(run, tmp, final, manifest_path, manifest, outcome):
    """Make artifact + ok manifest appear together (or neither); only then is ``manifest`` ok (``outcome`` applied)."""
    if os.path.lexists(final):
        raise OSError(errno.EEXIST, "refusing to overwrite an existing artifact", final)
    os.rename(tmp, final)
    try:
        write_atomic(manifest_path, json_bytes(dict(public(manifest), **outcome)), 0o640)
    except BaseException:
        _discard(run, final, "it has no manifest, so it is no good dump; retention removes it")
        raise
    manifest.update(outcome)


def _discard(run, path, later="the next run removes it"):
    """Remove what a failed artifact left; where that is impossible too, say so."""
    exc = try_remove(path)
    if exc is not None:
        message = "could not remove %s either: %s (%s)" % (path, exc, later)
        run.log(message)
        run.warnings.append(message)

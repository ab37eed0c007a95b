# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One base backup: pg_basebackup writing tar files with streamed WAL, and the WAL facts it records."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from .dump import seal_tree
from .hashing import StreamDigest
from .pipeline import judge, run_in_group
from .wal import parse_lsn, wal_info_from_backup_manifest, wal_segment_size_from_tar

BASEBACKUP_MIN_MAJOR = 15     # --compress=client-METHOD:LEVEL appeared in pg_basebackup 15
BASE_HASH_NOTE = ("file checksums were computed by reading the files back after pg_basebackup wrote them "
                  "(it writes the directory itself, so one extra read is unavoidable)")
_BB_START_RE = re.compile(r"write-ahead log start point: ([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}) on timeline (\d+)")


def basebackup_argv(pg_basebackup, target, plan, label):
    """argv of pg_basebackup writing a tar-format base backup with streamed WAL into ``target``.

    The connection comes from the environment (PGHOST, PGPORT, PGUSER,
    PGPASSFILE ...), never from arguments; ``--no-password`` makes a missing
    password an error instead of a prompt.
    """
    return [pg_basebackup, "--pgdata=%s" % target, "--format=tar", "--wal-method=stream", "--checkpoint=fast",
            "--no-password", "--manifest-checksums=SHA256", "--label=%s" % label, "--verbose"] + list(plan["args"])


def take_base_backup(run, tmp, final, manifest, info):
    """pg_basebackup into ``tmp``; WAL facts and per-file SHA-256 afterwards.  Returns (error, files, digest)."""
    label = "dbfleet-%s-%s" % (run.cfg["name"], manifest["stamp"])
    manifest["label"] = label
    argv = basebackup_argv(run.tools["pg_basebackup"], tmp, run.base_plan, label)
    manifest["pipeline"] = " ".join(argv)
    run.log("pipeline: %s" % manifest["pipeline"])
    result = run_in_group("pg_basebackup", argv, run.env)
    manifest["exit_status"] = dict(result["exit_status"])
    error = judge(result, run.log, final)
    if error is None and not os.path.isdir(tmp):
        error = "pg_basebackup exited 0 but %s does not exist" % tmp
    if error is not None:
        return error, None, StreamDigest()
    wal, problem = _wal_facts(run, tmp, result["stderr"].get("pg_basebackup", ""), info["wal_segment_size"])
    if problem:
        return problem, None, StreamDigest()
    manifest.update(wal)
    if wal["start_wal_file"] is None:
        message = ("the WAL segment size is unknown (the server query failed and pg_wal.tar is compressed), so %s "
                   "records no start_wal_file: the WAL archive cannot be cleaned up against it" % final)
        run.log(message)
        run.warnings.append(message)
    # pg_basebackup writes the directory itself; reading the files back to
    # hash them is unavoidable (and says so in the manifest).
    digest = seal_tree(tmp, run.part_size())
    manifest["notes"].append(BASE_HASH_NOTE)
    return None, digest.listing(), digest


def _wal_facts(run, directory, stderr_text, segment_size):
    """WAL facts from ``backup_manifest``; ``(dict, None)`` or ``(None, error)``."""
    path = os.path.join(directory, "backup_manifest")
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        return None, "pg_basebackup wrote no readable backup_manifest (%s): the backup cannot be verified" % exc
    if segment_size is None:
        segment_size = wal_segment_size_from_tar(directory)
    try:
        wal = wal_info_from_backup_manifest(data, segment_size)
    except ValueError as exc:
        return None, "cannot read the WAL range from %s: %s" % (path, exc)
    match = _BB_START_RE.search(stderr_text)
    if match and (parse_lsn(match.group(1)), int(match.group(2))) != (parse_lsn(wal["start_lsn"]), wal["timeline"]):
        message = ("pg_basebackup reported start point %s on timeline %s but backup_manifest says %s on timeline %s; "
                   "the manifest's values are recorded" % (match.group(1), match.group(2), wal["start_lsn"], wal["timeline"]))
        run.log(message)
        run.warnings.append(message)
    return wal, None

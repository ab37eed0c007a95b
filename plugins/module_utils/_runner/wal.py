# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL: LSNs, WAL segment file names, the WAL facts of a base backup, and cleaning up the archive.

After a good base backup and retention, ``pg_archivecleanup`` removes archived
segments older than the start WAL file of the oldest base backup still kept --
never anything newer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import tarfile

from .config import is_int
from .log import stderr_summary
from .naming import BASE_NAME
from .pipeline import describe_exit

_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
WAL_FILE_RE = re.compile(r"^[0-9A-F]{24}$")


def parse_lsn(text):
    """Parse a PostgreSQL LSN ``"X/Y"`` (hex) into an integer (ValueError if malformed)."""
    match = _LSN_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError("not an LSN: %r" % (text,))
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value):
    """Format an integer LSN the way PostgreSQL prints it (``"0/2000028"``)."""
    return "%X/%X" % (value >> 32, value & 0xFFFFFFFF)


def wal_segment_size_problem(size):
    """Return why ``size`` is not a valid WAL segment size (a power of two, 1 MiB..1 GiB), or None."""
    if not is_int(size) or size < (1 << 20) or size > (1 << 30) or size & (size - 1):
        return "%r is not a WAL segment size (a power of two from 1 MiB to 1 GiB)" % (size,)
    return None


def wal_file_name(timeline, lsn, segment_size):
    """Name of the WAL segment file holding byte ``lsn`` on ``timeline`` (PostgreSQL's XLogFileName).

    ``lsn`` is an integer or an ``"X/Y"`` string; ``segment_size`` in bytes.
    """
    problem = wal_segment_size_problem(segment_size)
    if problem:
        raise ValueError(problem)
    if not is_int(timeline) or not 1 <= timeline <= 0xFFFFFFFF:
        raise ValueError("not a timeline: %r" % (timeline,))
    if isinstance(lsn, str):
        lsn = parse_lsn(lsn)
    return wal_segment_name(timeline, lsn // segment_size, segment_size)


def wal_segment_number(log_id, seg, segment_size):
    """The segment number of a WAL file from the log and segment parts of its name.

    ``log_id`` and ``seg`` are the name's second and third groups of 8 hex digits (strings) or
    their values (ints); the inverse of :func:`wal_segment_name`. ``segment_size`` in bytes (a
    valid one: see :func:`wal_segment_size_problem`).
    """
    if isinstance(log_id, str):
        log_id = int(log_id, 16)
    if isinstance(seg, str):
        seg = int(seg, 16)
    return log_id * (0x100000000 // segment_size) + seg


def wal_segment_name(timeline, segno, segment_size):
    """Name of WAL segment number ``segno`` on ``timeline`` (PostgreSQL's XLogFileName from a segment number).

    ``segment_size`` in bytes (a valid one: see :func:`wal_segment_size_problem`); nothing is checked
    here, :func:`wal_file_name` checks its arguments.
    """
    per_id = 0x100000000 // segment_size
    return "%08X%08X%08X" % (timeline, segno // per_id, segno % per_id)


def wal_info_from_backup_manifest(data, segment_size=None):
    """WAL facts of a base backup from its parsed ``backup_manifest`` (the ``WAL-Ranges``).

    Returns a dict: ``start_lsn``/``end_lsn`` (strings as PostgreSQL prints
    them), ``timeline`` (the timeline the backup started on), ``end_timeline``,
    ``wal_ranges`` (``[{"timeline", "start_lsn", "end_lsn"}]`` as listed) and,
    when ``segment_size`` is known, ``start_wal_file`` (the first WAL segment
    a restore needs: the one holding the start LSN, like ``backup_label``'s
    "START WAL LOCATION ... (file ...)") and ``end_wal_file`` (the segment
    holding the last byte before the end LSN); otherwise those two are None.
    Raises ValueError when the manifest has no usable WAL-Ranges.  Ranges are
    matched by LSN, not by their order (PostgreSQL lists the newest timeline
    first when a backup spans a timeline switch).
    """
    ranges = data.get("WAL-Ranges") if isinstance(data, dict) else None
    if not isinstance(ranges, list) or not ranges:
        raise ValueError("backup_manifest has no WAL-Ranges")
    parsed = []
    for item in ranges:
        if not isinstance(item, dict) or not is_int(item.get("Timeline")):
            raise ValueError("backup_manifest has a malformed WAL-Ranges entry: %r" % (item,))
        parsed.append((item["Timeline"], parse_lsn(item.get("Start-LSN")), parse_lsn(item.get("End-LSN"))))
    start = min(parsed, key=lambda item: item[1])
    end = max(parsed, key=lambda item: item[2])
    info = {
        "start_lsn": format_lsn(start[1]), "end_lsn": format_lsn(end[2]), "timeline": start[0], "end_timeline": end[0],
        "wal_ranges": [{"timeline": tli, "start_lsn": format_lsn(first), "end_lsn": format_lsn(last)} for tli, first, last in parsed],
        "wal_segment_size": segment_size, "start_wal_file": None, "end_wal_file": None,
    }
    if segment_size is not None:
        info["start_wal_file"] = wal_file_name(start[0], start[1], segment_size)
        info["end_wal_file"] = wal_file_name(end[0], max(start[1], end[2] - 1), segment_size)
    return info


def wal_segment_size_from_tar(directory):
    """WAL segment size read from ``pg_wal.tar`` (plain or gzip: what Python reads alone), else None.

    Every WAL segment file in it has exactly the segment size.
    """
    for name, mode in (("pg_wal.tar", "r:"), ("pg_wal.tar.gz", "r:gz")):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            continue
        try:
            with tarfile.open(path, mode) as archive:
                for member in archive:
                    if member.isfile() and WAL_FILE_RE.match(os.path.basename(member.name)):
                        return None if wal_segment_size_problem(member.size) else member.size
        except (OSError, tarfile.TarError, EOFError):
            return None
    return None


def wal_cutoff(entries, dest):
    """The oldest start WAL file among the good base backups in ``entries`` (of ``dest``).

    Returns ``(wal_file, manifest_path, problem)``: ``problem`` (a
    sentence) when a good base backup has no usable ``start_wal_file`` --
    then nothing may be cleaned -- or when there is no good base backup.
    """
    found = []
    for entry in entries:
        if entry.get("status") != "ok" or entry.get("db") != BASE_NAME or not entry.get("manifest"):
            continue
        try:
            with open(entry["manifest"], "r", encoding="utf-8") as handle:
                wal_file = json.load(handle).get("start_wal_file")
        except (OSError, ValueError, AttributeError) as exc:
            return None, None, "cannot read %s (%s)" % (entry["manifest"], exc)
        if not isinstance(wal_file, str) or not WAL_FILE_RE.match(wal_file):
            return None, None, "base backup manifest %s records no usable start_wal_file (%r)" % (entry["manifest"], wal_file)
        found.append((wal_file[8:], wal_file, entry["manifest"]))
    if not found:
        return None, None, "no good base backup in %s" % dest
    _segment, wal_file, path = min(found)
    return wal_file, path, None


def clean_wal_archive(run, entries):
    """Remove archived WAL older than the start WAL file of the oldest kept good base backup.

    Runs ``pg_archivecleanup [-n] WAL_ARCHIVE START_WAL_FILE`` (``-n`` in a
    dry run: list only).  pg_archivecleanup removes only WAL segment files
    (and .partial ones) whose segment number is lower than the cutoff, so
    nothing newer is ever touched.  Records and returns a report dict
    (``run.wal_cleanup``).  ``entries`` are the base backups to keep WAL
    for (those in dest now, or those a dry run would keep).  A missing
    archive directory or a failing pg_archivecleanup is an error, a base
    backup without a start WAL file makes it skip (nothing removed, a
    warning).
    """
    archive = run.cfg["wal_archive"]
    report = {"archive": archive, "keep_from": None, "oldest_kept_base": None, "removed": 0, "removed_first": None,
              "removed_last": None, "dry_run": run.dry_run, "skipped": None}
    run.wal_cleanup = report
    if not os.path.isdir(archive):
        message = "wal_archive %s is not a directory: WAL archive not cleaned (check archive_command and wal_archive)" % archive
        run.log(message)
        run.errors.append(message)
        report["skipped"] = message
        return report
    cutoff, path, problem = wal_cutoff(entries, run.dest)
    if problem:
        message = "WAL archive %s not cleaned: %s" % (archive, problem)
        run.log(message)
        run.warnings.append(message)
        report["skipped"] = message
        return report
    report.update({"keep_from": cutoff, "oldest_kept_base": path})
    removed, error = _archivecleanup(run, archive, cutoff)
    if error:
        run.log(error)
        run.errors.append(error)
        report["skipped"] = error
        return report
    report.update({"removed": len(removed), "removed_first": removed[0] if removed else None,
                   "removed_last": removed[-1] if removed else None})
    if run.dry_run:
        report["would_remove"] = removed
    else:
        run.log("WAL archive %s: removed %d segments older than %s (start of the oldest kept base backup %s)%s" % (
            archive, len(removed), cutoff, os.path.basename(path), ": %s .. %s" % (removed[0], removed[-1]) if removed else ""))
    return report


def _archivecleanup(run, archive, cutoff):
    """Run pg_archivecleanup; return (sorted removed names, error or None)."""
    argv = [run.tools["pg_archivecleanup"]] + (["-n"] if run.dry_run else []) + [archive, cutoff]
    before = set(os.listdir(archive))
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run.env, timeout=3600, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return [], ("cannot run %s: %s (pg_archivecleanup comes with the PostgreSQL server package, postgresql-NN on Debian; "
                    "install it or set pg_bin)" % (argv[0], exc))
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        return [], "pg_archivecleanup %s on %s: %s" % (describe_exit(proc.returncode), archive, stderr_summary(err))
    if run.dry_run:
        names = [os.path.basename(line.strip()) for line in proc.stdout.decode("utf-8", "replace").splitlines() if line.strip()]
    else:
        names = before - set(os.listdir(archive))
    return sorted(names), None

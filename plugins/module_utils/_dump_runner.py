# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-side PostgreSQL dump runner for dbfleet.postgresql.

This file has two lives:

* On the controller / in modules it is an ordinary module_utils module.  The
  ``pg_dump_schedule`` module imports it, calls :func:`build_config` and
  :func:`validate_config` to reject bad input before writing anything, and
  writes ``inspect.getsource()`` of this module to the DB host (prepending a
  shebang), together with a JSON config.
* On the DB host cron runs it as a standalone program::

      /usr/bin/python3 RUNNER --config /etc/dbfleet/pg_dump/NAME.json [--json] [--quiet] [--dry-run]

Importing it has no side effects; all work happens under :func:`main`.  Only
the standard library is needed, boto3 is imported lazily when an S3 upload is
configured.  Python 3.8+.

Exit codes: 0 everything succeeded, 1 any failure (a dump, an upload, a prune,
the WAL archive cleanup), 2 bad config or command line, 75 skipped because
another run holds the lock.

Two kinds of schedule (config key ``kind``):

* ``"dump"`` (the default): logical dumps, one ``pg_dump`` per database
  (``databases``/``exclude_databases``, ``format``, ``jobs``) plus, with
  ``globals: true`` (the default for this kind), ``pg_dumpall --globals-only``
  (roles, tablespaces) as the artifact ``globals``.  Role passwords live in
  ``pg_catalog.pg_authid``, which a superuser and a role granted
  ``pg_read_all_data`` (the least-privilege backup role) may read; when the
  connecting role cannot read it, the globals are dumped with
  ``--no-role-passwords`` and the globals manifest says
  ``"role_passwords": false`` with a note.  One extra column of the query the
  runner already makes before each dump
  (``has_table_privilege('pg_catalog.pg_authid', 'SELECT')``) tells which case
  applies; when that query fails, the globals are dumped with role passwords
  (if pg_dumpall cannot read them, it says so and the globals fail).
* ``"basebackup"``: a physical base backup of the whole cluster for
  point-in-time restore, ``pg_basebackup --format=tar --wal-method=stream
  --checkpoint=fast --manifest-checksums=SHA256 --compress=client-METHOD:LEVEL``
  (``compression``/``compression_level`` as for dumps; needs pg_basebackup 15+
  and a role with REPLICATION plus a ``host replication`` pg_hba.conf line)
  into ``base-{stamp}.dir`` (the artifact ``base``: ``base.tar.*``,
  ``pg_wal.tar*``, ``backup_manifest``).  Its manifest adds ``start_lsn``,
  ``end_lsn``, ``timeline``, ``start_wal_file``, ``end_wal_file``,
  ``wal_segment_size``, ``wal_ranges`` (from the ``WAL-Ranges`` of
  pg_basebackup's ``backup_manifest``; the segment size from the server, or
  from ``pg_wal.tar`` when the server cannot be asked) and
  ``pg_basebackup_version``.  ``databases``, ``exclude_databases``,
  ``format`` and ``jobs`` must be left at their defaults and ``globals`` must
  be false (its default for this kind): a base backup always copies every
  database and every role.  Optional ``wal_archive`` (basebackup only): after
  a good base backup and retention, ``pg_archivecleanup WAL_ARCHIVE
  START_WAL_FILE`` removes archived WAL segments older than the start WAL file
  of the oldest base backup still kept (never anything newer); the run summary
  says how many under ``wal_cleanup``.  Only the base backups in this
  schedule's ``dest`` count, so a WAL archive must serve exactly one
  basebackup schedule; the small ``.backup`` history files are left alone (as
  pg_archivecleanup does).  The names ``globals`` and ``base`` are reserved: a
  dump schedule refuses databases named ``base``.

What it guarantees (see the tests):

* a dump is streamed to ``.{final}.partial-{pid}`` in the destination
  directory, fsync'd and renamed only when every stage of the pipeline
  (pg_dump, the compressor) exited 0; anything else removes the temp file, so a
  file that looks like a backup is always a complete one (a base backup is
  written by pg_basebackup into ``.base-{stamp}.dir.partial-{pid}`` and renamed
  the same way);
* the SHA-256 is computed while streaming (one pass, never re-read); only
  directories that a PostgreSQL tool writes itself (directory-format dumps,
  base backups) are read back once to hash their files;
* compression happens exactly once (pg_dump's own, or an external compressor
  fed by ``pg_dump -Z0``, never both);
* every artifact gets a sidecar manifest ``{db}-{stamp}.manifest.json`` saying
  ``ok`` or ``failed`` and, when failed, what failed in words;
* retention never deletes the newest ``keep_min`` good dumps (or base
  backups), never counts a failed run as good, and prunes nothing for a
  database whose run just failed (nor the WAL archive after a failed base
  backup);
* no password ever appears in an argv or in the environment the runner
  builds: libpq reads it from ``connection.passfile`` (``PGPASSFILE``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import base64
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time

RUNNER_VERSION = "1.0.0"
MANIFEST_VERSION = 1

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_SKIPPED = 75  # EX_TEMPFAIL: "try again later"

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

FORMATS = ("custom", "directory", "plain")
COMPRESSIONS = ("zstd", "gzip", "lz4", "none")
FORMAT_EXTENSION = {"custom": ".dump", "directory": ".dir", "plain": ".sql"}
COMPRESSOR_SUFFIX = {"zstd": ".zst", "gzip": ".gz", "lz4": ".lz4"}
LEVEL_RANGE = {"zstd": (1, 19), "gzip": (1, 9), "lz4": (1, 12)}
# Default levels, measured on this kind of machine (2 cores, PostgreSQL 15,
# a 207 MB text-heavy table, `pg_dump -Fc -Z0 | COMPRESSOR > file`):
#   zstd -T0 -1: 233 MB/s, ratio 1.99    zstd -T0 -2: 208 MB/s, ratio 2.27
#   zstd -T0 -3: 122 MB/s, ratio 2.42    lz4 -1:      155 MB/s, ratio 1.39
#   pg_dump -Fc (gzip 6): 31 MB/s, ratio 2.33   pg_dump -Fc -Z1: 86 MB/s, ratio 2.07
# zstd -2 keeps pace with pg_dump itself (the pipeline stays pg_dump-bound)
# while matching gzip -6's ratio at ~7x the speed; -3 halves the throughput for
# +7% ratio.  gzip is only chosen for compatibility, so it gets its fast level 1
# (2.8x faster than 6 for an 11% larger file).
DEFAULT_LEVEL = {"zstd": 2, "gzip": 1, "lz4": 1}
NATIVE_ZSTD_LZ4_MAJOR = 16  # pg_dump --compress=zstd|lz4 appeared in PostgreSQL 16

GLOBALS_NAME = "globals"
BASE_NAME = "base"            # the artifact name of base backups: base-{stamp}.dir
KINDS = ("dump", "basebackup")
BASEBACKUP_MIN_MAJOR = 15     # --compress=client-METHOD:LEVEL appeared in pg_basebackup 15
ROLE_PASSWORDS_NOTE = ("role passwords not included: the backup role cannot read pg_authid "
                       "(grant it pg_read_all_data, or dump as a superuser)")
BASE_HASH_NOTE = ("file checksums were computed by reading the files back after pg_basebackup wrote them "
                  "(it writes the directory itself, so one extra read is unavoidable)")
MANIFEST_SUFFIX = ".manifest.json"
LAST_RUN_FILE = "last-run.json"
READ_CHUNK = 1 << 20          # 1 MiB reads from the last pipeline stage
PIPE_SIZE = 1 << 20           # ask Linux for 1 MiB pipes (fewer syscalls)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
DEFAULT_PART_SIZE_MB = 64     # S3 multipart part size (64 MiB x 10000 parts = 625 GiB)
APP_NAME = "dbfleet-pg-dump"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
MAX_STDERR_LOG = 64 * 1024

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STAMP_RE = re.compile(r"^\d{8}T\d{6}Z$")
_ARTIFACT_RE = re.compile(
    r"^(?P<db>.+)-(?P<stamp>\d{8}T\d{6}Z)"
    r"(?P<ext>\.manifest\.json|\.dump(?:\.zst|\.gz|\.lz4)?|\.sql(?:\.zst|\.gz|\.lz4)?|\.dir)$",
    re.DOTALL,
)
_PARTIAL_RE = re.compile(r"^\.(?P<final>.+)\.partial-(?P<pid>\d+)$", re.DOTALL)
_PG_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+((\d+)(?:\.(\d+))?\S*(?:\s.*)?)$")
_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_WAL_FILE_RE = re.compile(r"^[0-9A-F]{24}$")
_BB_START_RE = re.compile(r"write-ahead log start point: ([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}) on timeline (\d+)")

DEFAULTS = {
    "name": None,
    "kind": "dump",
    "databases": "all",
    "exclude_databases": [],
    "format": "custom",
    "jobs": 1,
    "compression": "zstd",
    "compression_level": None,
    "dest": None,
    "retention_days": 14,
    "keep_min": 3,
    "globals": True,
    "connection": None,
    "pg_bin": None,
    "lock_file": None,     # /var/lib/dbfleet/pg_dump/{name}.lock
    "lock_wait": 0,
    "state_dir": None,     # /var/lib/dbfleet/pg_dump/{name}
    "log_file": None,      # /var/log/dbfleet/pg_dump-{name}.log
    "s3": None,
    "wal_archive": None,   # basebackup only: the WAL archive directory to clean up
}
CONNECTION_DEFAULTS = {
    "host": None,
    "port": 5432,
    "user": None,
    "dbname": "postgres",
    "passfile": None,
    "sslmode": None,
    "connect_timeout": 30,
}
S3_DEFAULTS = {
    "bucket": None,
    "prefix": "",
    "endpoint_url": None,
    "region": None,
    "credentials_file": None,
    "part_size_mb": DEFAULT_PART_SIZE_MB,
}


# --------------------------------------------------------------------------
# Pure helpers: naming, compression plan, retention plan, config validation
# --------------------------------------------------------------------------

def utcnow():
    """Return the current time as an aware UTC datetime."""
    return datetime.datetime.now(datetime.timezone.utc)


def format_stamp(when):
    """Return the artifact stamp (``%Y%m%dT%H%M%SZ``, UTC) of an aware datetime."""
    return when.astimezone(datetime.timezone.utc).strftime(STAMP_FORMAT)


def parse_stamp(stamp):
    """Parse an artifact stamp into an aware UTC datetime (ValueError if malformed)."""
    if not isinstance(stamp, str) or not _STAMP_RE.match(stamp):
        raise ValueError("not an artifact stamp: %r" % (stamp,))
    return datetime.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)


def _iso(when):
    return when.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def _stamp_text(stamp):
    if isinstance(stamp, datetime.datetime):
        return format_stamp(stamp)
    parse_stamp(stamp)
    return stamp


def artifact_name(db, stamp, fmt, compression):
    """Return the file name (no directory) of a dump artifact.

    ``{db}-{stamp}{ext}``: ext is ``.dump`` (custom), ``.dir`` (directory) or
    ``.sql`` (plain), followed by ``.zst``/``.gz``/``.lz4`` when an *external*
    compressor is applied to pg_dump's output.  ``compression`` is therefore the
    external compressor (``compression_plan(...)["external_compression"]``):
    ``"zstd"``, ``"gzip"``, ``"lz4"`` or ``"none"``/``None``; compression done by
    pg_dump itself adds no suffix.  ``stamp`` is a stamp string or an aware
    datetime.  The globals dump is ``artifact_name("globals", stamp, "plain", c)``.
    """
    if fmt not in FORMAT_EXTENSION:
        raise ValueError("unknown dump format %r" % (fmt,))
    suffix = ""
    if compression not in (None, "none"):
        if compression not in COMPRESSOR_SUFFIX:
            raise ValueError("unknown compression %r" % (compression,))
        if fmt == "directory":
            raise ValueError("a directory-format dump cannot be piped through an external compressor")
        suffix = COMPRESSOR_SUFFIX[compression]
    return "%s-%s%s%s" % (db, _stamp_text(stamp), FORMAT_EXTENSION[fmt], suffix)


def manifest_name(db, stamp):
    """Return the sidecar manifest file name ``{db}-{stamp}.manifest.json``.

    It carries no dump extension, so a glob like ``app-*.dump*`` never matches it.
    """
    return "%s-%s%s" % (db, _stamp_text(stamp), MANIFEST_SUFFIX)


def parse_artifact_name(name):
    """Parse a runner-made file name; return None if the name is not one of ours.

    Returns a dict: ``db``, ``stamp`` (string), ``when`` (aware datetime),
    ``kind`` (``"dump"`` or ``"manifest"``), ``format`` (custom/directory/plain,
    None for a manifest) and ``compression`` (the external compressor suffix
    as a name, ``"none"``, or None for a manifest).  Temp files
    (``.{final}.partial-{pid}``) are not artifacts and return None.
    """
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        return None
    match = _ARTIFACT_RE.match(name)
    if not match:
        return None
    try:
        when = parse_stamp(match.group("stamp"))
    except ValueError:
        return None
    ext = match.group("ext")
    result = {"db": match.group("db"), "stamp": match.group("stamp"), "when": when,
              "kind": "dump", "format": None, "compression": None}
    if ext == MANIFEST_SUFFIX:
        result["kind"] = "manifest"
        return result
    base, _dot, comp = ext[1:].partition(".")
    result["format"] = {"dump": "custom", "dir": "directory", "sql": "plain"}[base]
    result["compression"] = {"": "none", "zst": "zstd", "gz": "gzip", "lz4": "lz4"}[comp]
    return result


def partial_name(final_name, pid=None):
    """Return the temp name ``.{final}.partial-{pid}`` used while writing ``final_name``."""
    return ".%s.partial-%d" % (final_name, os.getpid() if pid is None else pid)


def parse_partial_name(name):
    """Return ``(final_name, pid)`` for a runner temp name of one of our artifacts, else None."""
    match = _PARTIAL_RE.match(name or "")
    if not match or parse_artifact_name(match.group("final")) is None:
        return None
    return match.group("final"), int(match.group("pid"))


def compression_plan(fmt, compression, level, pg_dump_major):
    """Decide who compresses, how, and why -- compressing exactly once.

    Arguments: dump format (custom/directory/plain), requested compression
    (zstd/gzip/lz4/none), requested level (None = default) and pg_dump's major
    version.  Returns a dict:

    ``compression``/``level``: what is actually used; ``requested_compression``/
    ``requested_level``: what was asked for; ``by``: ``"pg_dump"``,
    ``"external"`` or ``"none"``; ``pg_dump_args``: compression arguments for
    pg_dump (``-Z0`` whenever pg_dump must not compress); ``external``: argv of
    the external compressor reading stdin and writing stdout, or None;
    ``external_compression``: its name or ``"none"`` (what
    :func:`artifact_name` takes); ``extension``: the file extension;
    ``reason``: one sentence for the manifest.

    Rules: pg_dump < 16 compresses only with gzip, so custom/plain + zstd/lz4
    means ``pg_dump -Z0 | zstd -T0 -LEVEL -c`` (or lz4); custom + gzip uses
    pg_dump's own ``-Z LEVEL`` (never pg_dump compression *and* a compressor);
    plain + gzip pipes through external gzip; a directory dump cannot be piped,
    so it uses pg_dump's native compression (gzip before 16, zstd/lz4 from 16)
    and records the fallback.  From 16 on, custom format compresses natively
    (the archive stays directly readable by pg_restore); plain keeps the
    external, multi-threaded compressor.
    """
    if fmt not in FORMATS:
        raise ValueError("unknown dump format %r" % (fmt,))
    if compression not in COMPRESSIONS:
        raise ValueError("unknown compression %r" % (compression,))
    major = int(pg_dump_major)
    plan = {
        "format": fmt, "requested_compression": compression, "requested_level": level,
        "pg_dump_major": major, "compression": compression, "level": None, "by": "none",
        "pg_dump_args": ["-Z0"], "external": None, "external_compression": "none",
        "extension": FORMAT_EXTENSION[fmt], "reason": "",
    }
    if compression == "none":
        plan["reason"] = "compression disabled; pg_dump runs with -Z0"
        return plan
    lvl = DEFAULT_LEVEL[compression] if level is None else int(level)
    plan["level"] = lvl
    native = compression == "gzip" or major >= NATIVE_ZSTD_LZ4_MAJOR

    def use_native(method, method_level):
        plan["by"] = "pg_dump"
        plan["compression"] = method
        plan["level"] = method_level
        if major >= NATIVE_ZSTD_LZ4_MAJOR:
            plan["pg_dump_args"] = ["--compress=%s:%d" % (method, method_level)]
        else:
            plan["pg_dump_args"] = ["-Z", str(method_level)]

    if fmt == "directory":
        if native:
            use_native(compression, lvl)
            plan["reason"] = ("directory format cannot be piped; pg_dump %d compresses each file with %s level %d"
                              % (major, compression, lvl))
        else:
            use_native("gzip", DEFAULT_LEVEL["gzip"])
            plan["reason"] = ("pg_dump %d can compress directory-format dumps only with gzip (%s needs pg_dump 16+); "
                              "used gzip level %d instead of %s" % (major, compression, DEFAULT_LEVEL["gzip"], compression))
        return plan
    if fmt == "custom" and native:
        use_native(compression, lvl)
        plan["reason"] = ("pg_dump %d compresses the custom archive itself with %s level %d; no external compressor"
                          % (major, compression, lvl))
        return plan
    argv = {
        "zstd": ["zstd", "-q", "-T0", "-%d" % lvl, "-c"],
        "lz4": ["lz4", "-q", "-%d" % lvl, "-c"],
        "gzip": ["gzip", "-c", "-%d" % lvl],
    }[compression]
    plan.update({"by": "external", "external": argv, "external_compression": compression,
                 "extension": FORMAT_EXTENSION[fmt] + COMPRESSOR_SUFFIX[compression]})
    if fmt == "plain":
        plan["reason"] = "plain SQL from pg_dump -Z0 piped through %s level %d" % (compression, lvl)
    else:
        plan["reason"] = ("pg_dump %d cannot write %s; custom archive from pg_dump -Z0 piped through %s level %d"
                          % (major, compression, compression, lvl))
    return plan


def tree_sha256(file_sha256s):
    """SHA-256 of a directory dump: over its ``sha256sum``-style listing ("HEX  RELPATH\\n", sorted by path).

    ``file_sha256s`` maps relative path to hex SHA-256.  The runner records it
    in directory-format manifests and ``file_stat`` computes the same value, so
    the two compare like with like.
    """
    listing = "".join("%s  %s\n" % (file_sha256s[rel], rel) for rel in sorted(file_sha256s))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


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
    if not _is_int(size) or size < (1 << 20) or size > (1 << 30) or size & (size - 1):
        return "%r is not a WAL segment size (a power of two from 1 MiB to 1 GiB)" % (size,)
    return None


def wal_file_name(timeline, lsn, segment_size):
    """Name of the WAL segment file holding byte ``lsn`` on ``timeline`` (PostgreSQL's XLogFileName).

    ``lsn`` is an integer or an ``"X/Y"`` string; ``segment_size`` in bytes.
    """
    problem = wal_segment_size_problem(segment_size)
    if problem:
        raise ValueError(problem)
    if not _is_int(timeline) or not 1 <= timeline <= 0xFFFFFFFF:
        raise ValueError("not a timeline: %r" % (timeline,))
    if isinstance(lsn, str):
        lsn = parse_lsn(lsn)
    segno = lsn // segment_size
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
        if not isinstance(item, dict) or not _is_int(item.get("Timeline")):
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


def basebackup_compression_plan(compression, level):
    """How pg_basebackup compresses (always on the client side, exactly once).

    Returns a dict shaped like :func:`compression_plan`'s (``compression``,
    ``level``, ``requested_*``, ``by``, ``reason``, ``format`` ``"tar"``) with
    ``args``: pg_basebackup's ``--compress=client-METHOD:LEVEL`` (or
    ``--compress=none``).  Levels default as for dumps (``DEFAULT_LEVEL``).
    pg_basebackup 15 compresses base.tar with any method but pg_wal.tar only
    with gzip; the reason says so.
    """
    if compression not in COMPRESSIONS:
        raise ValueError("unknown compression %r" % (compression,))
    plan = {"format": "tar", "requested_compression": compression, "requested_level": level, "compression": compression,
            "level": None, "by": "none", "args": ["--compress=none"], "external": None, "external_compression": "none",
            "extension": FORMAT_EXTENSION["directory"], "pg_dump_args": []}
    if compression == "none":
        plan["reason"] = "compression disabled; pg_basebackup writes plain tar files"
        return plan
    lvl = DEFAULT_LEVEL[compression] if level is None else int(level)
    plan.update({"level": lvl, "by": "pg_basebackup", "args": ["--compress=client-%s:%d" % (compression, lvl)]})
    plan["reason"] = "pg_basebackup compresses the tar files on the client with %s level %d" % (compression, lvl)
    if compression != "gzip":
        plan["reason"] += " (pg_wal.tar stays uncompressed: pg_basebackup compresses the WAL tar only with gzip)"
    return plan


def basebackup_argv(pg_basebackup, target, plan, label):
    """argv of pg_basebackup writing a tar-format base backup with streamed WAL into ``target``.

    The connection comes from the environment (PGHOST, PGPORT, PGUSER,
    PGPASSFILE ...), never from arguments; ``--no-password`` makes a missing
    password an error instead of a prompt.
    """
    return [pg_basebackup, "--pgdata=%s" % target, "--format=tar", "--wal-method=stream", "--checkpoint=fast",
            "--no-password", "--manifest-checksums=SHA256", "--label=%s" % label, "--verbose"] + list(plan["args"])


def parse_server_info(text):
    """Parse the runner's one-row server query (``psql -A -t -F '|'``) into a dict.

    Columns: whether the current user may read ``pg_catalog.pg_authid``, i.e.
    role passwords (``has_table_privilege``, ``t``/``f``), wal_segment_size in
    bytes, pg_database_size of the current database, server_version (last: it
    is free text).  Unknown or empty values become None.
    """
    fields = text.strip().split("|", 3)
    fields += [""] * (4 - len(fields))
    reads_role_passwords = {"t": True, "f": False, "true": True, "false": False}.get(fields[0].strip())
    sizes = []
    for item in fields[1:3]:
        try:
            sizes.append(int(item.strip()))
        except ValueError:
            sizes.append(None)
    if sizes[0] is not None and wal_segment_size_problem(sizes[0]):
        sizes[0] = None
    return {"reads_role_passwords": reads_role_passwords, "wal_segment_size": sizes[0], "db_size_bytes": sizes[1],
            "server_version": fields[3].strip() or None}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_abs_path(value):
    return isinstance(value, str) and value.startswith("/") and "\0" not in value


def db_name_problem(db):
    """Return why ``db`` cannot be used in artifact file names, or None if it can."""
    if not isinstance(db, str) or not db:
        return "a database name must be a non-empty string"
    if "/" in db or "\0" in db:
        return "database name %r contains '/' or NUL, which cannot be part of a file name" % (db,)
    if db.startswith("."):
        return "database name %r starts with '.', which would make its dumps hidden files" % (db,)
    if len(db.encode("utf-8")) > 63:
        return "database name %r is longer than PostgreSQL's 63-byte limit" % (db,)
    return None


def build_config(name, dest, **options):
    """Return a complete runner config from ``name``, ``dest`` and options.

    Missing options and options given as None take their defaults (see
    ``DEFAULTS``, ``CONNECTION_DEFAULTS``, ``S3_DEFAULTS``; ``globals``
    defaults to true for ``kind: dump`` and to false for ``kind: basebackup``); ``lock_file``,
    ``state_dir`` and ``log_file`` default to ``/var/lib/dbfleet/pg_dump/{name}.lock``,
    ``/var/lib/dbfleet/pg_dump/{name}`` and ``/var/log/dbfleet/pg_dump-{name}.log``.
    Unknown keys are kept so that :func:`validate_config` reports them.  Does
    not validate: call :func:`validate_config` on the result.
    """
    cfg = {}
    for key, default in DEFAULTS.items():
        value = options.get(key)
        cfg[key] = json.loads(json.dumps(default)) if value is None else value
    for key, value in options.items():
        if key not in DEFAULTS:
            cfg[key] = value
    cfg["name"] = name
    cfg["dest"] = (dest.rstrip("/") or "/") if isinstance(dest, str) else dest
    if options.get("globals") is None and cfg["kind"] == "basebackup":
        cfg["globals"] = False  # a base backup already holds every role
    if isinstance(cfg.get("wal_archive"), str) and len(cfg["wal_archive"]) > 1:
        cfg["wal_archive"] = cfg["wal_archive"].rstrip("/") or "/"
    conn = dict(CONNECTION_DEFAULTS)
    if isinstance(options.get("connection"), dict):
        for key, value in options["connection"].items():
            if value not in (None, "") or key not in CONNECTION_DEFAULTS:
                conn[key] = value
        cfg["connection"] = conn
    elif options.get("connection") is None:
        cfg["connection"] = conn
    s3 = options.get("s3")
    if isinstance(s3, dict):
        merged = dict(S3_DEFAULTS)
        for key, value in s3.items():
            if value is not None or key not in S3_DEFAULTS:
                merged[key] = value
        cfg["s3"] = merged
    if isinstance(name, str):
        if cfg["lock_file"] is None:
            cfg["lock_file"] = "/var/lib/dbfleet/pg_dump/%s.lock" % name
        if cfg["state_dir"] is None:
            cfg["state_dir"] = "/var/lib/dbfleet/pg_dump/%s" % name
        if cfg["log_file"] is None:
            cfg["log_file"] = "/var/log/dbfleet/pg_dump-%s.log" % name
    return cfg


def validate_config(cfg):
    """Return a list of error strings for a runner config (empty list = valid).

    Checks every key, type and range the runner relies on, and rejects unknown
    keys (typos) and a ``password`` anywhere (use ``connection.passfile``).
    Missing optional keys (and None values) are judged with their defaults,
    exactly as the runner will apply them (through :func:`build_config`).

    ``kind: basebackup`` rejects what contradicts a base backup: ``databases``
    other than ``"all"``, a non-empty ``exclude_databases``, a ``format``
    other than the default, ``jobs`` other than 1, and ``globals: true``
    (leave them unset).  ``wal_archive`` is only accepted with
    ``kind: basebackup`` and must be an absolute directory other than
    ``dest``.  A dump schedule rejects a database named ``base`` (the name of
    base backups' files) like one named ``globals`` when ``globals`` is true.
    """
    if not isinstance(cfg, dict):
        return ["the config must be a JSON object"]
    data = dict(cfg)
    name = data.pop("name", None)
    dest = data.pop("dest", None)
    return _validate_full(build_config(name, dest, **data))


def _validate_full(cfg):
    errors = []
    for key in sorted(set(cfg) - set(DEFAULTS)):
        errors.append("unknown config key %r" % (key,))
    name = cfg.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        errors.append("name must be 1-64 characters of letters, digits, '_', '.', '-' starting with a letter or digit, got %r" % (name,))
    dest = cfg.get("dest")
    if not _is_abs_path(dest) or dest == "/" or os.path.normpath(dest) != dest:
        errors.append("dest must be a normalized absolute directory path other than '/', got %r" % (dest,))
    kind = cfg.get("kind")
    if kind not in KINDS:
        errors.append("kind must be one of %s, got %r" % (", ".join(KINDS), kind))
    if kind == "basebackup":
        errors.extend(_validate_basebackup_selection(cfg))
    else:
        errors.extend(_validate_dump_selection(cfg))
    compression = cfg.get("compression")
    level = cfg.get("compression_level")
    if compression not in COMPRESSIONS:
        errors.append("compression must be one of %s, got %r" % (", ".join(COMPRESSIONS), compression))
    elif level is not None:
        if compression == "none":
            errors.append("compression_level must be null when compression is none")
        elif not _is_int(level) or not LEVEL_RANGE[compression][0] <= level <= LEVEL_RANGE[compression][1]:
            errors.append("compression_level for %s must be an integer from %d to %d, got %r"
                          % ((compression,) + LEVEL_RANGE[compression] + (level,)))
    wal_archive = cfg.get("wal_archive")
    if wal_archive is not None:
        if not _is_abs_path(wal_archive) or wal_archive == "/" or os.path.normpath(wal_archive) != wal_archive:
            errors.append("wal_archive must be null or a normalized absolute directory path other than '/', got %r" % (wal_archive,))
        elif kind in KINDS and kind != "basebackup":
            errors.append("wal_archive only applies to kind: basebackup (WAL is cleaned up after a base backup)")
        elif wal_archive == dest:
            errors.append("wal_archive must not be dest: keep archived WAL and base backups in different directories")
    retention = cfg.get("retention_days")
    if not _is_int(retention) or retention < 0:
        errors.append("retention_days must be an integer >= 0, got %r" % (retention,))
    keep_min = cfg.get("keep_min")
    if not _is_int(keep_min) or keep_min < 1:
        errors.append("keep_min must be an integer >= 1 (the newest good dump is never deleted), got %r" % (keep_min,))
    lock_wait = cfg.get("lock_wait")
    if isinstance(lock_wait, bool) or not isinstance(lock_wait, (int, float)) or lock_wait < 0:
        errors.append("lock_wait must be a number of seconds >= 0, got %r" % (lock_wait,))
    for key in ("lock_file", "state_dir", "log_file"):
        if not _is_abs_path(cfg.get(key)):
            errors.append("%s must be an absolute path, got %r" % (key, cfg.get(key)))
    if cfg.get("pg_bin") is not None and not _is_abs_path(cfg.get("pg_bin")):
        errors.append("pg_bin must be null or an absolute directory path, got %r" % (cfg.get("pg_bin"),))
    errors.extend(_validate_connection(cfg.get("connection")))
    errors.extend(_validate_s3(cfg.get("s3")))
    return errors


def _validate_dump_selection(cfg):
    errors = []
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        errors.append("format must be one of %s, got %r" % (", ".join(FORMATS), fmt))
    jobs = cfg.get("jobs")
    if not _is_int(jobs) or jobs < 1:
        errors.append("jobs must be an integer >= 1, got %r" % (jobs,))
    elif jobs > 1 and fmt != "directory":
        errors.append("jobs > 1 needs format: directory (pg_dump dumps in parallel only into a directory)")
    use_globals = cfg.get("globals")
    if not isinstance(use_globals, bool):
        errors.append("globals must be true or false, got %r" % (use_globals,))
    databases = cfg.get("databases")
    excludes = cfg.get("exclude_databases")
    if not isinstance(excludes, list) or not all(isinstance(item, str) for item in excludes):
        errors.append("exclude_databases must be a list of database names")
        excludes = []
    if databases == "all":
        pass
    elif isinstance(databases, list) and databases:
        if len(set(databases)) != len(databases):
            errors.append("databases lists a database more than once")
        for db in databases:
            problem = db_name_problem(db)
            if problem:
                errors.append(problem)
            elif db == GLOBALS_NAME and use_globals is True:
                errors.append("a database named %r collides with the globals dump's file names; set globals: false" % GLOBALS_NAME)
            elif db == BASE_NAME:
                errors.append("a database named %r collides with the file names of base backups (%s-STAMP.dir); "
                              "the name is reserved" % (BASE_NAME, BASE_NAME))
        if excludes:
            errors.append("exclude_databases only applies when databases is 'all'")
    else:
        errors.append("databases must be 'all' or a non-empty list of database names, got %r" % (databases,))
    return errors


def _validate_basebackup_selection(cfg):
    errors = []
    why = "a base backup always copies the whole cluster; leave it unset"
    if cfg.get("databases") != "all":
        errors.append("databases does not apply to kind: basebackup (%s)" % why)
    if cfg.get("exclude_databases") not in ([], None):
        errors.append("exclude_databases does not apply to kind: basebackup (%s)" % why)
    if cfg.get("format") != DEFAULTS["format"]:
        errors.append("format does not apply to kind: basebackup (pg_basebackup writes tar files into %s-STAMP.dir; leave it unset)" % BASE_NAME)
    if cfg.get("jobs") != 1:
        errors.append("jobs does not apply to kind: basebackup (pg_basebackup copies with one connection; leave it unset)")
    if cfg.get("globals") is not False:
        errors.append("globals must be false or unset with kind: basebackup (a base backup already contains every role; "
                      "use a dump schedule for a globals SQL file)")
    return errors


def _validate_connection(conn):
    errors = []
    if not isinstance(conn, dict):
        return ["connection must be an object"]
    if "password" in conn:
        errors.append("connection.password is not accepted: passwords never go into the config; use connection.passfile")
    for key in sorted(set(conn) - set(CONNECTION_DEFAULTS) - {"password"}):
        errors.append("unknown connection key %r" % (key,))
    for key in ("host", "user", "sslmode"):
        value = conn.get(key)
        if value is not None and (not isinstance(value, str) or not value or "\0" in value):
            errors.append("connection.%s must be null or a non-empty string" % key)
    if not isinstance(conn.get("dbname"), str) or not conn.get("dbname"):
        errors.append("connection.dbname must be a non-empty string (the database used to list databases)")
    port = conn.get("port")
    if port is not None and (not _is_int(port) or not 1 <= port <= 65535):
        errors.append("connection.port must be an integer from 1 to 65535, got %r" % (port,))
    if conn.get("passfile") is not None and not _is_abs_path(conn.get("passfile")):
        errors.append("connection.passfile must be null or an absolute path")
    if conn.get("sslmode") is not None and conn.get("sslmode") not in SSLMODES:
        errors.append("connection.sslmode must be one of %s" % ", ".join(SSLMODES))
    timeout = conn.get("connect_timeout")
    if timeout is not None and (not _is_int(timeout) or timeout < 0):
        errors.append("connection.connect_timeout must be an integer >= 0")
    return errors


def _validate_s3(s3):
    if s3 is None:
        return []
    if not isinstance(s3, dict):
        return ["s3 must be null or an object"]
    errors = []
    for key in sorted(set(s3) - set(S3_DEFAULTS)):
        errors.append("unknown s3 key %r%s" % (key, " (put credentials in s3.credentials_file)" if "secret" in key or "key_id" in key else ""))
    if not isinstance(s3.get("bucket"), str) or not s3.get("bucket"):
        errors.append("s3.bucket must be a non-empty string")
    if not isinstance(s3.get("prefix"), str):
        errors.append("s3.prefix must be a string (may be empty)")
    elif s3["prefix"].startswith("/"):
        errors.append("s3.prefix must not start with '/'")
    url = s3.get("endpoint_url")
    if url is not None and (not isinstance(url, str) or not re.match(r"^https?://[^\s]+$", url)):
        errors.append("s3.endpoint_url must be null or an http(s):// URL")
    if s3.get("region") is not None and (not isinstance(s3["region"], str) or not s3["region"]):
        errors.append("s3.region must be null or a non-empty string")
    if s3.get("credentials_file") is not None and not _is_abs_path(s3["credentials_file"]):
        errors.append("s3.credentials_file must be null or an absolute path")
    part = s3.get("part_size_mb")
    if not _is_int(part) or not 5 <= part <= 5120:
        errors.append("s3.part_size_mb must be an integer from 5 to 5120, got %r" % (part,))
    return errors


def load_config(path):
    """Read a JSON config file; return ``(config, errors)`` (config is None on errors)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        return None, ["cannot read config %s: %s" % (path, exc)]
    if not isinstance(data, dict):
        return None, ["config %s must contain a JSON object" % path]
    data = dict(data)
    name = data.pop("name", None)
    dest = data.pop("dest", None)
    cfg = build_config(name, dest, **data)
    errors = _validate_full(cfg)
    return (None if errors else cfg), errors


def s3_composite_checksum(part_digests):
    """Return S3's composite ChecksumSHA256 (``BASE64-N``) for raw SHA-256 part digests."""
    combined = hashlib.sha256(b"".join(part_digests)).digest()
    return "%s-%d" % (base64.b64encode(combined).decode("ascii"), len(part_digests))


class StreamDigest:
    """SHA-256 of a stream, plus per-part digests for S3 multipart comparison.

    ``part_size`` 0 disables part digests.  Parts are cut exactly where boto3's
    transfer manager cuts them (multipart_chunksize), so the composite checksum
    S3 reports for a multipart upload can be compared like with like.
    """

    def __init__(self, part_size=0):
        self.whole = hashlib.sha256()
        self.size = 0
        self.part_size = part_size
        self.parts = []
        self._part = hashlib.sha256()
        self._fill = 0

    def update(self, data):
        """Feed bytes (bytes, bytearray or memoryview)."""
        self.whole.update(data)
        length = len(data)
        self.size += length
        if not self.part_size:
            return
        view = memoryview(data)
        offset = 0
        while offset < length:
            take = view[offset:offset + self.part_size - self._fill]
            self._part.update(take)
            self._fill += len(take)
            offset += len(take)
            if self._fill == self.part_size:
                self.parts.append(self._part.digest())
                self._part = hashlib.sha256()
                self._fill = 0

    def part_digests(self):
        """Raw digests of the parts (the last one may be short)."""
        if self._fill:
            return self.parts + [self._part.digest()]
        return list(self.parts)

    def hexdigest(self):
        """Hex SHA-256 of everything fed so far."""
        return self.whole.hexdigest()


# --------------------------------------------------------------------------
# Small I/O helpers
# --------------------------------------------------------------------------

def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(path, mode=0o750):
    """Create ``path`` and missing parents; chmod the directories it created."""
    missing = []
    probe = path
    while probe and probe != "/" and not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue
        os.chmod(directory, mode)


def _write_all(fd, view):
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _remove_path(path):
    """Remove a file, symlink or directory tree; missing is fine."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def write_json_atomic(path, data, mode=0o640):
    """Write JSON to ``path`` via a same-directory temp file, fsync and rename."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, partial_name(os.path.basename(path)))
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, memoryview(payload))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        _remove_path(tmp)
        raise
    _fsync_dir(directory)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _hint(text):
    low = text.lower()
    if "no space left on device" in low:
        return " (the backup filesystem is full: free space or lower retention_days/keep_min)"
    if "connection refused" in low or ("no such file or directory" in low and "socket" in low):
        return " (is PostgreSQL running and listening where connection.host/port point?)"
    if "password authentication failed" in low or "no password supplied" in low:
        return " (check connection.user and the passfile)"
    if "replication" in low and ("walsender" in low or "pg_hba.conf" in low or "permission" in low):
        return (" (a base backup needs a role with the REPLICATION attribute and a 'host replication' line "
                "for it in pg_hba.conf)")
    if "does not exist" in low and "database" in low:
        return " (check the database name in the schedule)"
    if "permission denied" in low:
        return " (the dump user lacks a privilege; grant pg_read_all_data or dump as a superuser)"
    return ""


def _fs_hint(exc):
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return " (the backup filesystem is full: free space or lower retention_days/keep_min)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return " (the user running the dumps cannot write there: check the owner and mode of dest)"
    return ""


def _stderr_summary(text, limit=3):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-limit:])


class _Terminated(BaseException):
    """Raised from the SIGTERM/SIGHUP/SIGINT handler so that cleanup code runs."""


def _on_signal(signum, _frame):
    raise _Terminated(signum)


class _Log:
    """Append timestamped lines to the log file, and to stderr unless quiet."""

    def __init__(self, path, name, quiet):
        self.name = name
        self.quiet = quiet
        self.handle = None
        self.problem = None
        if path:
            try:
                _makedirs(os.path.dirname(path))
                self.handle = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
            except OSError as exc:
                self.problem = "cannot write log file %s: %s" % (path, exc)

    def __call__(self, message):
        prefix = "%s %s[%d] " % (_iso(utcnow()), self.name, os.getpid())
        lines = str(message).splitlines() or [""]
        text = "".join(prefix + line + "\n" for line in lines)
        if self.handle is not None:
            try:
                self.handle.write(text)
                self.handle.flush()
            except OSError:
                pass
        if not self.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()

    def close(self):
        """Close the log file."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None


# --------------------------------------------------------------------------
# Pipeline execution
# --------------------------------------------------------------------------

def run_pipeline(stages, env, out_fd, digest):
    """Run ``stages`` (list of ``(label, argv)``) as a pipe; stream the last stdout.

    The last stage's stdout is read in Python in 1 MiB chunks, each chunk fed
    to ``digest`` and written to ``out_fd`` (one pass: never re-read to hash);
    ``out_fd`` None discards the output (pg_dump -Fd writes its own files).
    Every stage's stderr goes to its own temp file.  A write error (disk full)
    kills the pipeline.  Returns a dict: ``exit_status`` {label: code},
    ``stderr`` {label: text}, ``write_error`` (OSError or None).  Exit codes
    are the caller's to judge; any non-zero one means a failed dump.
    """
    procs = []
    errfiles = []
    write_error = None
    try:
        previous = None
        for label, argv in stages:
            errfile = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
            errfiles.append((label, errfile))
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                argv, stdin=previous.stdout if previous is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=errfile, env=env, bufsize=0, close_fds=True)
            if previous is not None:
                previous.stdout.close()  # only the next stage holds the read end now
            procs.append(proc)
            previous = proc
        source = procs[-1].stdout
        try:
            fcntl.fcntl(source.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # not fatal: smaller pipe, more syscalls
        buf = bytearray(READ_CHUNK)
        view = memoryview(buf)
        while True:
            count = source.readinto(buf)
            if not count:
                break
            chunk = view[:count]
            digest.update(chunk)
            if out_fd is None:
                continue
            try:
                _write_all(out_fd, chunk)
            except OSError as exc:
                write_error = exc
                break
        if write_error is not None:
            for proc in procs:
                _kill(proc)
        source.close()
        for proc in procs:
            proc.wait()
    except BaseException:
        for proc in procs:
            _kill(proc)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for _label, errfile in errfiles:
            errfile.close()
        raise
    result = {"exit_status": {}, "stderr": {}, "write_error": write_error}
    for proc, (label, errfile) in zip(procs, errfiles):
        result["exit_status"][label] = proc.returncode
        errfile.seek(0)
        result["stderr"][label] = errfile.read(MAX_STDERR_LOG).decode("utf-8", "replace")
        errfile.close()
    return result


def run_in_group(label, argv, env):
    """Run one program that writes its own files (pg_basebackup) in its own process group.

    pg_basebackup forks a WAL-streaming child; on a signal or an error the
    whole group is terminated (SIGTERM, then SIGKILL after 10 s) so no child
    outlives the run.  stdout is discarded, stderr captured.  Returns the same
    dict as :func:`run_pipeline` (``exit_status``, ``stderr``,
    ``write_error`` None).
    """
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                stderr=errfile, env=env, close_fds=True, start_new_session=True)
        try:
            proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
        errfile.seek(0)
        text = errfile.read(MAX_STDERR_LOG).decode("utf-8", "replace")
    return {"exit_status": {label: proc.returncode}, "stderr": {label: text}, "write_error": None}


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group (the WAL streamer)
    except OSError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def _wal_segment_size_from_tar(directory):
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
                    if member.isfile() and _WAL_FILE_RE.match(os.path.basename(member.name)):
                        return None if wal_segment_size_problem(member.size) else member.size
        except (OSError, tarfile.TarError, EOFError):
            return None
    return None


def _kill(proc):
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass


def _describe_exit(code):
    if code is None:
        return "did not finish"
    if code < 0:
        try:
            return "was killed by signal %s" % signal.Signals(-code).name
        except ValueError:
            return "was killed by signal %d" % -code
    return "exited with status %d" % code


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------

class DumpRun:
    """One execution of a schedule: dumps, manifests, uploads, retention."""

    def __init__(self, cfg, log, dry_run=False):
        self.cfg = cfg
        self.log = log
        self.dry_run = dry_run
        self.dest = cfg["dest"]
        self.errors = []
        self.warnings = []
        self.artifacts = []
        self.pruned = []
        self.host = socket.gethostname()
        self.pg_dump_version = None
        self.pg_dump_major = None
        self.pg_basebackup_version = None
        self.plan = None
        self.globals_plan = None
        self.base_plan = None
        self.wal_cleanup = None
        self.tools = {}
        self.env = self._environment()

    # -- environment and tools ------------------------------------------------

    def _environment(self):
        """Environment for libpq tools: connection only via PG* variables.

        Inherited PG* variables are dropped so cron and run_now behave the same;
        no password ever appears in argv (use the passfile).
        """
        env = dict((key, value) for key, value in os.environ.items() if not key.startswith("PG"))
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        conn = self.cfg["connection"]
        mapping = (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("dbname", "PGDATABASE"),
                   ("passfile", "PGPASSFILE"), ("sslmode", "PGSSLMODE"), ("connect_timeout", "PGCONNECT_TIMEOUT"))
        for key, var in mapping:
            if conn.get(key) is not None:
                env[var] = str(conn[key])
        env["PGAPPNAME"] = APP_NAME
        return env

    def _db_env(self, db):
        env = dict(self.env)
        # The database goes in PGDATABASE, never as an argument: libpq would
        # treat a name containing '=' as a connection string.
        env["PGDATABASE"] = db
        return env

    def _tool(self, name):
        if self.cfg.get("pg_bin"):
            return os.path.join(self.cfg["pg_bin"], name)
        return shutil.which(name, path=self.env.get("PATH")) or name

    def _tool_version(self, name):
        """``(full_version, major)`` of a PostgreSQL client tool; (None, None) with an error recorded."""
        try:
            proc = subprocess.run([self.tools[name], "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=self.env, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            self.errors.append("cannot run %s --version: %s (install the PostgreSQL client or set pg_bin)" % (self.tools[name], exc))
            return None, None
        out = proc.stdout.decode("utf-8", "replace").strip()
        match = _PG_VERSION_RE.search(out)
        if proc.returncode != 0 or not match:
            self.errors.append("cannot tell the %s version from %r (exit %s): %s"
                               % (name, out, proc.returncode, _stderr_summary(proc.stderr.decode("utf-8", "replace"))))
            return None, None
        return match.group(1).strip(), int(match.group(2))

    def prepare(self):
        """Find the tools, their versions, the compression plans; False with errors recorded on failure."""
        cfg = self.cfg
        if cfg["kind"] == "basebackup":
            for name in ("pg_basebackup", "psql", "pg_archivecleanup"):
                self.tools[name] = self._tool(name)
            self.pg_basebackup_version, major = self._tool_version("pg_basebackup")
            if major is None:
                return False
            if major < BASEBACKUP_MIN_MAJOR:
                self.errors.append("kind: basebackup needs pg_basebackup %d or newer (for --compress=client-METHOD:LEVEL), "
                                   "found %s at %s: install a newer PostgreSQL client or set pg_bin"
                                   % (BASEBACKUP_MIN_MAJOR, self.pg_basebackup_version, self.tools["pg_basebackup"]))
                return False
            self.base_plan = basebackup_compression_plan(cfg["compression"], cfg["compression_level"])
            return True
        for name in ("pg_dump", "pg_dumpall", "psql"):
            self.tools[name] = self._tool(name)
        self.pg_dump_version, self.pg_dump_major = self._tool_version("pg_dump")
        if self.pg_dump_major is None:
            return False
        self.plan = compression_plan(cfg["format"], cfg["compression"], cfg["compression_level"], self.pg_dump_major)
        self.globals_plan = compression_plan("plain", cfg["compression"], cfg["compression_level"], self.pg_dump_major)
        self.globals_plan["pg_dump_args"] = []  # pg_dumpall has no compression option at all
        self.globals_plan["reason"] = ("pg_dumpall --globals-only output piped through %s level %d" % (
            self.globals_plan["compression"], self.globals_plan["level"]) if self.globals_plan["external"] else "uncompressed pg_dumpall --globals-only output")
        for plan in (self.plan, self.globals_plan):
            if plan["external"] and not shutil.which(plan["external"][0], path=self.env.get("PATH")):
                self.errors.append("compressor %r not found in PATH (%s): install it or choose another compression"
                                   % (plan["external"][0], self.env.get("PATH")))
                return False
        return True

    def list_databases(self):
        """The databases to dump (config list, or every connectable non-template one)."""
        cfg = self.cfg
        if cfg["databases"] != "all":
            return list(cfg["databases"])
        sql = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
        argv = [self.tools["psql"], "-X", "-A", "-t", "-0", "-w", "-v", "ON_ERROR_STOP=1", "-c", sql]
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, timeout=300, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            self.errors.append("cannot list databases: %s" % exc)
            return None
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            self.log("psql: " + err.strip())
            summary = _stderr_summary(err)
            self.errors.append("cannot list databases (psql %s): %s%s" % (_describe_exit(proc.returncode), summary, _hint(summary)))
            return None
        names = [item.decode("utf-8", "replace") for item in proc.stdout.split(b"\0")]
        names = [item[:-1] if item.endswith("\n") else item for item in names]
        exclude = set(cfg["exclude_databases"])
        return [item for item in names if item and item not in exclude]

    def server_info(self, db):
        """One psql round trip before each artifact: what the manifest records, never fatal.

        Returns :func:`parse_server_info`'s dict (``reads_role_passwords``,
        ``wal_segment_size``, ``db_size_bytes``, ``server_version``; all None
        when the query fails -- pg_dump/pg_basebackup then say why).  ``db``
        None connects to ``connection.dbname``.
        """
        sql = ("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT'), "
               "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "
               "pg_database_size(current_database()), current_setting('server_version')")
        argv = [self.tools["psql"], "-X", "-A", "-t", "-w", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql]
        env = self.env if db is None else self._db_env(db)
        unknown = parse_server_info("")
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            self.log("could not read server version/size of %s: %s" % (db or "the server", exc))
            return unknown
        if proc.returncode != 0:
            self.log("could not read server version/size of %s: %s" % (db or "the server", _stderr_summary(proc.stderr.decode("utf-8", "replace"))))
            return unknown
        return parse_server_info(proc.stdout.decode("utf-8", "replace"))

    # -- the dump of one artifact ----------------------------------------------

    def _new_manifest(self, db, kind, stamp, plan):
        return {
            "manifest_version": MANIFEST_VERSION,
            "runner_version": RUNNER_VERSION,
            "schedule": self.cfg["name"],
            "kind": kind,
            "db": db,
            "host": self.host,
            "stamp": stamp,
            "format": plan["format"],
            "compression": plan["compression"],
            "compression_level": plan["level"],
            "compression_by": plan["by"],
            "compression_note": plan["reason"],
            "requested_compression": plan["requested_compression"],
            "requested_compression_level": plan["requested_level"],
            "jobs": self.cfg["jobs"] if plan["format"] == "directory" else 1,
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
            "pg_dump_version": self.pg_dump_version,
            "server_version": None,
            "db_size_bytes": None,
            "offsite": None,
            "notes": [],
        }

    def _new_base_manifest(self, stamp):
        manifest = self._new_manifest(BASE_NAME, "basebackup", stamp, self.base_plan)
        manifest.update({"pg_dump_version": None, "pg_basebackup_version": self.pg_basebackup_version, "label": None,
                         "start_lsn": None, "end_lsn": None, "timeline": None, "end_timeline": None, "start_wal_file": None,
                         "end_wal_file": None, "wal_segment_size": None, "wal_ranges": None})
        return manifest

    def _part_size(self):
        if self.cfg.get("s3"):
            return int(self.cfg["s3"].get("part_size_mb") or DEFAULT_PART_SIZE_MB) * 1024 * 1024
        return 0

    def dump(self, db, stamp, kind="database"):
        """Dump one database (kind "database"), the globals (kind "globals") or take the base backup
        (kind "basebackup", ``db`` is then ignored: the artifact is ``base``); return its manifest.

        The manifest is also appended to ``self.artifacts`` (even when a signal
        interrupts the dump).
        """
        if kind == "basebackup":
            db = BASE_NAME
            plan = self.base_plan
            manifest = self._new_base_manifest(stamp)
            final_name = artifact_name(BASE_NAME, stamp, "directory", "none")
        else:
            plan = self.globals_plan if kind == "globals" else self.plan
            manifest = self._new_manifest(db, kind, stamp, plan)
            final_name = artifact_name(db, stamp, plan["format"], plan["external_compression"])
        self.artifacts.append(manifest)
        started = utcnow()
        manifest["started_at"] = _iso(started)
        final = os.path.join(self.dest, final_name)
        tmp = os.path.join(self.dest, partial_name(final_name))
        manifest_path = os.path.join(self.dest, manifest_name(db, stamp))
        info = self.server_info(db if kind == "database" else None)
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
                self.log(ROLE_PASSWORDS_NOTE)
        self.log("dumping %s %s -> %s (%s)" % (kind, db, final, plan["reason"]))
        error = None
        files = None
        digest = StreamDigest(self._part_size())
        try:
            if kind == "basebackup":
                error, files, digest = self._basebackup(tmp, final, manifest, info)
            elif plan["format"] == "directory":
                error, files, digest = self._dump_directory(db, plan, tmp, final, manifest)
            else:
                error = self._dump_stream(db, kind, plan, tmp, final, digest, manifest)
            if error is None:
                manifest.update({"status": "ok", "path": final, "size": digest.size, "sha256": digest.hexdigest(), "files": files})
                self._finish(manifest, started)
                self._publish(tmp, final, manifest_path, manifest)
        except _Terminated as exc:
            _remove_path(tmp)
            error = "the runner was stopped by signal %d during the %s" % (exc.args[0], "base backup" if kind == "basebackup" else "dump")
            self._fail(manifest, manifest_path, started, error)
            raise
        except OSError as exc:
            error = "could not write %s: %s%s" % (final, exc, _fs_hint(exc))
        except Exception as exc:  # pylint: disable=broad-except
            error = "internal error in the dump runner: %s" % _clean_exc(exc)
        if error is not None:
            _remove_path(tmp)
            self._fail(manifest, manifest_path, started, error)
        else:
            self.log("%s %s ok: %s, %s bytes, sha256 %s, %ss" % (kind, db, final, digest.size, digest.hexdigest(), manifest["duration_s"]))
        manifest["_digest"] = digest
        return manifest

    def _finish(self, manifest, started):
        finished = utcnow()
        manifest["finished_at"] = _iso(finished)
        manifest["duration_s"] = round((finished - started).total_seconds(), 3)

    def _fail(self, manifest, manifest_path, started, error):
        manifest.update({"status": "failed", "error": error, "path": None, "size": None, "sha256": None, "files": None})
        self._finish(manifest, started)
        self.log("FAILED %s %s: %s" % (manifest["kind"], manifest["db"], error))
        self.errors.append("%s %s: %s" % (manifest["kind"], manifest["db"], error))
        try:
            write_json_atomic(manifest_path, manifest)
        except OSError as exc:
            self.log("could not write the failed manifest %s: %s" % (manifest_path, exc))

    def _publish(self, tmp, final, manifest_path, manifest):
        """Make artifact + ok manifest appear together (or neither)."""
        if os.path.lexists(final):
            raise OSError(errno.EEXIST, "refusing to overwrite an existing artifact", final)
        manifest_tmp = os.path.join(self.dest, partial_name(os.path.basename(manifest_path)))
        try:
            payload = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
            fd = os.open(manifest_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                os.fchmod(fd, 0o640)
                _write_all(fd, memoryview(payload))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            try:
                os.rename(manifest_tmp, manifest_path)
            except BaseException:
                _remove_path(final)
                raise
        except BaseException:
            _remove_path(manifest_tmp)
            raise
        _fsync_dir(self.dest)

    def _dump_stream(self, db, kind, plan, tmp, final, digest, manifest):
        """pg_dump/pg_dumpall [| compressor] streamed into ``tmp``; returns an error string or None."""
        if kind == "globals":
            first = ("pg_dumpall", self.globals_argv(manifest.get("role_passwords") is not False))
            env = self.env
        else:
            first = ("pg_dump", [self.tools["pg_dump"], "--no-password", "--format=%s" % plan["format"]] + plan["pg_dump_args"])
            env = self._db_env(db)
        stages = [first]
        if plan["external"]:
            stages.append((plan["external"][0], list(plan["external"])))
        manifest["pipeline"] = " | ".join(" ".join(argv) for _label, argv in stages)
        self.log("pipeline: %s" % manifest["pipeline"])
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.fchmod(fd, 0o640)
            result = run_pipeline(stages, env, fd, digest)
            if result["write_error"] is None:
                os.fsync(fd)
        finally:
            os.close(fd)
        return self._judge(result, manifest, final)

    def globals_argv(self, role_passwords):
        """argv of ``pg_dumpall --globals-only``; without role passwords unless ``role_passwords``."""
        argv = [self.tools["pg_dumpall"], "--globals-only", "--no-password", "--database=%s" % self.cfg["connection"]["dbname"]]
        if not role_passwords:
            argv.append("--no-role-passwords")
        return argv

    def _judge(self, result, manifest, target):
        manifest["exit_status"] = dict(result["exit_status"])
        for label, text in result["stderr"].items():
            if text.strip():
                self.log("\n".join("%s: %s" % (label, line) for line in text.rstrip().splitlines()[-200:]))
        problems = []
        if result["write_error"] is not None:
            exc = result["write_error"]
            problems.append("writing %s failed: %s%s" % (target, os.strerror(exc.errno) if exc.errno else exc, _fs_hint(exc)))
        for label, code in result["exit_status"].items():
            if code != 0:
                summary = _stderr_summary(result["stderr"].get(label, ""))
                if result["write_error"] is not None and code < 0:
                    continue  # we killed it after the write error
                problems.append("%s %s%s%s" % (label, _describe_exit(code), ": " + summary if summary else "", _hint(summary)))
        return "; ".join(problems) if problems else None

    def _dump_directory(self, db, plan, tmp, final, manifest):
        """pg_dump -Fd -j N into ``tmp``; per-file SHA-256 afterwards."""
        argv = [self.tools["pg_dump"], "--no-password", "--format=directory", "--jobs=%d" % self.cfg["jobs"],
                "--file=%s" % tmp] + plan["pg_dump_args"]
        manifest["pipeline"] = " ".join(argv)
        self.log("pipeline: %s" % manifest["pipeline"])
        result = run_pipeline([("pg_dump", argv)], self._db_env(db), None, StreamDigest())
        error = self._judge(result, manifest, final)
        if error is not None:
            return error, None, StreamDigest()
        # pg_dump writes the files of a directory dump itself (a directory
        # cannot be streamed through us), so reading them back to hash them
        # is unavoidable here; it is one of the two places (with base
        # backups) where the runner re-reads data.
        files, tree_digest = self._hash_tree(tmp)
        return None, files, tree_digest

    def _hash_tree(self, top):
        """Per-file SHA-256 and size of every file under ``top`` (read once, fsync'd, made 0640; dirs 0750).

        Returns ``(files, digest)``: ``{relpath: {"size", "sha256"}}`` and a
        :class:`_TreeDigest`.
        """
        files = {}
        part_size = self._part_size()
        digests = {}
        os.chmod(top, 0o750)
        relpaths = []
        for root, dirs, names in os.walk(top):
            for directory in dirs:
                os.chmod(os.path.join(root, directory), 0o750)
            relpaths.extend(os.path.relpath(os.path.join(root, name), top) for name in names)
        buf = bytearray(READ_CHUNK)
        for entry in sorted(relpaths):
            path = os.path.join(top, entry)
            digest = StreamDigest(part_size)
            with open(path, "rb", buffering=0) as handle:
                while True:
                    count = handle.readinto(buf)
                    if not count:
                        break
                    digest.update(memoryview(buf)[:count])
                os.fsync(handle.fileno())
            os.chmod(path, 0o640)
            files[entry] = {"size": digest.size, "sha256": digest.hexdigest()}
            digests[entry] = digest
        tree = tree_sha256({entry: item["sha256"] for entry, item in files.items()})
        _fsync_dir(top)
        return files, _TreeDigest(tree, sum(item["size"] for item in files.values()), digests)

    # -- base backups ---------------------------------------------------------

    def _basebackup(self, tmp, final, manifest, info):
        """pg_basebackup into ``tmp``; WAL facts and per-file SHA-256 afterwards.  Returns (error, files, digest)."""
        label = "dbfleet-%s-%s" % (self.cfg["name"], manifest["stamp"])
        manifest["label"] = label
        argv = basebackup_argv(self.tools["pg_basebackup"], tmp, self.base_plan, label)
        manifest["pipeline"] = " ".join(argv)
        self.log("pipeline: %s" % manifest["pipeline"])
        result = run_in_group("pg_basebackup", argv, self.env)
        error = self._judge(result, manifest, final)
        if error is None and not os.path.isdir(tmp):
            error = "pg_basebackup exited 0 but %s does not exist" % tmp
        if error is not None:
            return error, None, StreamDigest()
        wal, problem = self._wal_facts(tmp, result["stderr"].get("pg_basebackup", ""), info["wal_segment_size"])
        if problem:
            return problem, None, StreamDigest()
        manifest.update(wal)
        if wal["start_wal_file"] is None:
            message = ("the WAL segment size is unknown (the server query failed and pg_wal.tar is compressed), so %s "
                       "records no start_wal_file: the WAL archive cannot be cleaned up against it" % final)
            self.log(message)
            self.warnings.append(message)
        # pg_basebackup writes the directory itself; reading the files back to
        # hash them is unavoidable (and says so in the manifest).
        files, digest = self._hash_tree(tmp)
        manifest["notes"].append(BASE_HASH_NOTE)
        return None, files, digest

    def _wal_facts(self, directory, stderr_text, segment_size):
        """WAL facts from ``backup_manifest``; ``(dict, None)`` or ``(None, error)``."""
        path = os.path.join(directory, "backup_manifest")
        try:
            with open(path, "r", encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            return None, "pg_basebackup wrote no readable backup_manifest (%s): the backup cannot be verified" % exc
        if segment_size is None:
            segment_size = _wal_segment_size_from_tar(directory)
        try:
            wal = wal_info_from_backup_manifest(data, segment_size)
        except ValueError as exc:
            return None, "cannot read the WAL range from %s: %s" % (path, exc)
        match = _BB_START_RE.search(stderr_text)
        if match and (parse_lsn(match.group(1)), int(match.group(2))) != (parse_lsn(wal["start_lsn"]), wal["timeline"]):
            message = ("pg_basebackup reported start point %s on timeline %s but backup_manifest says %s on timeline %s; "
                       "the manifest's values are recorded" % (match.group(1), match.group(2), wal["start_lsn"], wal["timeline"]))
            self.log(message)
            self.warnings.append(message)
        return wal, None

    # -- WAL archive cleanup --------------------------------------------------

    def wal_cutoff(self, entries):
        """The oldest start WAL file among the good base backups in ``entries``.

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
            if not isinstance(wal_file, str) or not _WAL_FILE_RE.match(wal_file):
                return None, None, "base backup manifest %s records no usable start_wal_file (%r)" % (entry["manifest"], wal_file)
            found.append((wal_file[8:], wal_file, entry["manifest"]))
        if not found:
            return None, None, "no good base backup in %s" % self.dest
        _segment, wal_file, path = min(found)
        return wal_file, path, None

    def clean_wal_archive(self, entries=None):
        """Remove archived WAL older than the start WAL file of the oldest kept good base backup.

        Runs ``pg_archivecleanup [-n] WAL_ARCHIVE START_WAL_FILE`` (``-n`` in a
        dry run: list only).  pg_archivecleanup removes only WAL segment files
        (and .partial ones) whose segment number is lower than the cutoff, so
        nothing newer is ever touched.  Records and returns a report dict
        (``self.wal_cleanup``).  ``entries`` (default: what is in dest now)
        are the base backups to keep WAL for.  A missing archive directory or a failing
        pg_archivecleanup is an error, a base backup without a start WAL file
        makes it skip (nothing removed, a warning).
        """
        archive = self.cfg["wal_archive"]
        report = {"archive": archive, "keep_from": None, "oldest_kept_base": None, "removed": 0, "removed_first": None,
                  "removed_last": None, "dry_run": self.dry_run, "skipped": None}
        self.wal_cleanup = report
        if not os.path.isdir(archive):
            message = "wal_archive %s is not a directory: WAL archive not cleaned (check archive_command and wal_archive)" % archive
            self.log(message)
            self.errors.append(message)
            report["skipped"] = message
            return report
        cutoff, path, problem = self.wal_cutoff(self.collect_entries({BASE_NAME}) if entries is None else entries)
        if problem:
            message = "WAL archive %s not cleaned: %s" % (archive, problem)
            self.log(message)
            self.warnings.append(message)
            report["skipped"] = message
            return report
        report.update({"keep_from": cutoff, "oldest_kept_base": path})
        removed, error = self._archivecleanup(archive, cutoff)
        if error:
            self.log(error)
            self.errors.append(error)
            report["skipped"] = error
            return report
        report.update({"removed": len(removed), "removed_first": removed[0] if removed else None,
                       "removed_last": removed[-1] if removed else None})
        if self.dry_run:
            report["would_remove"] = removed
        else:
            self.log("WAL archive %s: removed %d segments older than %s (start of the oldest kept base backup %s)%s" % (
                archive, len(removed), cutoff, os.path.basename(path), ": %s .. %s" % (removed[0], removed[-1]) if removed else ""))
        return report

    def _archivecleanup(self, archive, cutoff):
        """Run pg_archivecleanup; return (sorted removed names, error or None)."""
        argv = [self.tools["pg_archivecleanup"]] + (["-n"] if self.dry_run else []) + [archive, cutoff]
        before = set(os.listdir(archive))
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, timeout=3600, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return [], ("cannot run %s: %s (pg_archivecleanup comes with the PostgreSQL server package, postgresql-NN on Debian; "
                        "install it or set pg_bin)" % (argv[0], exc))
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            return [], "pg_archivecleanup %s on %s: %s" % (_describe_exit(proc.returncode), archive, _stderr_summary(err))
        if self.dry_run:
            names = [os.path.basename(line.strip()) for line in proc.stdout.decode("utf-8", "replace").splitlines() if line.strip()]
        else:
            names = before - set(os.listdir(archive))
        return sorted(names), None

    # -- S3 -------------------------------------------------------------------

    def upload(self, manifest):
        """Upload a good artifact to S3 and verify it; record ``offsite`` in the manifest."""
        s3cfg = self.cfg["s3"]
        digest = manifest.get("_digest")
        base = os.path.basename(manifest["path"])
        try:
            client = s3_client(s3cfg)
            if manifest.get("files") is not None:  # a directory: a dump in directory format or a base backup
                objects = []
                for entry in sorted(manifest["files"]):
                    result = upload_verified(client, s3cfg, os.path.join(manifest["path"], entry), "%s%s/%s" % (s3cfg["prefix"], base, entry),
                                             manifest["files"][entry]["sha256"], digest.files[entry].part_digests())
                    objects.append(result)
                offsite = {"bucket": s3cfg["bucket"], "key": "%s%s/" % (s3cfg["prefix"], base), "objects": objects,
                           "verified": all(item["verified"] for item in objects),
                           "error": "; ".join(item["error"] for item in objects if item.get("error")) or None}
            else:
                offsite = upload_verified(client, s3cfg, manifest["path"], s3cfg["prefix"] + base, manifest["sha256"], digest.part_digests())
        except ImportError as exc:
            offsite = {"bucket": s3cfg["bucket"], "key": s3cfg["prefix"] + base, "version_id": None, "verified": False,
                       "error": "boto3 is not importable by %s (%s): install python3-boto3" % (sys.executable, exc)}
        except Exception as exc:  # pylint: disable=broad-except
            offsite = {"bucket": s3cfg["bucket"], "key": s3cfg["prefix"] + base, "version_id": None,
                       "verified": False, "error": "S3 upload failed: %s" % _clean_exc(exc)}
        manifest["offsite"] = offsite
        if offsite["verified"]:
            self.log("uploaded %s to s3://%s/%s (verified)" % (manifest["path"], offsite["bucket"], offsite["key"]))
        else:
            message = "upload of %s to s3://%s/%s failed: %s (the local dump is fine)" % (
                manifest["path"], offsite["bucket"], offsite["key"], offsite.get("error"))
            self.log(message)
            self.errors.append(message)
        try:
            write_json_atomic(os.path.join(self.dest, manifest_name(manifest["db"], manifest["stamp"])), _public(manifest))
        except OSError as exc:
            message = "could not record the upload in the manifest of %s: %s" % (manifest["path"], exc)
            self.log(message)
            self.errors.append(message)

    # -- retention ------------------------------------------------------------

    def collect_entries(self, dbs):
        """Scan dest for our artifacts of ``dbs``; one entry per (db, stamp) with a status."""
        groups = {}
        try:
            names = os.listdir(self.dest)
        except FileNotFoundError:
            return []
        for name in names:
            parsed = parse_artifact_name(name)
            if parsed is None or parsed["db"] not in dbs:
                continue
            entry = groups.setdefault((parsed["db"], parsed["stamp"]), {
                "db": parsed["db"], "stamp": parsed["stamp"], "manifest": None, "dumps": [], "status": None})
            path = os.path.join(self.dest, name)
            if parsed["kind"] == "manifest":
                entry["manifest"] = path
            else:
                entry["dumps"].append(path)
        for entry in groups.values():
            entry["dumps"].sort()
            entry["status"] = _entry_status(entry)
        return sorted(groups.values(), key=lambda item: (item["db"], item["stamp"]))

    def prune(self, dbs):
        """Apply plan_retention to ``dbs`` (only databases whose run succeeded)."""
        if not dbs:
            return
        _keep, delete = plan_retention(self.collect_entries(set(dbs)), utcnow(), self.cfg["retention_days"], self.cfg["keep_min"])
        for entry in delete:
            paths = list(entry["dumps"]) + ([entry["manifest"]] if entry["manifest"] else [])
            if self.dry_run:
                self.pruned.extend(paths)
                continue
            self.log("pruning %s %s (%s)" % (entry["db"], entry["stamp"], entry["reason"]))
            try:
                for path in paths:  # the dump first, then its manifest
                    _remove_path(path)
                    self.pruned.append(path)
            except OSError as exc:
                message = "could not prune %s: %s" % (entry["stamp"], exc)
                self.log(message)
                self.errors.append(message)
        if delete and not self.dry_run:
            _fsync_dir(self.dest)

    def remove_stale_partials(self):
        """Remove ``.partial-*`` temp files of crashed runs (we hold the lock)."""
        for name in os.listdir(self.dest):
            parsed = parse_partial_name(name)
            if parsed is None:
                continue
            _final, pid = parsed
            if pid != os.getpid() and _pid_alive(pid):
                self.log("leaving %s alone: process %d is still running" % (name, pid))
                continue
            self.log("removing leftover of a crashed run: %s" % name)
            try:
                _remove_path(os.path.join(self.dest, name))
            except OSError as exc:
                self.warnings.append("could not remove %s: %s" % (name, exc))

    def choose_stamp(self, dbs):
        """A stamp (now, UTC) that no existing artifact of ``dbs`` uses yet."""
        for _attempt in range(5):
            now = utcnow()
            stamp = format_stamp(now)
            try:
                names = os.listdir(self.dest)
            except FileNotFoundError:
                return stamp
            taken = any((p or {}).get("stamp") == stamp and p["db"] in dbs for p in (parse_artifact_name(n) for n in names))
            if not taken:
                return stamp
            time.sleep(1.05 - now.microsecond / 1e6)
        return format_stamp(utcnow())


class _TreeDigest:
    """Digest stand-in for directory dumps: tree hash, total size, per-file digests."""

    def __init__(self, tree_hex, size, files):
        self._tree_hex = tree_hex
        self.size = size
        self.files = files

    def hexdigest(self):
        """The directory's :func:`tree_sha256` (the value ``file_stat`` reports for it too)."""
        return self._tree_hex

    def part_digests(self):
        """Not applicable to a directory as a whole."""
        return []


def _entry_status(entry):
    if entry["manifest"] is None:
        return "unknown"
    try:
        with open(entry["manifest"], "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return "unknown" if entry["dumps"] else "failed"
    if not isinstance(data, dict):
        return "unknown"
    if data.get("status") != "ok":
        return "failed"
    named = os.path.basename(data.get("path") or "")
    if named and any(os.path.basename(path) == named for path in entry["dumps"]):
        return "ok"
    return "missing"


def _public(manifest):
    return dict((key, value) for key, value in manifest.items() if not key.startswith("_"))


def _clean_exc(exc):
    text = str(exc) or exc.__class__.__name__
    return "%s: %s" % (exc.__class__.__name__, text) if exc.__class__.__name__ not in text else text


def s3_client(s3cfg):
    """Create a boto3 S3 client from the s3 config (boto3 imported here, lazily).

    Credentials come from ``credentials_file`` (JSON with aws_access_key_id,
    aws_secret_access_key, optional aws_session_token) or boto3's default chain.
    """
    import boto3  # pylint: disable=import-outside-toplevel,import-error
    kwargs = {}
    if s3cfg.get("credentials_file"):
        try:
            with open(s3cfg["credentials_file"], "r", encoding="utf-8") as handle:
                creds = json.load(handle)
        except (OSError, ValueError) as exc:
            raise RuntimeError("cannot read S3 credentials file %s: %s" % (s3cfg["credentials_file"], exc.__class__.__name__))
        if not isinstance(creds, dict) or not creds.get("aws_access_key_id") or not creds.get("aws_secret_access_key"):
            raise RuntimeError("S3 credentials file %s must hold aws_access_key_id and aws_secret_access_key" % s3cfg["credentials_file"])
        kwargs["aws_access_key_id"] = creds["aws_access_key_id"]
        kwargs["aws_secret_access_key"] = creds["aws_secret_access_key"]
        if creds.get("aws_session_token"):
            kwargs["aws_session_token"] = creds["aws_session_token"]
    if s3cfg.get("region"):
        kwargs["region_name"] = s3cfg["region"]
    session = boto3.session.Session(**kwargs)
    return session.client("s3", endpoint_url=s3cfg.get("endpoint_url"))


def _checksum_matches(remote, expected):
    remote_b64, _sep, remote_parts = remote.partition("-")
    expected_b64, _sep, expected_parts = expected.partition("-")
    return remote_b64 == expected_b64 and (not remote_parts or remote_parts == expected_parts)


def upload_verified(client, s3cfg, path, key, sha256_hex, part_digests):
    """Upload ``path`` to ``key`` with SHA-256 checksums, then verify with head_object.

    The object gets metadata ``sha256`` = our whole-file hex digest.  Verified
    means: ContentLength equals the local size, metadata sha256 matches, and
    S3's ChecksumSHA256 matches -- the plain base64 SHA-256 for a single-part
    upload, or for a multipart upload the composite ``BASE64-N`` computed from
    the part digests we took while streaming (like with like).
    Returns ``{"bucket", "key", "version_id", "verified", "checksum_sha256",
    "multipart", "error"}``.
    """
    from boto3.s3.transfer import TransferConfig  # pylint: disable=import-outside-toplevel,import-error
    part_size = int(s3cfg.get("part_size_mb") or DEFAULT_PART_SIZE_MB) * 1024 * 1024
    size = os.path.getsize(path)
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)
    extra = {"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": sha256_hex, "dbfleet-runner": RUNNER_VERSION}}
    client.upload_file(path, s3cfg["bucket"], key, ExtraArgs=extra, Config=config)
    head = client.head_object(Bucket=s3cfg["bucket"], Key=key, ChecksumMode="ENABLED")
    result = {"bucket": s3cfg["bucket"], "key": key, "version_id": head.get("VersionId"), "verified": False,
              "checksum_sha256": head.get("ChecksumSHA256"), "multipart": size >= part_size, "error": None}
    problems = []
    if head.get("ContentLength") != size:
        problems.append("size %s in S3 != %d locally" % (head.get("ContentLength"), size))
    if (head.get("Metadata") or {}).get("sha256") != sha256_hex:
        problems.append("metadata sha256 %r != %s" % ((head.get("Metadata") or {}).get("sha256"), sha256_hex))
    remote = head.get("ChecksumSHA256")
    if size >= part_size:
        # Multipart: S3 reports the checksum of the part checksums ("B64-N"),
        # so compare it with the composite of the part digests taken while
        # streaming.  Some S3 implementations (moto) omit the "-N" suffix.
        expected = s3_composite_checksum(part_digests) if part_digests else None
    else:
        expected = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
    if remote is None:
        problems.append("S3 returned no ChecksumSHA256")
    elif expected is None or not _checksum_matches(remote, expected):
        problems.append("ChecksumSHA256 %s in S3 != %s computed while dumping" % (remote, expected))
    if problems:
        result["error"] = "verification failed: " + "; ".join(problems)
    else:
        result["verified"] = True
    return result


# --------------------------------------------------------------------------
# Lock
# --------------------------------------------------------------------------

def acquire_lock(path, wait):
    """flock(LOCK_EX) on ``path``, waiting up to ``wait`` seconds.

    Returns ``(fd, None)`` when held, ``(None, holder_text)`` when another run
    holds it.  Raises OSError when the lock file cannot be opened.
    """
    _makedirs(os.path.dirname(path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    deadline = time.monotonic() + float(wait)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            if time.monotonic() >= deadline:
                try:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                except OSError:
                    holder = ""
                os.close(fd)
                return None, holder
            time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("pid %d since %s\n" % (os.getpid(), _iso(utcnow()))).encode("ascii"), 0)
        return fd, None


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="dbfleet-pg-dump", description="dbfleet.postgresql host-side pg_dump runner (installed by pg_dump_schedule)")
    parser.add_argument("--config", required=True, help="JSON config written by the pg_dump_schedule module")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", action="store_true", help="do not copy log lines to stderr")
    parser.add_argument("--dry-run", action="store_true", help="show what would be dumped and pruned; write nothing")
    parser.add_argument("--version", action="version", version="%(prog)s " + RUNNER_VERSION)
    return parser.parse_args(argv)


def _emit(summary, as_json):
    if as_json:
        sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
        sys.stdout.flush()


def main(argv=None):
    """Run the schedule named by ``--config``; return the exit code."""
    try:
        args = _parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_BAD_CONFIG
    cfg, errors = load_config(args.config)
    if errors:
        for error in errors:
            sys.stderr.write("dbfleet pg_dump runner: bad config %s: %s\n" % (args.config, error))
        _emit({"status": "failed", "name": None, "started_at": _iso(utcnow()), "finished_at": _iso(utcnow()),
               "artifacts": [], "pruned": [], "errors": ["bad config %s: %s" % (args.config, e) for e in errors],
               "runner_version": RUNNER_VERSION, "exit_code": EXIT_BAD_CONFIG}, args.json)
        return EXIT_BAD_CONFIG
    if args.dry_run:
        return _dry_run(cfg, args)
    os.umask(0o027)
    log = _Log(cfg["log_file"], cfg["name"], args.quiet)
    try:
        return _locked_run(cfg, args, log)
    finally:
        log.close()


def _locked_run(cfg, args, log):
    started = utcnow()
    summary = {"status": "failed", "name": cfg["name"], "started_at": _iso(started), "finished_at": None,
               "artifacts": [], "pruned": [], "errors": [], "warnings": [], "runner_version": RUNNER_VERSION,
               "host": socket.gethostname(), "config": args.config, "kind": cfg["kind"], "wal_cleanup": None}
    if log.problem:
        summary["warnings"].append(log.problem)
        if not args.quiet:
            sys.stderr.write(log.problem + "\n")
    try:
        lock_fd, holder = acquire_lock(cfg["lock_file"], cfg["lock_wait"])
    except OSError as exc:
        message = "cannot open lock file %s: %s" % (cfg["lock_file"], exc)
        log(message)
        summary.update({"errors": [message], "finished_at": _iso(utcnow()), "exit_code": EXIT_FAILED})
        _emit(summary, args.json)
        return EXIT_FAILED
    if lock_fd is None:
        message = "skipped: another run of %s holds %s (%s) after waiting %ss" % (
            cfg["name"], cfg["lock_file"], holder or "holder unknown", cfg["lock_wait"])
        log(message)
        summary.update({"status": "skipped", "errors": [message], "finished_at": _iso(utcnow()), "exit_code": EXIT_SKIPPED})
        _emit(summary, args.json)
        return EXIT_SKIPPED
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        previous[signum] = signal.signal(signum, _on_signal)
    try:
        run = DumpRun(cfg, log)
        _run(run, summary)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(lock_fd)
    summary["finished_at"] = _iso(utcnow())
    summary["status"] = "ok" if not summary["errors"] else "failed"
    summary["exit_code"] = EXIT_OK if summary["status"] == "ok" else EXIT_FAILED
    log("run %s: %d artifacts, %d pruned, %s%d errors%s" % (
        summary["status"], len(summary["artifacts"]), len(summary["pruned"]),
        "%d archived WAL segments removed, " % summary["wal_cleanup"]["removed"] if summary["wal_cleanup"] else "",
        len(summary["errors"]), "".join("\n  error: %s" % e for e in summary["errors"])))
    try:
        _makedirs(cfg["state_dir"])
        write_json_atomic(os.path.join(cfg["state_dir"], LAST_RUN_FILE), summary)
    except OSError as exc:
        message = "could not write %s: %s" % (os.path.join(cfg["state_dir"], LAST_RUN_FILE), exc)
        log(message)
        summary["errors"].append(message)
        summary["status"] = "failed"
        summary["exit_code"] = EXIT_FAILED
    _emit(summary, args.json)
    return summary["exit_code"]


def _run(run, summary):
    cfg = run.cfg
    log = run.log
    log("run started (runner %s, config %s, dest %s)" % (RUNNER_VERSION, summary["config"], cfg["dest"]))
    good = []
    try:
        try:
            _makedirs(cfg["dest"])
            run.remove_stale_partials()
        except OSError as exc:
            run.errors.append("cannot use dest %s: %s%s" % (cfg["dest"], exc, _fs_hint(exc)))
            log(run.errors[-1])
            return
        if not run.prepare():
            for error in run.errors:
                log(error)
            return
        if cfg["kind"] == "basebackup":
            _run_basebackup(run)
            return
        dbs = run.list_databases()
        if dbs is None:
            return
        if not dbs and not cfg["globals"]:
            run.errors.append("no database to dump (databases: %r, exclude_databases: %r)" % (cfg["databases"], cfg["exclude_databases"]))
            log(run.errors[-1])
            return
        usable = []
        for db in dbs:
            problem = _dump_name_problem(db, cfg)
            if problem:
                run.errors.append("database %r not dumped: %s" % (db, problem))
                log(run.errors[-1])
            else:
                usable.append(db)
        names = set(usable) | ({GLOBALS_NAME} if cfg["globals"] else set())
        stamp = run.choose_stamp(names)
        log("databases: %s; stamp %s; %s" % (", ".join(usable) or "(none)", stamp, run.plan["reason"]))
        jobs = [(db, "database") for db in usable] + ([(GLOBALS_NAME, "globals")] if cfg["globals"] else [])
        for db, kind in jobs:
            manifest = run.dump(db, stamp, kind)
            if manifest["status"] == "ok":
                if cfg.get("s3"):
                    run.upload(manifest)
                good.append(db)
        skipped = sorted(set(db for db, _kind in jobs) - set(good))
        if skipped:
            log("no pruning for %s: this run's dump failed, every existing dump stays" % ", ".join(skipped))
        try:
            run.prune(good)
        except OSError as exc:
            run.errors.append("retention could not run in %s: %s" % (cfg["dest"], exc))
            log(run.errors[-1])
    except _Terminated as exc:
        run.errors.append("the runner was stopped by signal %d; nothing was pruned" % exc.args[0])
        log(run.errors[-1])
    except Exception as exc:  # pylint: disable=broad-except
        # Never leave the caller without a summary: report the bug as a failed run.
        run.errors.append("internal error in the dump runner %s: %s" % (RUNNER_VERSION, _clean_exc(exc)))
        log(run.errors[-1])
    finally:
        summary["artifacts"] = [_public(item) for item in run.artifacts]
        summary["pruned"] = list(run.pruned)
        summary["wal_cleanup"] = run.wal_cleanup
        summary["errors"].extend(run.errors)
        summary["warnings"].extend(run.warnings)


def _dump_name_problem(db, cfg):
    """Why a dump schedule cannot dump ``db`` under its own name, or None."""
    problem = db_name_problem(db)
    if problem is None and db == GLOBALS_NAME and cfg["globals"]:
        problem = "a database named %r collides with the globals dump; add it to exclude_databases or set globals: false" % GLOBALS_NAME
    elif problem is None and db == BASE_NAME:
        problem = ("a database named %r collides with the file names of base backups (%s-STAMP.dir); the name is reserved: "
                   "add it to exclude_databases" % (BASE_NAME, BASE_NAME))
    return problem


def _run_basebackup(run):
    """Base backup, upload, retention over ``base`` artifacts, then the WAL archive cleanup."""
    cfg = run.cfg
    stamp = run.choose_stamp({BASE_NAME})
    run.log("base backup; stamp %s; %s" % (stamp, run.base_plan["reason"]))
    manifest = run.dump(BASE_NAME, stamp, "basebackup")
    if manifest["status"] != "ok":
        run.log("no pruning and no WAL archive cleanup: this run's base backup failed, every existing one stays")
        return
    if cfg.get("s3"):
        run.upload(manifest)
    try:
        run.prune([BASE_NAME])
    except OSError as exc:
        run.errors.append("retention could not run in %s: %s" % (cfg["dest"], exc))
        run.log(run.errors[-1])
        return
    if cfg["wal_archive"]:
        run.clean_wal_archive()


def _dry_run(cfg, args):
    """Show what would be dumped, pruned and (base backups) removed from the WAL archive; create, write and lock nothing."""
    log = _Log(None, cfg["name"], True)
    run = DumpRun(cfg, log, dry_run=True)
    now = utcnow()
    stamp = format_stamp(now)
    report = {"status": "ok", "dry_run": True, "name": cfg["name"], "kind": cfg["kind"], "started_at": _iso(now), "finished_at": None,
              "would_dump": [], "would_prune": [], "artifacts": [], "pruned": [], "errors": [], "warnings": [],
              "runner_version": RUNNER_VERSION}
    if cfg["kind"] == "basebackup":
        if run.prepare():
            plan = run.base_plan
            report["would_dump"].append({
                "db": BASE_NAME, "kind": "basebackup", "problem": None,
                "pipeline": " ".join(basebackup_argv(run.tools["pg_basebackup"], os.path.join(cfg["dest"], partial_name(
                    artifact_name(BASE_NAME, stamp, "directory", "none"))), plan, "dbfleet-%s-%s" % (cfg["name"], stamp))),
                "path": os.path.join(cfg["dest"], artifact_name(BASE_NAME, stamp, "directory", "none")),
                "compression": plan["compression"], "compression_level": plan["level"], "compression_by": plan["by"],
                "reason": plan["reason"]})
    else:
        _dry_run_dumps(cfg, run, stamp, report)
    # Retention as it would run if every dump tonight succeeds (a failed dump prunes nothing).
    names = set(item["db"] for item in report["would_dump"] if not item["problem"])
    entries = run.collect_entries(names) if os.path.isdir(cfg["dest"]) else []
    entries += [{"db": db, "stamp": stamp, "manifest": None, "dumps": [], "status": "ok", "hypothetical": True} for db in names]
    keep, delete = plan_retention(entries, now, cfg["retention_days"], cfg["keep_min"])
    for entry in delete:
        paths = list(entry["dumps"]) + ([entry["manifest"]] if entry["manifest"] else [])
        report["would_prune"].extend(paths)
    if cfg["kind"] == "basebackup" and cfg["wal_archive"] and report["would_dump"]:
        kept = [entry for entry in keep if not entry.get("hypothetical")]
        if any(entry.get("status") == "ok" for entry in kept):
            report["wal_cleanup"] = run.clean_wal_archive(kept)
        else:
            report["wal_cleanup"] = {"archive": cfg["wal_archive"], "keep_from": None, "removed": 0, "would_remove": [], "dry_run": True,
                                     "skipped": "only tonight's base backup would be kept: the cutoff is its start WAL file, "
                                                "known once it has run"}
    report["errors"] = list(run.errors)
    report["warnings"] = list(run.warnings)
    report["status"] = "ok" if not report["errors"] else "failed"
    report["finished_at"] = _iso(utcnow())
    if args.json:
        _emit(report, True)
    else:
        out = sys.stdout
        out.write("dry run of %s (nothing is written)\n" % cfg["name"])
        for item in report["would_dump"]:
            target = item["path"] or item["problem"]
            out.write("would %s %s -> %s [%s]\n    %s\n" % (
                "take base backup" if item["kind"] == "basebackup" else "dump %s" % item["kind"], item["db"], target, item["reason"],
                item["pipeline"]))
        for path in report["would_prune"]:
            out.write("would prune %s\n" % path)
        wal = report.get("wal_cleanup")
        if wal:
            if wal.get("skipped"):
                out.write("WAL archive %s: nothing would be removed now: %s\n" % (wal["archive"], wal["skipped"]))
            else:
                out.write("WAL archive %s: would remove %d segments older than %s\n" % (wal["archive"], wal["removed"], wal["keep_from"]))
                for name in wal.get("would_remove") or []:
                    out.write("would remove WAL %s\n" % os.path.join(wal["archive"], name))
        for error in report["errors"]:
            out.write("error: %s\n" % error)
    return EXIT_OK if report["status"] == "ok" else EXIT_FAILED


def _dry_run_dumps(cfg, run, stamp, report):
    dbs = []
    role_passwords = True
    if run.prepare():
        dbs = run.list_databases() or []
        if cfg["globals"]:
            role_passwords = run.server_info(None)["reads_role_passwords"] is not False
    jobs = [(db, "database", run.plan) for db in dbs] + ([(GLOBALS_NAME, "globals", run.globals_plan)] if cfg["globals"] else [])
    for db, kind, plan in jobs:
        if plan is None:
            break
        if kind == "globals":
            problem = None
            first = run.globals_argv(role_passwords)
        else:
            problem = _dump_name_problem(db, cfg)
            first = [run.tools["pg_dump"], "--no-password", "--format=%s" % plan["format"]] + plan["pg_dump_args"]
            if plan["format"] == "directory":
                first += ["--jobs=%d" % cfg["jobs"]]
        pipeline = " ".join(first) + (" | " + " ".join(plan["external"]) if plan["external"] else "")
        item = {
            "db": db, "kind": kind, "problem": problem, "pipeline": pipeline,
            "path": None if problem else os.path.join(cfg["dest"], artifact_name(db, stamp, plan["format"], plan["external_compression"])),
            "compression": plan["compression"], "compression_level": plan["level"], "compression_by": plan["by"],
            "reason": plan["reason"]}
        if kind == "globals":
            item["role_passwords"] = role_passwords
            if not role_passwords:
                item["reason"] += "; " + ROLE_PASSWORDS_NOTE
        report["would_dump"].append(item)


if __name__ == "__main__":
    raise SystemExit(main())

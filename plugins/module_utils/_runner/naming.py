# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of what the host-side programs write: stamps, artifacts, manifests, temp files.

``{db}-{stamp}{ext}`` for a dump, ``{db}-{stamp}.manifest.json`` for its
manifest, ``.{final}.partial-{pid}`` while either is being written.  The age of
an artifact comes from the stamp in its name, never from its mtime.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

FORMAT_EXTENSION = {"custom": ".dump", "directory": ".dir", "plain": ".sql"}
COMPRESSOR_SUFFIX = {"zstd": ".zst", "gzip": ".gz", "lz4": ".lz4"}
MANIFEST_SUFFIX = ".manifest.json"

GLOBALS_NAME = "globals"      # the artifact name of pg_dumpall --globals-only
BASE_NAME = "base"            # the artifact name of base backups: base-{stamp}.dir

_STAMP_RE = re.compile(r"^\d{8}T\d{6}Z$")
_ARTIFACT_RE = re.compile(
    r"^(?P<db>.+)-(?P<stamp>\d{8}T\d{6}Z)"
    r"(?P<ext>\.manifest\.json|\.dump(?:\.zst|\.gz|\.lz4)?|\.sql(?:\.zst|\.gz|\.lz4)?|\.dir)$",
    re.DOTALL,
)
_PARTIAL_RE = re.compile(r"^\.(?P<final>.+)\.partial-(?P<pid>\d+)$", re.DOTALL)


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


def iso(when):
    """``2026-06-18T03:00:00Z``: how summaries, manifests and logs write a time."""
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


def has_control_character(text):
    """Whether ``text`` holds a control character (below 0x20, NUL and newline included, or DEL)."""
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


def db_name_problem(db):
    """Return why ``db`` cannot be used in artifact file names, or None if it can."""
    if not isinstance(db, str) or not db:
        return "a database name must be a non-empty string"
    if has_control_character(db):
        return "database name %r contains a control character, which never goes into a file name" % (db,)
    if "/" in db:
        return "database name %r contains '/', which cannot be part of a file name" % (db,)
    if db.startswith("."):
        return "database name %r starts with '.', which would make its dumps hidden files" % (db,)
    if len(db.encode("utf-8")) > 63:
        return "database name %r is longer than PostgreSQL's 63-byte limit" % (db,)
    return None


def dump_name_problem(db, with_globals):
    """Why a dump schedule (``with_globals``: it also dumps the globals) cannot dump ``db`` under its own name, or None."""
    problem = db_name_problem(db)
    if problem is None and db == GLOBALS_NAME and with_globals:
        problem = "a database named %r collides with the globals dump; add it to exclude_databases or set globals: false" % GLOBALS_NAME
    elif problem is None and db == BASE_NAME:
        problem = ("a database named %r collides with the file names of base backups (%s-STAMP.dir); the name is reserved: "
                   "add it to exclude_databases" % (BASE_NAME, BASE_NAME))
    return problem

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbfleet-wal-restore: PostgreSQL's restore_command, with no shell script in between.

A restoring server runs ``PYTHON PROGRAM --config CONFIG %f %p``
(:func:`restore_command` renders it, quoted as the archiver's command is); the
config (JSON) names where archived WAL is found, so no inventory value ever
reaches the command string.  For one requested file it:

* refuses a ``%f`` that is not a WAL segment, timeline history or backup
  history file name;
* looks for it in the archive (``archive_dir``), then in each of ``extra_dirs``
  (e.g. the ``pg_wal`` of the safety snapshot a disaster restore moved aside);
* (``--stage DIR``: every file of the config's ``stage`` list into ``DIR``, a
  restored data directory's ``pg_wal``, before the server starts -- one process
  for all of them, so replay never waits for a program to start; the server is
  then given a restore_command that fetches nothing and reads them from pg_wal)
* copies it next to ``%p`` under a temporary name and renames it to ``%p``,
  checking on the way that a segment has the segment size and that its first
  page names this segment's address, the segment size and the system
  identifier of the cluster being restored.  No fsync: the copy is scratch the
  server reads once, and after a crash recovery asks for it again.

Exit codes: 0 restored; 1 not found anywhere (PostgreSQL asks for files that
may not exist, and ends recovery at the last one it got); 2 a bad config or
command line (as for every dbfleet program; the modules write the config and
check it first); 126 a file that exists but is not what was asked for -- an
exit status above 125 makes PostgreSQL stop recovery with an error instead of
ending it early, at the wrong point, and promoting.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import stat
import struct

from .config import is_int
from .fsutil import create_exclusive, read_json_object, try_remove, write_all
from .hashing import READ_CHUNK
from .wal import WAL_FILE_RE, wal_segment_number, wal_segment_size_problem
from .walarchive import archive_command

PROGRAM = "dbfleet-wal-restore"
CONFIG_KEYS = ("archive_dir", "extra_dirs", "system_identifier", "wal_segment_size", "stage")
EXIT_RESTORED = 0
EXIT_MISSING = 1
EXIT_BAD_REQUEST = 2
EXIT_ABORT = 126

_HISTORY_RE = re.compile(r"^[0-9A-F]{8}\.history$")
_BACKUP_RE = re.compile(r"^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$")
# XLogPageHeaderData then XLogLongPageHeaderData (access/xlog_internal.h), native byte order as the server writes it.
_PAGE_HEADER = struct.Struct("=HHIQI4x")
_LONG_HEADER = struct.Struct("=QII")
XLP_LONG_HEADER = 0x0002


class RestoreError(Exception):
    """A file exists but must not be given to the server (PostgreSQL then stops recovery)."""


def restore_command(interpreter, program_path, config_path):
    """The ``restore_command`` running this program: ``PYTHON PROGRAM --config CONFIG %f %p``.

    Quoted and checked exactly as the archiver's ``archive_command`` is (each
    path shell-quoted, ``%`` doubled; ValueError for a path that is not absolute
    or holds a control character); only the order of the placeholders differs.
    """
    command = archive_command(interpreter, program_path, config_path)
    return command[:-len(" %p %f")] + " %f %p"


def requested_kind(name):
    """``segment``, ``history`` or ``backup`` for a name PostgreSQL asks a restore_command for, else None."""
    if WAL_FILE_RE.match(name or ""):
        return "segment"
    if _HISTORY_RE.match(name or ""):
        return "history"
    if _BACKUP_RE.match(name or ""):
        return "backup"
    return None


def load_restore_config(path):
    """Read the program's JSON config; return ``(config, errors)`` (config None on errors)."""
    data, problem = read_json_object(path, "config ")
    if problem:
        return None, [problem]
    errors = ["unknown config key %r" % (key,) for key in sorted(set(data) - set(CONFIG_KEYS))]
    for key, value in [("archive_dir", data.get("archive_dir"))] + [("extra_dirs", item) for item in _as_list(data.get("extra_dirs"))]:
        if not _usable_dir(value):
            errors.append("%s must be a normalized absolute directory path other than '/', got %r" % (key, value))
    stage = data.get("stage", [])
    if not isinstance(stage, list) or not all(isinstance(name, str) and requested_kind(name) in ("segment", "history")
                                              for name in stage):
        errors.append("stage must be a list of WAL segment and timeline history file names")
    sysid = data.get("system_identifier")
    if sysid is not None and (not is_int(sysid) or sysid <= 0):
        errors.append("system_identifier must be a positive integer or null, got %r" % (sysid,))
    size = data.get("wal_segment_size")
    if size is not None and wal_segment_size_problem(size):
        errors.append("wal_segment_size: %s" % wal_segment_size_problem(size))
    return (None if errors else data), errors


def _as_list(value):
    return value if isinstance(value, list) else [] if value is None else [value]


def _usable_dir(path):
    return isinstance(path, str) and path.startswith("/") and path != "/" and "\0" not in path and os.path.normpath(path) == path


def segment_problem(name, head, size, cfg):
    """Why the bytes ``head`` (the start of a file of ``size`` bytes) are not WAL segment ``name``, or None."""
    segment_size = cfg.get("wal_segment_size") or size
    if wal_segment_size_problem(segment_size):
        return "%s has %d bytes, which is no WAL segment size" % (name, size)
    if size != segment_size:
        return "%s has %d bytes, not the WAL segment size %d: a truncated or foreign file" % (name, size, segment_size)
    if len(head) < _PAGE_HEADER.size + _LONG_HEADER.size:
        return "%s is too short to hold a WAL page header" % name
    _magic, info, _tli, pageaddr, _rem = _PAGE_HEADER.unpack_from(head, 0)
    sysid, seg_size, _blcksz = _LONG_HEADER.unpack_from(head, _PAGE_HEADER.size)
    expected = wal_segment_number(name[8:16], name[16:24], segment_size) * segment_size
    if not info & XLP_LONG_HEADER or pageaddr != expected:
        return ("%s does not start with the page header of that segment (address %X/%X, expected %X/%X): "
                "not a WAL segment, or one renamed" % (name, pageaddr >> 32, pageaddr & 0xFFFFFFFF,
                                                       expected >> 32, expected & 0xFFFFFFFF))
    if seg_size != segment_size:
        return "%s says its segment size is %d, not %d" % (name, seg_size, segment_size)
    if cfg.get("system_identifier") and sysid != cfg["system_identifier"]:
        return ("%s belongs to the database system %d, not to %d (the one being restored): is another cluster archiving "
                "into the same directory?" % (name, sysid, cfg["system_identifier"]))
    return None


def find_source(name, sources):
    """``(path, stat)`` of the first regular file ``name`` in ``sources``, or ``(None, None)``.

    RestoreError for an entry of that name that is not a regular file or cannot be read.
    """
    for directory in sources:
        path = os.path.join(directory, name)
        try:
            info = os.stat(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise RestoreError("cannot look at %s: %s" % (path, exc))
        if not stat.S_ISREG(info.st_mode):
            raise RestoreError("%s is not a regular file" % path)
        return path, info
    return None, None


def fetch(name, target, cfg):
    """Copy archived file ``name`` (``%f``) to ``target`` (``%p``); return ``(exit code, sentence or None)``."""
    kind = requested_kind(name)
    if kind is None:
        return EXIT_BAD_REQUEST, "%%f must be a WAL segment, timeline history or backup history file name, got %r" % (name,)
    try:
        source, info = find_source(name, [cfg["archive_dir"]] + list(cfg.get("extra_dirs") or []))
        if source is None:
            return EXIT_MISSING, None
        _copy_checked(source, info, name, kind, target, cfg)
    except RestoreError as exc:
        return EXIT_ABORT, str(exc)
    except OSError as exc:
        return EXIT_ABORT, "could not restore %s to %s: %s" % (name, target, exc)
    return EXIT_RESTORED, None


def _copy_checked(source, info, name, kind, target, cfg):
    """Copy ``source`` to a temp file beside ``target``, check it, rename it to ``target``."""
    directory, base = os.path.split(target)
    tmp = os.path.join(directory, ".%s.dbfleet-restore" % base)
    src = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = create_exclusive(tmp, 0o600)
        try:
            head, copied = b"", 0
            while True:
                chunk = os.read(src, READ_CHUNK)
                if not chunk:
                    break
                if len(head) < 4096:
                    head += chunk[:4096 - len(head)]
                write_all(fd, memoryview(chunk))
                copied += len(chunk)
            if copied != info.st_size:
                raise RestoreError("read %d bytes of %s, which has %d: it changed while it was copied" % (copied, source, info.st_size))
            problem = segment_problem(name, head, copied, cfg) if kind == "segment" else _text_problem(name, head, copied)
            if problem:
                raise RestoreError("%s (in %s)" % (problem, os.path.dirname(source)))
        finally:
            os.close(fd)
        os.rename(tmp, target)
    except BaseException:
        try_remove(tmp)
        raise
    finally:
        os.close(src)


def _text_problem(name, head, size):
    """Why a history or backup history file is not one (binary content, too large), or None."""
    if size > 1 << 20 or b"\0" in head:
        return "%s is not a text file as PostgreSQL writes it" % name
    return None


def stage(cfg, directory):
    """Copy every file of ``cfg["stage"]`` into ``directory``, checked as :func:`fetch` checks; ``(copied, bytes)``.

    A file already there (the base backup's own WAL) is left as it is. RestoreError or OSError on the first file
    that is missing or not what its name says: the restore must not start on a gap.
    """
    copied = size = 0
    sources = [cfg["archive_dir"]] + list(cfg.get("extra_dirs") or [])
    for name in cfg.get("stage") or []:
        target = os.path.join(directory, name)
        if os.path.lexists(target):
            continue
        source, info = find_source(name, sources)
        if source is None:
            raise RestoreError("%s is in none of %s: the restore would stop there" % (name, ", ".join(sources)))
        _copy_checked(source, info, name, requested_kind(name), target, cfg)
        copied, size = copied + 1, size + info.st_size
    return copied, size

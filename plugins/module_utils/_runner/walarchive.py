# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbfleet-wal-archive: PostgreSQL's archive_command, with no shell script in between.

PostgreSQL runs ``PYTHON PROGRAM --config CONFIG %p %f`` (:func:`archive_command`
renders it); the config (JSON) names the archive directory, so no inventory
value ever reaches the command string.  A segment is copied to
``.{name}.partial`` in the archive, fsync'd, linked to its name (never over an
existing file) and the directory fsync'd.  An existing identical segment is
success; an existing different one is an error naming both SHA-256s; a temp
file left by a crash mid-copy is replaced by the next attempt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import shlex
import stat

from .fsutil import create_exclusive, fsync_dir, read_json_object, remove_path, try_remove, write_all
from .hashing import READ_CHUNK, StreamDigest, hash_file
from .naming import has_control_character

PROGRAM = "dbfleet-wal-archive"
FILE_MODE = 0o640
CONFIG_KEYS = ("archive_dir",)
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP))


class ArchiveError(Exception):
    """Archiving one segment failed; the message says what and what to do (PostgreSQL logs it)."""


def archive_command(interpreter, program_path, config_path):
    """The ``archive_command`` running the archiver: ``PYTHON PROGRAM --config CONFIG %p %f``.

    Each path is shell-quoted and its ``%`` doubled (PostgreSQL's escape);
    ValueError for a path that is not absolute or holds a control character.
    """
    for label, value in (("interpreter", interpreter), ("program path", program_path), ("config path", config_path)):
        if not isinstance(value, str) or not value.startswith("/") or has_control_character(value):
            raise ValueError("the %s must be an absolute path without control characters, got %r" % (label, value))
    words = [shlex.quote(interpreter), shlex.quote(program_path), "--config", shlex.quote(config_path)]
    return " ".join(word.replace("%", "%%") for word in words) + " %p %f"


def is_our_command(command):
    """Whether an ``archive_command`` setting runs this archiver (whatever its paths)."""
    try:
        argv = shlex.split(command.replace("%%", "%"))
    except ValueError:
        return False
    return len(argv) == 6 and os.path.basename(argv[1]) == PROGRAM and argv[2] == "--config" and argv[4:] == ["%p", "%f"]


def segment_name_problem(name):
    """Why ``name`` (``%f``) cannot be a file name in the archive, or None."""
    if not name or name in (".", "..") or "/" in name or name.startswith(".") or has_control_character(name):
        return ("%%f must be a plain file name (no '/', no control characters, not starting with '.'), got %r" % (name,))
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        return "%%f is longer than a file name may be: %r" % (name,)
    return None


def load_archive_config(path):
    """Read the archiver's JSON config; return ``(config, errors)`` (config None on errors)."""
    data, problem = read_json_object(path, "config ")
    if problem:
        return None, [problem]
    errors = ["unknown config key %r" % (key,) for key in sorted(set(data) - set(CONFIG_KEYS))]
    archive_dir = data.get("archive_dir")
    if (not isinstance(archive_dir, str) or not archive_dir.startswith("/") or archive_dir == "/" or "\0" in archive_dir
            or os.path.normpath(archive_dir) != archive_dir):
        errors.append("archive_dir must be a normalized absolute directory path other than '/', got %r" % (archive_dir,))
    return (None if errors else data), errors


def temp_name(name):
    """The temp file a segment is copied to first (one per segment: a crashed copy's is replaced)."""
    return ".%s.partial" % name


def archive_segment(source, name, archive_dir):
    """Archive ``source`` (``%p``) as ``name`` (``%f``) in ``archive_dir``.

    Returns ``(outcome, sentence)``: outcome ``"archived"``, or ``"identical"``
    when the archive already held exactly these bytes.  Raises ArchiveError
    (or OSError) when the segment is not safely archived: PostgreSQL then
    keeps it and retries.
    """
    problem = segment_name_problem(name)
    if problem:
        raise ArchiveError(problem)
    target = os.path.join(archive_dir, name)
    if os.path.lexists(target):
        return _same_as_archived(source, target)
    tmp = os.path.join(archive_dir, temp_name(name))
    try:
        digest = _copy(source, tmp)
        try:
            _publish(tmp, target)
        except FileExistsError:  # it appeared while we copied
            remove_path(tmp)
            return _same_as_archived(source, target)
    except BaseException:
        try_remove(tmp)
        raise
    fsync_dir(archive_dir)
    return "archived", "archived %s (%d bytes, sha256 %s)" % (target, digest.size, digest.hexdigest())


def _copy(source, tmp):
    """Copy ``source`` into a new ``tmp`` (a leftover replaced), hashing on the way; fsync it."""
    src = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode):
            raise ArchiveError("%s is not a regular file" % source)
        digest = StreamDigest()
        fd = create_exclusive(tmp, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            while True:
                chunk = os.read(src, READ_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                write_all(fd, memoryview(chunk))
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(src)
    if digest.size != info.st_size:
        raise ArchiveError("read %d bytes of %s, which has %d: it changed while it was copied" % (digest.size, source, info.st_size))
    return digest


def _publish(tmp, target):
    """Give ``tmp`` its name without ever replacing an existing file (a hard link; rename where links are not supported)."""
    try:
        os.link(tmp, target)
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", target)
        os.rename(tmp, target)
        return
    os.unlink(tmp)


def _same_as_archived(source, target):
    """An existing ``target``: success when it holds exactly ``source``'s bytes, else ArchiveError with both SHA-256s."""
    info = os.lstat(target)
    if not stat.S_ISREG(info.st_mode):
        raise ArchiveError("%s exists and is not a regular file: move it away" % target)
    ours = hash_file(source)
    theirs = hash_file(target, fsync=True)  # it may be what a crash left unflushed
    if (ours.size, ours.hexdigest()) == (theirs.size, theirs.hexdigest()):
        fsync_dir(os.path.dirname(target))
        return "identical", "%s is already archived, identical (sha256 %s)" % (target, theirs.hexdigest())
    raise ArchiveError(
        "%s is already in the archive with different content: archived sha256 %s (%d bytes), this server's %s sha256 %s "
        "(%d bytes); it is not overwritten. Is another cluster archiving into the same directory, or was this one restored "
        "onto an old timeline? Move the archived file away only once you know which one is right"
        % (target, theirs.hexdigest(), theirs.size, source, ours.hexdigest(), ours.size))

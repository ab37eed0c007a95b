# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File system helpers: atomic writes, fsync of directories, creating and removing paths.

:func:`write_atomic` is the one way anything here (manifests, the state file,
the files ``pg_dump_schedule`` installs) replaces a file: a reader sees the old
content or the new, never a mix, and never a file with the wrong owner or mode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import shutil
import stat

from .naming import partial_name

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path):
    """fsync a directory, so that the renames and unlinks in it are on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path, mode=0o750):
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


def write_all(fd, view):
    """Write all of ``view`` (a memoryview) to ``fd``."""
    while view:
        written = os.write(fd, view)
        view = view[written:]


def remove_path(path):
    """Remove a file, symlink or directory tree; missing is fine."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def try_remove(path):
    """:func:`remove_path`, for clean-up after a failure: returns the OSError instead of raising it (None when removed)."""
    try:
        remove_path(path)
    except OSError as exc:
        return exc
    return None


READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def read_regular(path, limit=64 << 20):
    """The bytes of the regular file ``path``: never through a symlink, never blocking on a FIFO
    (OSError otherwise). Whoever runs this as root cannot be hung or pointed elsewhere."""
    fd = os.open(path, READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json_object(path, what=""):
    """Read a JSON object from ``path``: ``(dict, None)``, or ``(None, what is wrong)`` (``what``: e.g. ``"config "``)."""
    try:
        data = json.loads(read_regular(path).decode("utf-8"))
    except (OSError, ValueError) as exc:
        return None, "cannot read %s%s: %s" % (what, path, exc)
    if not isinstance(data, dict):
        return None, "%s%s must contain a JSON object" % (what, path)
    return data, None


def create_exclusive(path, mode, dir_fd=None):
    """Open a new file ``path`` for writing (O_EXCL, O_NOFOLLOW); return the fd.

    ``path`` is a temp name only this writer uses (one carrying our pid, see
    :func:`partial_name`, or a segment's temp name in the WAL archive): one
    that exists already is a dead writer's leftover, and is replaced once.
    ``dir_fd``: ``path`` is a name in that open directory.
    """
    try:
        return os.open(path, _CREATE_FLAGS, mode, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(path, dir_fd=dir_fd)
        return os.open(path, _CREATE_FLAGS, mode, dir_fd=dir_fd)


def write_atomic(path, data, mode=0o640, uid=None, gid=None, dir_fd=None):
    """Replace ``path`` with ``data`` (bytes, or an open binary file copied in 1 MiB chunks, so a large file
    never sits in memory), atomically and durably.

    A temp file ``.{name}.partial-{pid}`` in the same directory is created
    with O_EXCL|O_NOFOLLOW, gets its owner (``uid``/``gid``, None = unchanged)
    and ``mode`` before any data is written, is fsync'd and renamed over
    ``path``; then the directory is fsync'd.  On any error the temp file is
    removed and the exception raised; ``path`` is then untouched.  A
    setuid/setgid ``mode`` is refused.  ``dir_fd``: ``path`` is a name in that
    open directory, and every step works on that fd (for a caller that reached
    the directory without following untrusted symlinks).
    """
    if mode & (stat.S_ISUID | stat.S_ISGID):
        raise ValueError("refusing to write %s with a setuid/setgid mode %o" % (path, mode))
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, partial_name(os.path.basename(path)))
    fd = create_exclusive(tmp, mode, dir_fd)
    try:
        try:
            if uid is not None or gid is not None:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(fd, mode)
            if hasattr(data, "read"):
                for chunk in iter(lambda: data.read(1 << 20), b""):
                    write_all(fd, memoryview(chunk))
            else:
                write_all(fd, memoryview(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    if dir_fd is None:
        fsync_dir(directory)
    else:
        os.fsync(dir_fd)


def json_bytes(data):
    """How manifests and state files are written: indented, sorted keys, a final newline."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_json_atomic(path, data, mode=0o640):
    """:func:`write_atomic` of ``data`` as JSON."""
    write_atomic(path, json_bytes(data), mode)


def chmod_tree(top, dir_mode=0o750, file_mode=0o640):
    """chmod every directory (``top`` included) and file under ``top``."""
    os.chmod(top, dir_mode)
    for root, dirs, names in os.walk(top):
        for directory in dirs:
            os.chmod(os.path.join(root, directory), dir_mode)
        for name in names:
            os.chmod(os.path.join(root, name), file_mode)

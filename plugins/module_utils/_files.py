# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File operations for modules that run as root on paths another user may control.

Modules run as root; dumps, WAL and cron jobs run as the database's OS user (``postgres``), who may
be hostile (a superuser's ``COPY ... TO PROGRAM`` is that user). So root:

* walks paths one component at a time with ``O_NOFOLLOW``: a symlink is followed only when it sits
  in a directory nobody but root can write (so root put it there); anywhere else it is refused;
* changes owners and modes through file descriptors, never by path, so nothing can be swapped in
  between the check and the change;
* creates directories only inside directories owned by root or by the directory's future owner;
* opens files it reads with ``O_NOFOLLOW | O_NONBLOCK`` and requires a regular file (a FIFO named like
  a dump cannot hang it, a symlink cannot point it at ``/etc/shadow``);
* keeps edit-mode backups in its own root-only directory, as root-owned 0600 copies of the content
  alone: never a copied mode (no setuid bit, no owner write bit), never a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import os
import stat

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import fsutil

BACKUP_ROOT = '/var/lib/dbfleet/backups'
_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)


class UnsafePath(Exception):
    """A path root must not use, with the reason in words."""


def _trusted(info):
    """A directory only root can change: owned by root, not writable by group or others."""
    return info.st_uid == 0 and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _writable_by(info):
    try:
        import pwd  # pylint: disable=import-outside-toplevel
        owner = pwd.getpwuid(info.st_uid).pw_name
    except (KeyError, ImportError):
        owner = 'uid %d' % info.st_uid
    if info.st_mode & stat.S_IWOTH:
        return 'everyone'
    if info.st_mode & stat.S_IWGRP:
        return '%s and its group' % owner
    return owner


def _components(path):
    if not path.startswith('/'):
        raise UnsafePath('%s is not an absolute path' % path)
    return [part for part in path.split('/') if part not in ('', '.')]


def open_dir(path, create=None):
    """An ``O_DIRECTORY`` fd for ``path``, reached without following untrusted symlinks.

    ``create``: ``(uid, gid, mode)`` to create missing directories (mode and owner set through the
    new directory's fd): the last one with those, the ones above it like ``install -d`` would
    (root:root 0755 inside a root-owned directory, else like the last one). Each one is created only
    in a directory owned by root or by ``uid``. Raises :class:`UnsafePath` or OSError.
    """
    parts = _components(path)
    hops = 0
    fd = os.open('/', _DIR_FLAGS)
    where = '/'
    try:
        while parts:
            part = parts.pop(0)
            parent = os.fstat(fd)
            if part == '..':
                child = os.open('..', _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd, where = child, os.path.dirname(where)
                continue
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT and create is not None:
                    leaf = not parts
                    owner = create if leaf or parent.st_uid != 0 else (0, 0, 0o755)
                    child = _make_dir(fd, parent, part, where, owner, create[0])
                elif exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    info = os.lstat(part, dir_fd=fd)
                    if not stat.S_ISLNK(info.st_mode):
                        raise UnsafePath('%s is not a directory (in %s)' % (os.path.join(where, part), path))
                    if not _trusted(parent):
                        raise UnsafePath('%s is a symlink in %s, which %s can write: refused (a directory was expected; '
                                         'use the real path)' % (os.path.join(where, part), where, _writable_by(parent)))
                    hops += 1
                    if hops > _MAX_SYMLINKS:
                        raise UnsafePath('%s: too many levels of symlinks' % path)
                    target = os.readlink(part, dir_fd=fd)
                    if target.startswith('/'):
                        os.close(fd)
                        fd, where = os.open('/', _DIR_FLAGS), '/'
                    parts = [p for p in target.split('/') if p not in ('', '.')] + parts
                    continue
                else:
                    raise
            os.close(fd)
            fd = child
            where = os.path.join(where, part)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _make_dir(parent_fd, parent, name, where, create, final_uid):
    uid, gid, mode = create
    if parent.st_uid not in (0, final_uid):
        raise UnsafePath('will not create %s: %s belongs to %s, neither root nor the directory\'s owner'
                         % (os.path.join(where, name), where, _writable_by(parent)))
    os.mkdir(name, 0o700, dir_fd=parent_fd)
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_dir(path, uid, gid, mode):
    """Make ``path`` a real directory owned by ``uid:gid`` with ``mode``; True when anything changed.

    Missing directories are created (see :func:`open_dir` for the ones above it). An existing one gets
    its owner and mode fixed through its fd. A symlink where a directory is expected is refused
    unless root alone could have made it.
    """
    fd = None
    try:
        try:
            fd = open_dir(path)
            created = False
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            fd = open_dir(path, create=(uid, gid, mode))
            created = True
        info = os.fstat(fd)
        changed = created
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
            changed = True
        if stat.S_IMODE(info.st_mode) != mode:
            os.fchmod(fd, mode)
            changed = True
        return changed
    finally:
        if fd is not None:
            os.close(fd)


def dir_state(path):
    """``(exists, uid, gid, mode)`` of a directory, reached the same safe way (nothing created)."""
    try:
        fd = open_dir(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False, None, None, None
        raise
    try:
        info = os.fstat(fd)
        return True, info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)
    finally:
        os.close(fd)


def open_regular(path):
    """Open ``path`` for reading: never through a symlink, never blocking on a FIFO, regular files only.

    The containing directory is reached with :func:`open_dir`. Returns a binary file object.
    """
    directory, name = os.path.split(path)
    if not name:
        raise UnsafePath('%s names a directory, not a file' % path)
    dfd = open_dir(directory or '/')
    try:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath('%s is a symlink: refused (give the file itself)' % path)
            raise
    finally:
        os.close(dfd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafePath('%s is not a regular file (%s): refused' % (path, _kind(info.st_mode)))
    import fcntl  # pylint: disable=import-outside-toplevel
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, 'rb')


def read_regular(path, limit=None):
    """The bytes of a regular file (see :func:`open_regular`); None when it does not exist."""
    try:
        with open_regular(path) as handle:
            return handle.read() if limit is None else handle.read(limit)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def lstat_or_none(path):
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def _kind(mode):
    for test, name in ((stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO'), (stat.S_ISSOCK, 'a socket'),
                       (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'), (stat.S_ISLNK, 'a symlink')):
        if test(mode):
            return name
    return 'not a regular file'


def write_file(path, data, uid, gid, mode):
    """Atomically replace ``path`` with ``data`` (bytes or an open binary file), owned ``uid:gid`` with ``mode`` (setuid/setgid refused).

    The directory is reached with :func:`open_dir`; the write itself is the runner's atomic write
    (temporary file with ``O_EXCL | O_NOFOLLOW``, owner and mode set on its fd before any byte,
    fsync, rename, directory fsync), working on that directory's fd.
    """
    if mode & (stat.S_ISUID | stat.S_ISGID):
        raise UnsafePath('refusing to write %s with a setuid/setgid mode %o' % (path, mode))
    directory, name = os.path.split(path)
    dfd = open_dir(directory)
    try:
        fsutil.write_atomic(name, data, mode, uid, gid, dir_fd=dfd)
    finally:
        os.close(dfd)


def remove_file(path):
    """Remove a file (or symlink) by name inside its safely reached directory; True if it existed."""
    directory, name = os.path.split(path)
    try:
        dfd = open_dir(directory)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    try:
        try:
            info = os.lstat(name, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        if stat.S_ISDIR(info.st_mode):
            raise UnsafePath('%s is a directory; only files are removed here' % path)
        os.unlink(name, dir_fd=dfd)
        os.fsync(dfd)
        return True
    finally:
        os.close(dfd)


def backup_copy(path, backup_root=None, now=None):
    """Keep the current content of ``path`` under ``backup_root`` before it is overwritten.

    The copy is root-owned, mode 0600, in a root-only directory tree mirroring the original path
    (``/etc/cron.d/x`` -> ``BACKUP_ROOT/etc/cron.d/x.20261201T030000Z``): content only, never the
    original's mode or owner, so a setuid or writable original cannot produce a privileged copy.
    Returns the copy's path, or None when there was no regular file to copy.
    """
    backup_root = backup_root or BACKUP_ROOT
    try:
        source = open_regular(path)
    except UnsafePath:
        return None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    with source:
        stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime('%Y%m%dT%H%M%S.%fZ')
        target_dir = os.path.join(backup_root, os.path.dirname(os.path.abspath(path)).lstrip('/'))
        if not dir_state(os.path.dirname(backup_root))[0]:
            ensure_dir(os.path.dirname(backup_root), 0, 0, 0o755)
        for directory in _chain(backup_root, target_dir):
            ensure_dir(directory, 0, 0, 0o700)
        target = os.path.join(target_dir, '%s.%s' % (os.path.basename(path), stamp))
        write_file(target, source, 0, 0, 0o600)  # streamed in chunks: a 40 GB dump never sits in memory
    return target


def _chain(top, bottom):
    """``top`` and every directory from it down to ``bottom``."""
    rel = os.path.relpath(bottom, top)
    chain = [top]
    if rel != '.':
        for part in rel.split('/'):
            chain.append(os.path.join(chain[-1], part))
    return chain

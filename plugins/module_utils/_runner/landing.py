# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an incoming copy lands: a locked partial beside the destination, published only once verified.

A file arrives in ``.{name}.dbfleet-partial`` and a directory in a
``.{name}.dbfleet-partial/`` tree, in the destination's directory, which is
opened once and must be the directory the module checked (same device and
inode).  The partial is locked (``flock``) while a transfer writes it, kept
when a transfer is interrupted (the next one verifies and extends it), and
removed when what arrived does not match the source.  Publishing renames it
over the destination; in ``edit`` mode the previous destination is first
copied, streamed, into the backup directory the module prepared.

Everything happens through directory file descriptors with ``O_NOFOLLOW``:
nothing here follows a symlink or writes through a hard link someone planted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import stat

from .frames import CHUNK, TransferError
from .fsutil import create_exclusive, write_all
from .hashing import StreamDigest
from .naming import format_stamp, utcnow
from .tarstream import INCOMPLETE, scan, stream

PARTIAL = ".dbfleet-partial"
REPLACED = ".dbfleet-replaced"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_RW_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
WRITEBACK = 32 << 20           # start writing back what arrived every 32 MiB, so the final fsync is short


def partial_name(name):
    """The partial of destination ``name``."""
    return ".%s%s" % (name, PARTIAL)


def _lock(fd, what):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise TransferError("another transfer to %s is running (its partial is locked): wait for it, or let it finish" % what)
        raise


def _ours(info):
    """A partial we may reuse: ours, private (no group or other bits), a file with one link (no hard link planted)."""
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        return False
    return stat.S_ISDIR(info.st_mode) or info.st_nlink == 1


def remove_tree_at(dir_fd, name):
    """Remove ``name`` (a file or a whole tree) inside ``dir_fd``, never following a symlink."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            remove_tree_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _walk_to(root_fd, parts, create=None):
    """An fd of the directory ``parts`` under ``root_fd`` (``create``: (uid, gid, mode) to make missing ones)."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create is None:
                    raise
                os.mkdir(part, 0o700, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.fchown(child, create[0], create[1])
                os.fchmod(child, create[2])
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def copy_file_at(src_dir_fd, name, dst_dir_fd, dst_name, mode=0o600, buf=None):
    """Stream the regular file ``name`` into a new file ``dst_name`` (root-only ``mode``), fsync'd."""
    buf = buf if buf is not None else bytearray(CHUNK)
    view = memoryview(buf)
    src = os.open(name, _READ_FLAGS, dir_fd=src_dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        dst = create_exclusive(dst_name, mode, dst_dir_fd)
        try:
            os.fchmod(dst, mode)
            while True:
                count = os.readv(src, [view])
                if not count:
                    break
                write_all(dst, view[:count])
            os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_tree_at(src_fd, dst_fd, buf):
    for name in sorted(os.listdir(src_fd)):
        info = os.lstat(name, dir_fd=src_fd)
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            child_src = os.open(name, _DIR_FLAGS, dir_fd=src_fd)
            child_dst = os.open(name, _DIR_FLAGS, dir_fd=dst_fd)
            try:
                _copy_tree_at(child_src, child_dst, buf)
            finally:
                os.close(child_src)
                os.close(child_dst)
        elif stat.S_ISREG(info.st_mode):
            copy_file_at(src_fd, name, dst_fd, name, buf=buf)


class Landing:
    """The destination side of one copy: ``dest`` (absolute), ``kind`` ``file`` or ``tree``.

    ``dir_id``: ``(st_dev, st_ino)`` the checked directory had (None: not checked);
    ``owner``: ``(uid, gid)``; ``file_mode``/``dir_mode``: what arrives gets;
    ``mode``: ``edit`` (back up what is replaced into ``backup_dir``) or ``bypass``.
    """

    def __init__(self, dest, kind, dir_id=None, owner=(0, 0), file_mode=0o640, dir_mode=0o750, mode="edit", backup_dir=None):
        self.dest, self.kind, self.dir_id, self.owner = dest, kind, dir_id, owner
        self.file_mode, self.dir_mode, self.mode, self.backup_dir = file_mode, dir_mode, mode, backup_dir
        self.directory, self.name = os.path.split(dest)
        self.partial = partial_name(self.name)
        self.dir_fd = self.fd = None
        self.written = 0
        self._flushed = 0
        self._file = None          # the tree member being written: [fd, rel, size, mtime, digest, parent fd, name]
        self.files = {}            # tree: rel -> StreamDigest of every file that arrived (or was kept)

    # -- opening -------------------------------------------------------------------------------------
    def open(self):
        """Open and lock the partial (creating it); return how many stream bytes a kept one already holds.

        For a tree, that is the stream its complete members regenerate (see :meth:`kept_digest`).
        """
        try:
            self.dir_fd = os.open(self.directory, _DIR_FLAGS)
        except OSError as exc:
            raise TransferError("cannot open the destination directory %s: %s" % (self.directory, exc))
        info = os.fstat(self.dir_fd)
        if self.dir_id is not None and (info.st_dev, info.st_ino) != tuple(self.dir_id):
            raise TransferError("%s is not the directory that was checked before the transfer (it was replaced, or a "
                                "symlink on the way changed): nothing written" % self.directory)
        return self._open_file() if self.kind == "file" else self._open_tree()

    def _open_file(self):
        for _attempt in range(3):
            try:
                fd = os.open(self.partial, _RW_FLAGS, 0o600, dir_fd=self.dir_fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.EISDIR):
                    raise
                remove_tree_at(self.dir_fd, self.partial)        # a symlink or directory planted there
                continue
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or not _ours(info):
                os.close(fd)
                os.unlink(self.partial, dir_fd=self.dir_fd)      # not ours to extend: never written through
                continue
            try:
                _lock(fd, self.dest)
            except BaseException:
                os.close(fd)
                raise
            try:
                now = os.lstat(self.partial, dir_fd=self.dir_fd)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                os.close(fd)                                      # published or replaced while we waited
                continue
            self.fd = fd
            return info.st_size
        raise TransferError("cannot get hold of the partial %s in %s" % (self.partial, self.directory))

    def _open_tree(self):
        try:
            fd = os.open(self.partial, _DIR_FLAGS, dir_fd=self.dir_fd)
        except FileNotFoundError:
            fd = None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            remove_tree_at(self.dir_fd, self.partial)
            fd = None
        if fd is not None and not _ours(os.fstat(fd)):
            os.close(fd)
            remove_tree_at(self.dir_fd, self.partial)
            fd = None
        if fd is None:
            os.mkdir(self.partial, 0o700, dir_fd=self.dir_fd)
            fd = os.open(self.partial, _DIR_FLAGS, dir_fd=self.dir_fd)
        try:
            _lock(fd, self.dest)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._drop_incomplete(fd)
        return None

    def _drop_incomplete(self, fd):
        for name in os.listdir(fd):
            info = os.lstat(name, dir_fd=fd)
            if stat.S_ISDIR(info.st_mode):
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    self._drop_incomplete(child)
                finally:
                    os.close(child)
            elif name.endswith(INCOMPLETE) or not stat.S_ISREG(info.st_mode):
                os.unlink(name, dir_fd=fd)

    # -- the kept partial ----------------------------------------------------------------------------
    def kept_digest(self, alive=None):
        """``(size, StreamDigest)`` of the stream the kept partial holds (read once to hash it).

        ``alive(count)`` is called as it goes (a long partial takes a while to hash).
        """
        digest = StreamDigest()
        alive = alive or (lambda count: None)
        if self.kind == "file":
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            os.lseek(self.fd, 0, os.SEEK_SET)
            while True:
                count = os.readv(self.fd, [view])
                if not count:
                    break
                digest.update(view[:count])
                alive(digest.size)
            self.written = self._flushed = digest.size
            return digest.size, digest
        self.files = {}
        for chunk in stream(self.fd, scan(self.fd), self.files):
            digest.update(chunk)
            alive(digest.size)
        self.written = digest.size
        return digest.size, digest

    def restart(self):
        """Start from nothing: the kept partial did not match the source."""
        self.written = self._flushed = 0
        if self.kind == "file":
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            return
        self.files = {}
        for name in os.listdir(self.fd):
            remove_tree_at(self.fd, name)

    # -- writing -------------------------------------------------------------------------------------
    def write(self, view):
        """Append stream bytes to a file partial."""
        write_all(self.fd, view)
        self.written += len(view)
        if self.written - self._flushed >= WRITEBACK and hasattr(os, "posix_fadvise"):
            # start writing back what arrived (and drop what was written back already) instead of
            # leaving a gigabyte of dirty pages for the fsync at the end
            os.posix_fadvise(self.fd, 0, self.written, os.POSIX_FADV_DONTNEED)
            self._flushed = self.written

    def directory_member(self, rel):
        parts = rel.split("/")
        parent = _walk_to(self.fd, parts[:-1])
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
            child = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
            try:
                os.fchown(child, self.owner[0], self.owner[1])
                os.fchmod(child, self.dir_mode)
            finally:
                os.close(child)
        except FileExistsError:
            raise TransferError("the stream holds %s twice: a corrupted stream" % rel)
        finally:
            os.close(parent)

    def file_start(self, rel, size, mtime):
        parts = rel.split("/")
        parent = _walk_to(self.fd, parts[:-1])
        try:
            fd = create_exclusive(parts[-1] + INCOMPLETE, 0o600, parent)
            os.fchown(fd, self.owner[0], self.owner[1])
            os.fchmod(fd, self.file_mode)
        except BaseException:
            os.close(parent)
            raise
        self._file = [fd, rel, size, mtime, StreamDigest(), parent, parts[-1]]

    def file_data(self, view):
        write_all(self._file[0], view)
        self._file[4].update(view)

    def file_end(self):
        fd, rel, size, mtime, digest, parent, name = self._file
        self._file = None
        try:
            if digest.size != size:
                raise TransferError("%s: %d bytes arrived, its header said %d" % (rel, digest.size, size))
            os.utime(fd, (mtime, mtime))
            os.fsync(fd)
            os.close(fd)
            fd = None
            os.rename(name + INCOMPLETE, name, src_dir_fd=parent, dst_dir_fd=parent)
            self.files[rel] = digest
        finally:
            if fd is not None:
                os.close(fd)
            os.close(parent)

    # -- publishing ----------------------------------------------------------------------------------
    def publish(self, mtime=None):
        """Rename the verified partial over the destination; return the backup made (path) or None."""
        if self.kind == "file":
            os.fchown(self.fd, self.owner[0], self.owner[1])
            os.fchmod(self.fd, self.file_mode)
            if mtime is not None:
                os.utime(self.fd, (mtime, mtime))
            os.fsync(self.fd)
        else:
            os.fchown(self.fd, self.owner[0], self.owner[1])
            os.fchmod(self.fd, self.dir_mode)
        backup = None
        try:
            existing = os.lstat(self.name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode) != (self.kind == "tree") or stat.S_ISLNK(existing.st_mode):
                raise TransferError("%s appeared as something else (a directory, a symlink) during the transfer: the "
                                    "verified copy is kept as %s/%s" % (self.dest, self.directory, self.partial))
            backup = self._replace()
        else:
            os.rename(self.partial, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        os.fsync(self.dir_fd)
        return backup

    def _replace(self):
        backup = None
        stamp = format_stamp(utcnow())
        if self.kind == "file":
            if self.mode == "edit" and self.backup_dir:
                backup = self._backup(lambda bfd, target: copy_file_at(self.dir_fd, self.name, bfd, target), stamp)
            os.rename(self.partial, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            return backup
        aside = ".%s%s" % (self.name, REPLACED)
        remove_tree_at(self.dir_fd, aside)
        os.rename(self.name, aside, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        os.rename(self.partial, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        if self.mode == "edit" and self.backup_dir:
            backup = self._backup(lambda bfd, target: self._backup_tree(aside, bfd, target), stamp)
        remove_tree_at(self.dir_fd, aside)
        return backup

    def _backup(self, copy, stamp):
        target = "%s.%s" % (self.name, stamp)
        bfd = os.open(self.backup_dir, _DIR_FLAGS)
        try:
            info = os.fstat(bfd)
            if info.st_uid != 0 or info.st_mode & 0o077:
                raise TransferError("the backup directory %s is not root-only (0700): nothing replaced" % self.backup_dir)
            copy(bfd, target)
            os.fsync(bfd)
        finally:
            os.close(bfd)
        return os.path.join(self.backup_dir, target)

    def _backup_tree(self, aside, bfd, target):
        os.mkdir(target, 0o700, dir_fd=bfd)
        src = os.open(aside, _DIR_FLAGS, dir_fd=self.dir_fd)
        dst = os.open(target, _DIR_FLAGS, dir_fd=bfd)
        try:
            _copy_tree_at(src, dst, bytearray(CHUNK))
        finally:
            os.close(src)
            os.close(dst)

    def _empty(self):
        try:
            if self.kind == "file":
                return os.fstat(self.fd).st_size == 0
            return not os.listdir(self.fd)
        except OSError:
            return False

    def discard(self):
        """Remove the partial: what arrived is not the source (never keep a bad copy). Only a partial this
        landing holds the lock of: another transfer's is never touched."""
        if self.dir_fd is None or self.fd is None:
            return
        try:
            remove_tree_at(self.dir_fd, self.partial)
            os.fsync(self.dir_fd)
        except OSError:
            pass

    def close(self):
        """Release the lock and the descriptors; a kept partial stays for the next transfer, an empty one goes."""
        if self.fd is not None and self.dir_fd is not None and self._empty():
            self.discard()
        if self._file is not None:
            for fd in (self._file[0], self._file[5]):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._file = None
        for attr in ("fd", "dir_fd"):
            fd = getattr(self, attr)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, attr, None)

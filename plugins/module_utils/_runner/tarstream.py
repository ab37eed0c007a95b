# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A directory as one deterministic stream: a ustar archive of its directories and regular files.

The same tree always gives the same bytes: entries in a fixed order (each
directory's names sorted, a directory before what it holds), owner 0:0 with no
names, mode 0755 for directories and 0644 for files (the receiver applies its
own), a directory's mtime 0 and a file's mtime in whole seconds, no padding
after the two zero blocks that end the archive.  So a receiver can hash the
stream, and regenerate the prefix of an interrupted one from the entries it
completed, to resume where it stopped.  ``tar -xf`` reads it.

Only directories and regular files travel: a symlink, FIFO, socket or device
inside the tree is refused, never followed or read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat
import tarfile

from .frames import CHUNK, TransferError
from .hashing import StreamDigest
from .naming import has_control_character

BLOCK = 512
END_OF_ARCHIVE = 2 * BLOCK
INCOMPLETE = ".dbfleet-incomplete"      # what a receiver calls a file it is still writing
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_ZEROS = bytes(END_OF_ARCHIVE)


class Entry:
    """One member of the stream: ``rel`` (``/``-separated), ``is_dir``, ``size``, ``mtime`` (int seconds)."""

    __slots__ = ("rel", "is_dir", "size", "mtime")

    def __init__(self, rel, is_dir, size=0, mtime=0):
        self.rel, self.is_dir, self.size, self.mtime = rel, is_dir, size, mtime

    def __repr__(self):
        return "Entry(%r, %r, %r, %r)" % (self.rel, self.is_dir, self.size, self.mtime)

    def __eq__(self, other):
        return isinstance(other, Entry) and (self.rel, self.is_dir, self.size, self.mtime) == (
            other.rel, other.is_dir, other.size, other.mtime)

    def __ne__(self, other):
        return not self == other

    __hash__ = None


def name_problem(rel):
    """Why ``rel`` cannot be a member name, or None."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return "%r is not a plain relative path" % rel
    if has_control_character(rel):
        return "%r contains a control character" % rel
    if parts[-1].endswith(INCOMPLETE):
        return "%r ends with %s, the name a receiver gives a file it is still writing" % (rel, INCOMPLETE)
    return None


def padding(size):
    """Zero bytes after ``size`` bytes of member data, to the next block."""
    return -size % BLOCK


def header(entry):
    """The 512-byte ustar header of ``entry``; TransferError for a name ustar cannot hold."""
    info = tarfile.TarInfo(entry.rel)
    info.type = tarfile.DIRTYPE if entry.is_dir else tarfile.REGTYPE
    info.mode = 0o755 if entry.is_dir else 0o644
    info.size = 0 if entry.is_dir else entry.size
    info.mtime = 0 if entry.is_dir else int(entry.mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    try:
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except (ValueError, UnicodeError) as exc:
        raise TransferError("cannot send %s: %s (a tar member name holds at most 255 bytes, in UTF-8)" % (entry.rel, exc))


def entry_bytes(entry):
    """How many stream bytes ``entry`` takes: header, data, padding."""
    return BLOCK if entry.is_dir else BLOCK + entry.size + padding(entry.size)


def _kind(mode):
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def scan(top_fd, skip=None, prefix=""):
    """The entries under the open directory ``top_fd``, in stream order.

    ``skip(rel, is_dir)`` may leave names out (a receiver's incomplete files).
    TransferError for a symlink, FIFO, socket or device, or a name that cannot travel.
    """
    entries = []
    for name in sorted(os.listdir(top_fd)):
        rel = prefix + name
        info = os.lstat(name, dir_fd=top_fd)
        is_dir = stat.S_ISDIR(info.st_mode)
        if skip is not None and skip(rel, is_dir):
            continue
        if not is_dir and not stat.S_ISREG(info.st_mode):
            raise TransferError("%s is %s: only directories and regular files are sent, nothing is followed" % (rel, _kind(info.st_mode)))
        problem = name_problem(rel)
        if problem:
            raise TransferError("cannot send %s" % problem)
        if is_dir:
            entries.append(Entry(rel, True))
            child = os.open(name, _DIR_FLAGS, dir_fd=top_fd)
            try:
                entries.extend(scan(child, skip, rel + "/"))
            finally:
                os.close(child)
        else:
            entries.append(Entry(rel, False, info.st_size, int(info.st_mtime)))
    return entries


def open_member(top_fd, rel):
    """Open the regular file ``rel`` under ``top_fd`` for reading, no symlink followed anywhere on the way."""
    parts = rel.split("/")
    fd = top_fd
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            if fd != top_fd:
                os.close(fd)
            fd = child
        member = os.open(parts[-1], _READ_FLAGS, dir_fd=fd)
    finally:
        if fd != top_fd:
            os.close(fd)
    if not stat.S_ISREG(os.fstat(member).st_mode):
        os.close(member)
        raise OSError(errno.EINVAL, "not a regular file", rel)
    return member


def stream(top_fd, entries, digests, buf=None):
    """Yield the stream of ``entries`` (memoryviews, each valid until the next one), without the end blocks.

    Files are read once; ``digests[rel]`` gets each file's :class:`StreamDigest`.
    A file whose size changed since the scan raises TransferError.
    """
    buf = buf if buf is not None else bytearray(CHUNK)
    view = memoryview(buf)
    for entry in entries:
        yield memoryview(header(entry))
        if entry.is_dir:
            continue
        digest = digests[entry.rel] = StreamDigest()
        fd = open_member(top_fd, entry.rel)
        try:
            left = entry.size
            while left:
                count = os.readv(fd, [view[:min(left, len(view))]])
                if not count:
                    break
                digest.update(view[:count])
                left -= count
                yield view[:count]
            if left or os.fstat(fd).st_size != entry.size:
                raise TransferError("%s changed while it was being sent (%d bytes when the transfer started): "
                                    "send a tree nothing writes to" % (entry.rel, entry.size))
        finally:
            os.close(fd)
        if padding(entry.size):
            yield memoryview(_ZEROS[:padding(entry.size)])


def end_blocks():
    """The two zero blocks that end the archive."""
    return memoryview(_ZEROS)


class TreeParser:
    """Push parser of a stream made by :func:`stream` (+ :func:`end_blocks`), calling a handler as members arrive.

    The handler has ``directory_member(rel)``, ``file_start(rel, size, mtime)``,
    ``file_data(view)`` and ``file_end()``.  Only ustar directories and regular
    files with plain relative names are accepted; anything else raises TransferError.
    """

    def __init__(self, handler):
        self.handler = handler
        self._head = bytearray()
        self._data_left = 0
        self._pad_left = 0
        self._in_file = False
        self._pad_after = 0
        self.ended = False

    def feed(self, view):
        """Consume ``view`` (a memoryview) entirely."""
        while len(view):
            if self.ended:
                if bytes(view).strip(b"\0"):
                    raise TransferError("data after the end of the archive: a corrupted stream")
                return
            if self._data_left:
                take = view[:self._data_left]
                self.handler.file_data(take)
                self._data_left -= len(take)
                view = view[len(take):]
                if not self._data_left:
                    self._finish_file()
                continue
            if self._pad_left:
                take = min(self._pad_left, len(view))
                if bytes(view[:take]).strip(b"\0"):
                    raise TransferError("non-zero padding after a member: a corrupted stream")
                self._pad_left -= take
                view = view[take:]
                continue
            take = min(BLOCK - len(self._head), len(view))
            self._head.extend(view[:take])
            view = view[take:]
            if len(self._head) == BLOCK:
                block, self._head = bytes(self._head), bytearray()
                self._header(block)

    def _finish_file(self):
        self.handler.file_end()
        self._in_file = False
        self._pad_left = self._pad_after

    def _header(self, block):
        if block == _ZEROS[:BLOCK]:
            self.ended = True     # the second zero block (and nothing else) may follow
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeError) as exc:
            raise TransferError("a member header is damaged (%s): a corrupted stream" % exc)
        rel = info.name.rstrip("/") if info.type == tarfile.DIRTYPE else info.name
        problem = name_problem(rel)
        if problem:
            raise TransferError("refused member: %s" % problem)
        if info.type == tarfile.DIRTYPE:
            self.handler.directory_member(rel)
        elif info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
            self._pad_after = padding(info.size)
            self._in_file = True
            self.handler.file_start(rel, info.size, int(info.mtime))
            self._data_left = info.size
            if not info.size:
                self._finish_file()
        else:
            raise TransferError("refused member %s: type %r is neither a directory nor a regular file" % (rel, info.type))

    def finish(self):
        """Raise TransferError unless the stream ended exactly at the end of the archive."""
        if not self.ended or self._in_file or self._head:
            raise TransferError("the stream stopped before the end of the archive")

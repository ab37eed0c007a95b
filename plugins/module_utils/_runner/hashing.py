# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SHA-256 of streams, files and directory trees, and S3's composite checksum.

A stream is hashed while it is written (:class:`StreamDigest`, one pass); a
directory that a PostgreSQL tool wrote itself is hashed with :func:`hash_tree`,
whose tree hash is what manifests record and what ``file_stat`` reports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import errno
import hashlib
import os
import stat

from .fsutil import READ_FLAGS

READ_CHUNK = 1 << 20          # 1 MiB reads


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


class TreeDigest:
    """The digest of a directory: tree hash, total size, one :class:`StreamDigest` per file (``files``)."""

    def __init__(self, files):
        self.files = files
        self.size = sum(digest.size for digest in files.values())
        self._tree_hex = tree_sha256(dict((rel, digest.hexdigest()) for rel, digest in files.items()))

    def hexdigest(self):
        """The directory's :func:`tree_sha256`."""
        return self._tree_hex

    def part_digests(self):
        """Not applicable to a directory as a whole."""
        return []

    def listing(self):
        """``{relpath: {"size", "sha256"}}``: what a manifest records under ``files``."""
        return dict((rel, {"size": digest.size, "sha256": digest.hexdigest()}) for rel, digest in self.files.items())


def tree_sha256(file_sha256s):
    """SHA-256 of a directory: over its ``sha256sum``-style listing ("HEX  RELPATH\\n", sorted by path).

    ``file_sha256s`` maps relative path to hex SHA-256.
    """
    listing = "".join("%s  %s\n" % (file_sha256s[rel], rel) for rel in sorted(file_sha256s))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def _tree_files(top):
    """Relative paths of the files under ``top``, sorted."""
    relpaths = []
    for root, _dirs, names in os.walk(top):
        relpaths.extend(os.path.relpath(os.path.join(root, name), top) for name in names)
    return sorted(relpaths)


def hash_file(path, part_size=0, fsync=False, buf=None):
    """:class:`StreamDigest` of one regular file, read once; ``fsync`` also flushes it to disk.

    A symlink, FIFO or device is refused (OSError), not followed or read:
    whoever runs this as root cannot be pointed at another file or hung.
    """
    digest = StreamDigest(part_size)
    buf = buf if buf is not None else bytearray(READ_CHUNK)
    view = memoryview(buf)
    fd = os.open(path, READ_FLAGS)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    with open(fd, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buf)
            if not count:
                break
            digest.update(view[:count])
        if fsync:
            os.fsync(handle.fileno())
    return digest


def hash_tree(top, part_size=0, fsync=False):
    """Hash every file under ``top`` (each read once); return a :class:`TreeDigest`.

    ``tree.hexdigest()`` is :func:`tree_sha256` of the files, ``tree.files``
    maps each relative path to its :class:`StreamDigest` (with S3 part digests
    when ``part_size``) and ``tree.listing()`` gives sizes and hex digests.
    ``fsync`` flushes every file to disk on the way (the directories are the caller's).
    """
    buf = bytearray(READ_CHUNK)
    files = dict((rel, hash_file(os.path.join(top, rel), part_size, fsync, buf)) for rel in _tree_files(top))
    return TreeDigest(files)


def tree_size(top):
    """Total size of the files under ``top``, without reading them (symlinks are not followed)."""
    return sum(os.lstat(os.path.join(top, rel)).st_size for rel in _tree_files(top))


def s3_composite_checksum(part_digests):
    """Return S3's composite ChecksumSHA256 (``BASE64-N``) for raw SHA-256 part digests."""
    combined = hashlib.sha256(b"".join(part_digests)).digest()
    return "%s-%d" % (base64.b64encode(combined).decode("ascii"), len(part_digests))

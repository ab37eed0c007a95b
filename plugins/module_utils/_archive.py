# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading dump artifacts: one streamed pass for SHA-256 and compression integrity, and
``pg_restore --list`` for archive validity.

Modules run as root over files the database's OS user controls. Files are opened by root with
``O_NOFOLLOW | O_NONBLOCK`` and must be regular (``_files.open_regular``); the parsers
(decompressors, ``pg_restore``) read that already-open descriptor on their stdin and run as the
file's owner, never as root (root-owned files are parsed as ``nobody``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files

CHUNK = 1024 * 1024
HEAD_BYTES = 8192
TAIL_BYTES = 4096

# Magic numbers of the compressors the dump runner uses, and how to stream-decompress each.
_COMPRESSION_MAGIC = (
    (b'\x28\xb5\x2f\xfd', 'zstd'),
    (b'\x1f\x8b', 'gzip'),
    (b'\x04\x22\x4d\x18', 'lz4'),
)
DECOMPRESS_COMMANDS = {
    'zstd': ['zstd', '-d', '-c', '-q'],
    'gzip': ['gzip', '-d', '-c'],
    'lz4': ['lz4', '-d', '-c', '-q'],
}
# Last lines pg_dump / pg_dumpall write when a plain-format dump finished.
PLAIN_TRAILERS = (b'-- PostgreSQL database dump complete', b'-- PostgreSQL database cluster dump complete')


NOBODY_UID = 65534


class ArchiveError(Exception):
    """A problem reading an artifact, with a message meant for the operator."""


def parser_identity(info):
    """``(uid, gid)`` a parser of a file or directory with ``os.stat`` result ``info`` runs as.

    The owner, who controls the content anyway; ``nobody`` when root owns it.
    """
    if info.st_uid == 0:
        return NOBODY_UID, NOBODY_UID
    return info.st_uid, info.st_gid


def _as(identity):
    """Popen keyword arguments that run the child as ``identity`` (when we are root)."""
    if identity is None or os.geteuid() != 0:
        return {}
    uid, gid = identity
    if sys.version_info >= (3, 9):
        return {'user': uid, 'group': gid, 'extra_groups': []}

    def drop():  # pragma: no cover - Python 3.8 hosts only
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return {'preexec_fn': drop}


def detect_compression(head):
    for magic, name in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            return name
    return None


def detect_format(head):
    """Dump format from the first (decompressed) bytes: custom, tar or plain."""
    if head.startswith(b'PGDMP'):
        return 'custom'
    if len(head) > 262 and head[257:262] == b'ustar':
        return 'tar'
    return 'plain'


def _open_checked(path):
    """``(handle, identity)``: ``path`` opened safely, and who its parsers run as."""
    try:
        handle = _files.open_regular(path)
    except _files.UnsafePath as exc:
        raise ArchiveError(str(exc))
    return handle, parser_identity(os.fstat(handle.fileno()))


def scan_file(path, checksum=False, inspect=False):
    """Read ``path`` at most once (opened safely: see the module docstring).

    Returns a dict with ``sha256`` (when ``checksum``), ``compression``, and, when ``inspect``,
    ``head``/``tail`` of the *decompressed* content plus ``stream_error`` when the compressed stream
    is damaged (decompression runs over the whole file in the same pass as the hash).
    """
    handle, identity = _open_checked(path)
    with handle:
        head = os.pread(handle.fileno(), HEAD_BYTES, 0)
        compression = detect_compression(head)
        result = {'compression': compression, 'sha256': None, 'head': head, 'tail': b'', 'stream_error': None}
        digest = hashlib.sha256() if checksum else None
        if compression and inspect:
            _scan_compressed(path, handle, compression, digest, result, identity)
        elif digest is not None or inspect:
            tail = b''
            if digest is None:
                # Only the tail is needed: seek instead of reading the whole file.
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - TAIL_BYTES))
            for chunk in iter(lambda: handle.read(CHUNK), b''):
                if digest is not None:
                    digest.update(chunk)
                tail = (tail + chunk)[-TAIL_BYTES:]
            result['tail'] = tail
    if digest is not None:
        result['sha256'] = digest.hexdigest()
    return result


def _scan_compressed(path, handle, compression, digest, result, identity):
    command = DECOMPRESS_COMMANDS[compression]
    if not shutil.which(command[0]):
        raise ArchiveError('%s is %s-compressed but the %s command is not installed on this host' % (path, compression, command[0]))
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/',
                            **_as(identity))
    feed_error = []

    def feed():
        # Hash and decompress from the same read: the file is read exactly once.
        try:
            for chunk in iter(lambda: handle.read(CHUNK), b''):
                if digest is not None:
                    digest.update(chunk)
                proc.stdin.write(chunk)
        except BrokenPipeError:
            feed_error.append('decompressor stopped reading early')
        except OSError as exc:
            feed_error.append(str(exc))
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass

    stderr_chunks = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()))
    feeder = threading.Thread(target=feed)
    reader.start()
    feeder.start()
    head, tail = b'', b''
    for chunk in iter(lambda: proc.stdout.read(CHUNK), b''):
        if len(head) < HEAD_BYTES:
            head += chunk[:HEAD_BYTES - len(head)]
        tail = (tail + chunk)[-TAIL_BYTES:]
    feeder.join()
    reader.join()
    code = proc.wait()
    result['head'], result['tail'] = head, tail
    if code != 0 or feed_error:
        message = (b''.join(stderr_chunks).decode('utf-8', 'replace').strip() or '; '.join(feed_error)
                   or 'exit status %d' % code)
        result['stream_error'] = '%s stream is damaged (%s -d exit %d: %s)' % (compression, command[0], code, message)


def _parse_listing(text):
    info = {'entries': 0}
    keys = {'Format': 'format', 'dbname': 'dbname', 'Dumped from database version': 'dumped_from',
            'Dumped by pg_dump version': 'dumped_by'}
    for line in text.splitlines():
        if line.startswith(';'):
            created = re.match(r';\s*Archive created at (.+)$', line)
            if created:
                info['created_at'] = created.group(1).strip()
                continue
            match = re.match(r';\s*([^:]+?):\s*(.*)$', line)
            if match and match.group(1).strip() in keys:
                info[keys[match.group(1).strip()]] = match.group(2).strip()
        elif line.strip():
            info['entries'] += 1
    return info


def pg_restore_list(path, pg_restore, compression=None):
    """Run ``pg_restore --list`` on an archive (compressed ones through the decompressor).

    A file is opened here (safely) and handed to the tools on stdin; a directory-format dump is
    read by ``pg_restore`` itself, as the directory's owner. Returns the parsed listing; raises
    ArchiveError with pg_restore's own words on failure.
    """
    if not pg_restore:
        raise ArchiveError('pg_restore is not installed on this host (install the PostgreSQL client package, or set pg_restore)')
    if os.path.isdir(path) and not os.path.islink(path):
        identity = parser_identity(os.lstat(path))
        proc = subprocess.run([pg_restore, '--list', path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                              cwd='/', **_as(identity))
    else:
        handle, identity = _open_checked(path)
        with handle:
            if compression:
                decompress = subprocess.Popen(DECOMPRESS_COMMANDS[compression], stdin=handle, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, cwd='/', **_as(identity))
                try:
                    # pg_restore reads only the table of contents and exits; the decompressor then gets
                    # SIGPIPE, which is expected here (stream integrity is checked by scan_file).
                    proc = subprocess.run([pg_restore, '--list'], stdin=decompress.stdout, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, check=False, cwd='/', **_as(identity))
                finally:
                    decompress.stdout.close()
                    decompress.kill()
                    decompress.wait()
            else:
                proc = subprocess.run([pg_restore, '--list'], stdin=handle, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      check=False, cwd='/', **_as(identity))
    if proc.returncode != 0:
        words = proc.stderr.decode('utf-8', 'replace').strip() or 'exit status %d' % proc.returncode
        raise ArchiveError('pg_restore --list cannot read %s: %s' % (path, words))
    listing = _parse_listing(proc.stdout.decode('utf-8', 'replace'))
    # An empty database's dump lists no entries; a readable archive always has its header.
    if 'format' not in listing:
        raise ArchiveError('pg_restore --list read %s but printed no archive header: not a pg_dump archive' % path)
    return listing

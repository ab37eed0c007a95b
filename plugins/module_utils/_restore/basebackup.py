# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base backups a restore starts from: finding the good ones (the runner's manifests), what restoring one
needs (space, WAL facts), unpacking one into a new data directory and proving it intact before anything else
happens -- the SHA-256 of every file against the runner's manifest while it is unpacked, then ``pg_verifybackup``
on the unpacked copy (PostgreSQL 15's cannot read tar format), WAL included.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import struct
import subprocess

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._archive import _as
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import stream
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.walcheck import segment_number
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.log import stderr_summary
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import BASE_NAME, parse_artifact_name

_BASE_TAR_RE = re.compile(r'^base\.tar(\.zst|\.gz|\.lz4)?$')
_WAL_TAR_RE = re.compile(r'^pg_wal\.tar(\.gz)?$')
REQUIRED_KEYS = ('start_lsn', 'end_lsn', 'timeline', 'start_wal_file', 'end_wal_file', 'wal_segment_size')
WAL_HEADROOM_SEGMENTS = 4
# Settings pg_control records and a hot standby (or a restore) must match or exceed (pg_controldata's words).
CONTROL_SETTINGS = (('max_connections setting', 'max_connections'), ('max_worker_processes setting', 'max_worker_processes'),
                    ('max_wal_senders setting', 'max_wal_senders'), ('max_prepared_xacts setting', 'max_prepared_transactions'),
                    ('max_locks_per_xact setting', 'max_locks_per_transaction'))


class BackupError(Exception):
    """A base backup that cannot be used, in words."""


def good_backups(directory):
    """The runner manifests of the good base backups in ``directory`` (``status: ok``, their directory present)."""
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise BackupError('cannot list the base backups in %s: %s' % (directory, exc))
    found = []
    for name in sorted(names):
        parsed = parse_artifact_name(name)
        if not parsed or parsed['kind'] != 'manifest' or parsed['db'] != BASE_NAME:
            continue
        try:
            data = json.loads(_files.read_regular(os.path.join(directory, name), 1 << 22) or b'null')
        except (OSError, ValueError, _files.UnsafePath):
            continue
        if not isinstance(data, dict) or data.get('status') != 'ok' or data.get('kind') != 'basebackup':
            continue
        path = os.path.join(directory, os.path.basename(data.get('path') or ''))
        if not os.path.isdir(path) or os.path.islink(path) or any(data.get(key) is None for key in REQUIRED_KEYS):
            continue
        data['path'] = path
        found.append(data)
    return found


def backup_files(manifest):
    """``(base tar, wal tar)`` file names of a base backup; BackupError for one this cannot restore."""
    files = sorted((manifest.get('files') or {}).keys())
    base = [name for name in files if _BASE_TAR_RE.match(name)]
    wal = [name for name in files if _WAL_TAR_RE.match(name)]
    others = [name for name in files if name not in base + wal + ['backup_manifest']]
    if others:
        raise BackupError('base backup %s holds %s besides base.tar and pg_wal.tar: tablespaces are not restored by '
                          'dbfleet yet; restore it by hand' % (manifest['path'], ', '.join(others)))
    if len(base) != 1 or len(wal) != 1 or 'backup_manifest' not in files:
        raise BackupError('base backup %s lacks base.tar, pg_wal.tar or backup_manifest (its manifest lists %s)'
                          % (manifest['path'], ', '.join(files) or 'no files'))
    return base[0], wal[0]


def restored_bytes(manifest):
    """Bytes the unpacked data directory will take: the sizes pg_basebackup's own backup_manifest lists."""
    path = os.path.join(manifest['path'], 'backup_manifest')
    try:
        data = json.loads(_files.read_regular(path) or b'{}')
    except (OSError, ValueError, _files.UnsafePath) as exc:
        raise BackupError('cannot read %s: %s' % (path, exc))
    return sum(int(item.get('Size') or 0) for item in data.get('Files') or []) + int(manifest['wal_segment_size']) * (
        1 + _segments_in_backup(manifest))


def _segments_in_backup(manifest):
    size = int(manifest['wal_segment_size'])
    return segment_number(manifest['end_wal_file'], size) - segment_number(manifest['start_wal_file'], size) + 1


def space_problem(directory, needed, wal_segment_size):
    """Why ``directory``'s file system cannot take ``needed`` bytes (plus a few WAL segments of replay room), or None."""
    try:
        info = os.statvfs(directory)
    except OSError as exc:
        return 'cannot tell the free space of %s: %s' % (directory, exc)
    free = info.f_bavail * info.f_frsize
    want = needed + WAL_HEADROOM_SEGMENTS * wal_segment_size
    if free < want:
        return ('not enough space in %s: the restored data directory needs about %d MiB (plus replay room), %d MiB are '
                'free' % (directory, want >> 20, free >> 20))
    return None


def unpack_backup(manifest, target, identity, after_wal=None):
    """Unpack base backup ``manifest`` into the empty directory ``target`` (its pg_wal.tar into pg_wal first), as
    ``identity``; every file's SHA-256 must be the manifest's. ``after_wal`` is called between the two (to start
    staging more WAL while the base unpacks). Returns the bytes read."""
    base, wal = backup_files(manifest)
    total = 0
    _files.ensure_dir(os.path.join(target, 'pg_wal'), identity[0], identity[1], 0o700)
    for name, where in ((wal, os.path.join(target, 'pg_wal')), (base, target)):
        if name == base and after_wal is not None:
            after_wal()
        path = os.path.join(manifest['path'], name)
        try:
            got = stream.unpack(path, where, identity)
        except stream.StreamError as exc:
            raise BackupError(str(exc))
        expected = manifest['files'][name]
        if (got['size'], got['sha256']) != (expected.get('size'), expected.get('sha256')):
            raise BackupError('%s is not the file the base backup recorded: %d bytes, SHA-256 %s, where its manifest says '
                              '%s bytes, SHA-256 %s; it changed or was damaged since the backup, which cannot be trusted: '
                              'restore from another one (base_backup)' % (path, got['size'], got['sha256'],
                                                                          expected.get('size'), expected.get('sha256')))
        total += got['size']
    for leftover in ('standby.signal', 'recovery.signal'):
        _files.remove_file(os.path.join(target, leftover))
    return total


def verify_unpacked(pg_bin, manifest, target, identity):
    """``pg_verifybackup`` on the unpacked copy against pg_basebackup's backup_manifest (files and WAL)."""
    argv = [os.path.join(pg_bin, 'pg_verifybackup'), '--manifest-path', os.path.join(manifest['path'], 'backup_manifest'),
            '--exit-on-error', target]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/', check=False, timeout=6 * 3600,
                          **_as(identity))
    words = (proc.stderr or proc.stdout).decode('utf-8', 'replace')
    if proc.returncode != 0:
        raise BackupError('pg_verifybackup says the restored copy of %s is not the backup it should be: %s'
                          % (manifest['path'], stderr_summary(words, 4) or 'exit %d' % proc.returncode))
    return stderr_summary(proc.stdout.decode('utf-8', 'replace'), 1) or 'backup successfully verified'


def wal_system_identifier(pg_wal):
    """The system identifier in the long page header of a WAL segment in ``pg_wal`` (a base backup's own), or None."""
    for name in sorted(os.listdir(pg_wal)):
        if len(name) == 24:
            try:
                head = _files.read_regular(os.path.join(pg_wal, name), 32)
            except (OSError, _files.UnsafePath):
                continue
            if head and len(head) == 32:
                return struct.unpack_from('=Q', head, 24)[0]
    return None


def system_identifier(data_directory):
    """The system identifier in ``data_directory``'s pg_control (its first 8 bytes), or None."""
    try:
        head = _files.read_regular(os.path.join(data_directory, 'global', 'pg_control'), 8)
    except (OSError, _files.UnsafePath):
        return None
    return struct.unpack('=Q', head)[0] if head and len(head) == 8 else None


def control_settings(pg_bin, data_directory, identity):
    """The settings a restore of ``data_directory`` must at least have (from pg_controldata): ``{name: int}``."""
    proc = subprocess.run([os.path.join(pg_bin, 'pg_controldata'), '-D', data_directory], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd='/', check=False, timeout=60, env={'LC_ALL': 'C', 'PATH': '/usr/bin:/bin'},
                          **_as(identity))
    if proc.returncode != 0:
        raise BackupError('pg_controldata cannot read %s: %s' % (data_directory, proc.stderr.decode('utf-8', 'replace').strip()))
    return parse_controldata(proc.stdout.decode('utf-8', 'replace'))


def parse_controldata(text):
    """``{setting: int}`` from pg_controldata's output (the CONTROL_SETTINGS it lists)."""
    found = {}
    for line in text.splitlines():
        label, _sep, value = line.partition(':')
        for words, setting in CONTROL_SETTINGS:
            if label.strip() == words and value.strip().isdigit():
                found[setting] = int(value.strip())
    return found

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One dump artifact, proved: measured (size, SHA-256 in one pass), readable as an archive, and what its
manifest says about it. Shared by ``file_stat`` (one file) and ``backup_status`` (every schedule).

Files are opened the root-safe way (``_files``, ``_archive``): never through a symlink, never blocking on a
FIFO, parsers running as the file's owner.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import stat

from ansible_collections.dbfleet.postgresql.plugins.module_utils._archive import (
    PLAIN_TRAILERS,
    ArchiveError,
    detect_format,
    pg_restore_list,
    scan_file,
)
from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath, lstat_or_none, read_regular
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.hashing import hash_tree, tree_size
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import manifest_name, parse_artifact_name

MANIFEST_LIMIT = 4 * 1024 * 1024
BACKUP_MANIFEST_LIMIT = 256 * 1024 * 1024
# A stamp this far ahead of the host clock is not "the newest dump" but a wrong clock or a planted file.
FUTURE_SLACK = 300
# What reading an artifact can raise: all of them mean "cannot read it", with words.
READ_ERRORS = (OSError, ArchiveError, UnsafePath)


def dir_kind(path):
    """'dump' for a directory-format dump (toc.dat), 'basebackup' for a base backup (backup_manifest), else None.

    Only a real directory counts (not a symlink), holding the marker as a regular file.
    """
    info = lstat_or_none(path)
    if info is None or not stat.S_ISDIR(info.st_mode):
        return None
    for marker, kind in (('toc.dat', 'dump'), ('backup_manifest', 'basebackup')):
        found = lstat_or_none(os.path.join(path, marker))
        if found is not None and stat.S_ISREG(found.st_mode):
            return kind
    return None


def is_dump_dir(path):
    """A real directory holding a directory-format dump or a base backup."""
    return dir_kind(path) is not None


def basebackup_validity(path):
    """``(archive, problem)``: a base backup's backup_manifest is PostgreSQL's, and every compressed tar's stream is
    intact (problem None when it is)."""
    try:
        data = json.loads(read_regular(os.path.join(path, 'backup_manifest'), BACKUP_MANIFEST_LIMIT).decode('utf-8'))
    except (OSError, ValueError, UnsafePath) as exc:
        return None, '%s: its backup_manifest cannot be read (%s): the base backup is incomplete' % (path, exc)
    if not isinstance(data, dict) or 'PostgreSQL-Backup-Manifest-Version' not in data or not data.get('WAL-Ranges'):
        return None, '%s: backup_manifest is not a PostgreSQL backup manifest with WAL ranges' % path
    names = sorted(name for name in os.listdir(path) if name != 'backup_manifest')
    for name in names:
        scan = scan_file(os.path.join(path, name), inspect=True)
        if scan['stream_error']:
            return None, '%s: %s' % (os.path.join(path, name), scan['stream_error'])
    return dict(format='BASEBACKUP', files=names, entries=len(data.get('Files') or []),
                wal_ranges=data.get('WAL-Ranges')), None


def dir_stats(path, checksum):
    """Size of a directory-format dump (or base backup) and, with ``checksum``, the runner's tree SHA-256 of it."""
    if not checksum:
        return tree_size(path), None
    tree = hash_tree(path)
    return tree.size, tree.hexdigest()


def entry_size(path):
    """Size of a file, or of a directory-format dump (the sum of its files), without reading it."""
    return dir_stats(path, False)[0] if is_dump_dir(path) else os.lstat(path).st_size


def measure(path, checksum=False, inspect=False, is_dir=None):
    """``{is_dir, size, sha256, compression, scan}`` of an artifact, read at most once.

    ``inspect`` also reads the decompressed head and tail (and checks the whole compressed stream) for
    :func:`validate_archive`. Raises one of ``READ_ERRORS``.
    """
    is_dir = is_dump_dir(path) if is_dir is None else is_dir
    if is_dir:
        size, sha256 = dir_stats(path, checksum)
        return dict(is_dir=True, size=size, sha256=sha256, compression=None, scan=None)
    size = os.lstat(path).st_size
    scan = scan_file(path, checksum=checksum, inspect=inspect)
    return dict(is_dir=False, size=size, sha256=scan['sha256'], compression=scan['compression'], scan=scan)


def validate_archive(path, measured, pg_restore):
    """``(archive, problem)``: what ``pg_restore --list`` (a plain dump's last line, a base backup's manifest and
    streams) says, and a sentence when the artifact is not a readable, complete dump (None when it is)."""
    scan = measured['scan']
    try:
        if measured['is_dir'] and dir_kind(path) == 'basebackup':
            return basebackup_validity(path)
        if measured['is_dir']:
            return pg_restore_list(path, pg_restore), None
        if scan['stream_error']:
            return None, '%s: %s' % (path, scan['stream_error'])
        if detect_format(scan['head']) == 'plain':
            if any(trailer in scan['tail'] for trailer in PLAIN_TRAILERS):
                return {'format': 'PLAIN'}, None
            return {'format': 'PLAIN'}, ('%s is not a complete dump: it is neither a pg_restore archive nor a plain SQL '
                                         "dump ending with pg_dump's \"dump complete\" line (an interrupted dump, or an "
                                         'error message saved as a backup)' % path)
        return pg_restore_list(path, pg_restore, scan['compression']), None
    except ArchiveError as exc:
        return None, str(exc)


MISSING = 'it does not exist'


def read_json_object(path, limit=MANIFEST_LIMIT):
    """``(dict, None)`` or ``(None, why not)`` for a small JSON file root reads (opened safely, bounded).

    Why not is :data:`MISSING` when the file (or its directory) does not exist.
    """
    try:
        raw = read_regular(path, limit)
        if raw is None:
            return None, MISSING
        data = json.loads(raw.decode('utf-8'))
        if not isinstance(data, dict):
            raise ValueError('not a JSON object')
    except OSError as exc:
        return None, MISSING if exc.errno == errno.ENOENT else str(exc)
    except (ValueError, UnsafePath) as exc:
        return None, str(exc)
    return data, None


def sidecar_of(path):
    """The manifest path the runner writes beside ``path``, or None when the name is not one the runner makes."""
    parsed = parse_artifact_name(os.path.basename(path.rstrip('/')))
    if not parsed:
        return None
    return os.path.join(os.path.dirname(path.rstrip('/')), manifest_name(parsed['db'], parsed['stamp']))


def compare_manifest(path, size, sha256, sidecar, data):
    """``(info, problems)``: the artifact against its manifest ``data`` - status ok, size equal, SHA-256 equal when
    one was computed."""
    info = dict(path=sidecar, status=data.get('status'), size=data.get('size'), sha256=data.get('sha256'),
                finished_at=data.get('finished_at'))
    problems = []
    if info['status'] != 'ok':
        problems.append('the manifest %s says this dump %s: %s' % (sidecar, str(info['status']).upper(),
                                                                   data.get('error') or 'no reason given'))
    if info['size'] != size:
        problems.append('%s is %s bytes but its manifest says %s: the file was truncated or changed after the dump'
                        % (path, size, info['size']))
    if sha256 and info['sha256'] and sha256 != info['sha256']:
        problems.append('%s has SHA-256 %s but its manifest says %s: the file is not the dump the manifest describes'
                        % (path, sha256, info['sha256']))
    info['matches'] = not problems
    return info, problems


def check_manifest(path, size, sha256, mode):
    """``(info, problems)`` for the manifest beside ``path`` (``mode``: auto or required); info None without one."""
    sidecar = sidecar_of(path)
    if not sidecar or lstat_or_none(sidecar) is None:
        if mode == 'required':
            return None, ['%s has no manifest beside it (%s): it was not written by the dump runner, or its manifest '
                          'was lost' % (path, sidecar or 'the name is not <db>-<UTC stamp>.<ext>')]
        return None, []
    data, problem = read_json_object(sidecar)
    if problem:
        return None, ['cannot read the manifest %s: %s' % (sidecar, problem)]
    return compare_manifest(path, size, sha256, sidecar, data)


def shrink_pct(size, baseline):
    """How much smaller, in percent, ``size`` is than ``baseline`` (negative when it grew; 0 without a baseline)."""
    return round((baseline - size) * 100.0 / baseline, 2) if baseline else 0.0


def median(values):
    """The median of a non-empty list of numbers."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks a point-in-time restore makes before it touches anything: which base backup, is it intact, is the
archived WAL continuous from it to the target, is there room -- and, when the target's WAL is still in the live
server's current segment, having that segment archived first. Nothing here writes to the host; asking the server
to switch WAL (``pg_switch_wal``) is the one request it may make of production, and only outside check mode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError, query, run_statements
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import basebackup, walcheck
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.targets import choose_backup
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.hashing import hash_file
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.wal import WAL_FILE_RE
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.walrestore import segment_problem

LIVE_SQL = ("SELECT current_setting('data_directory') AS data_directory, pg_is_in_recovery() AS in_recovery, "
            "current_setting('server_version_num')::int AS version_num, current_setting('archive_mode') AS archive_mode")
SWITCH_SQL = "SELECT pg_walfile_name(pg_switch_wal()) AS segment"
CURRENT_SQL = "SELECT pg_walfile_name(pg_current_wal_lsn()) AS segment"
ARCHIVE_WAIT_SECONDS = 60


class PreflightError(Exception):
    """A pre-flight check failed: nothing was touched; the message says what and what to do."""


def live_facts(ctx):
    """What the live server says about itself, or None when it does not answer (a validation drill goes on)."""
    try:
        return query(ctx.module, ctx.connection, LIVE_SQL, password=ctx.password, run_as=ctx.run_as,
                     connect_timeout=ctx.connect_timeout)[0]
    except PgQueryError as exc:
        ctx.warnings.append('the live server does not answer (%s); going on without it' % exc)
        return None


def archive_listing(archive, extra_dirs=()):
    """``(names, mtimes, histories, tail)`` of the WAL archive directory (read as root, content only of history files).

    ``extra_dirs``: more places the restore reads WAL from (a disaster restore: the live ``pg_wal``, which becomes
    the snapshot's); their segments are the ``tail`` (see ``walcheck.check_continuity``).
    """
    try:
        names = os.listdir(archive)
    except OSError as exc:
        raise PreflightError('cannot list the WAL archive %s: %s' % (archive, exc))
    mtimes, histories, tail = {}, {}, []
    for directory in extra_dirs:
        try:
            for name in os.listdir(directory):
                if WAL_FILE_RE.match(name) and name not in names and written_segment(directory, name):
                    tail.append(name)
                    mtimes[name] = os.lstat(os.path.join(directory, name)).st_mtime
        except OSError as exc:
            raise PreflightError('cannot list %s: %s' % (directory, exc))
    for name in names:
        if WAL_FILE_RE.match(name) and name not in mtimes:
            try:
                mtimes[name] = os.lstat(os.path.join(archive, name)).st_mtime
            except OSError:
                continue
        elif name.endswith('.history') and len(name) == 16:
            try:
                text = (_files.read_regular(os.path.join(archive, name), 1 << 20) or b'').decode('utf-8', 'replace')
                histories[int(name[:8], 16)] = walcheck.parse_history(text)
            except (OSError, ValueError, _files.UnsafePath) as exc:
                raise PreflightError('cannot read the timeline history file %s in %s: %s' % (name, archive, exc))
    return names, mtimes, histories, tail


def written_segment(directory, name):
    """Whether ``pg_wal/name`` holds that segment: its first page names it (a recycled or preallocated file, named
    for a segment not written yet, still holds an old one, or zeros)."""
    path = os.path.join(directory, name)
    try:
        with _files.open_regular(path) as handle:
            head, size = handle.read(64), os.fstat(handle.fileno()).st_size
    except (OSError, _files.UnsafePath):
        return False
    return segment_problem(name, head, size, {}) is None


def check_hashes(manifest):
    """Read every file of a base backup once and compare its SHA-256 with the runner's manifest (no writes)."""
    for name, expected in sorted((manifest.get('files') or {}).items()):
        path = os.path.join(manifest['path'], name)
        try:
            digest = hash_file(path)
        except OSError as exc:
            raise PreflightError('cannot read %s: %s' % (path, exc))
        if (digest.size, digest.hexdigest()) != (expected.get('size'), expected.get('sha256')):
            raise PreflightError('%s changed since the base backup was made (%d bytes, SHA-256 %s; its manifest says %s '
                                 'bytes, %s): restore from another base backup'
                                 % (path, digest.size, digest.hexdigest(), expected.get('size'), expected.get('sha256')))


def wal_check(ctx, manifest, target, extra_dirs=()):
    """The continuity verdict, after having the live server archive its current segment when the target needs it.

    An LSN target needs it when its own segment is not archived yet. Which segment holds a time is only known by
    reading WAL, so for a time target the live primary's current segment is archived whenever it is not yet: a
    segment switch costs nothing, a restore that ends before its target costs the restore.
    """
    names, mtimes, histories, tail = archive_listing(ctx.params['wal_archive'], extra_dirs)
    result = walcheck.check_continuity(manifest, names, histories, target, ctx.params['target_timeline'], mtimes, tail)
    live = ctx.live
    if not ctx.params['switch_wal'] or not live or live['in_recovery'] or not needs_switch(ctx, result, target, names):
        return result
    if ctx.module.check_mode:
        only_that = result['missing'] == [result['last_needed']] if target['kind'] == 'lsn' else not result['missing']
        ctx.notes.append('the WAL of the target may still be in the live server\'s current segment: a real run first asks '
                         'the server to archive it (pg_switch_wal)')
        if len(result['problems']) == 1 and only_that:
            result['problems'], result['ok'] = [], True
        return result
    segment = switch_and_wait(ctx)
    ctx.notes.append('asked the live server to archive its current WAL segment (%s) so the target is restorable' % segment)
    names, mtimes, histories, tail = archive_listing(ctx.params['wal_archive'], extra_dirs)
    return walcheck.check_continuity(manifest, names, histories, target, ctx.params['target_timeline'], mtimes, tail)


def needs_switch(ctx, result, target, names):
    """Whether archiving the live server's current segment is needed for the target (see :func:`wal_check`)."""
    if target['kind'] == 'lsn':
        return bool(result['missing']) and result['missing'][-1] == result['last_needed']
    if target['kind'] != 'time':
        return False
    try:
        current = query(ctx.module, ctx.connection, CURRENT_SQL, password=ctx.password, run_as=ctx.run_as,
                        connect_timeout=ctx.connect_timeout)[0]['segment']
    except PgQueryError:
        return False
    return current not in names


def switch_and_wait(ctx):
    """Have the live server archive its current segment and wait until it is in the archive; its name.

    One empty transaction first (an XID and its commit record, no data): a target at the very end of WAL (a reference
    taken on an idle server) needs a record after it, and ``pg_switch_wal`` switches only after some WAL was written.
    """
    try:
        answers = run_statements(ctx.module, ctx.connection, [('SELECT pg_current_xact_id()', None), (SWITCH_SQL, None)],
                                 password=ctx.password, run_as=ctx.run_as, read_only=False, autocommit=True,
                                 connect_timeout=ctx.connect_timeout)
        segment = answers[1]['rows'][0][0]
    except PgQueryError as exc:
        raise PreflightError('could not ask the live server to archive its current WAL segment: %s' % exc)
    deadline = time.monotonic() + ARCHIVE_WAIT_SECONDS
    path = os.path.join(ctx.params['wal_archive'], segment)
    while not (os.path.exists(path) and archived_at_least(ctx, segment)):
        if time.monotonic() > deadline:
            raise PreflightError('the live server switched to a new WAL segment but %s did not reach the archive within %d '
                                 'seconds: is archiving failing? (dbfleet.postgresql.wal_archive_status says why)'
                                 % (segment, ARCHIVE_WAIT_SECONDS))
        time.sleep(0.2)
    return segment


def archived_at_least(ctx, segment):
    """Whether the server's archiver reports ``segment`` (or a later one) done: archive_command returned, the file is whole."""
    try:
        row = query(ctx.module, ctx.connection, "SELECT coalesce(last_archived_wal, '') AS last FROM pg_stat_archiver",
                    password=ctx.password, run_as=ctx.run_as, connect_timeout=ctx.connect_timeout)[0]
    except PgQueryError:
        return False
    return row['last'][:24][8:] >= segment[8:]


def run(ctx, target, space_dir, extra_dirs=()):
    """All the pre-flight checks; ``{backup, wal, space_needed, ...}`` or PreflightError.

    ``space_dir``: where it unpacks; ``extra_dirs``: where else WAL is read from (see :func:`archive_listing`).
    """
    try:
        manifests = basebackup.good_backups(ctx.params['basebackup_dir'])
    except basebackup.BackupError as exc:
        raise PreflightError(str(exc))
    manifest, why = choose_backup(manifests, target, ctx.params['base_backup'])
    if manifest is None:
        raise PreflightError('no base backup to restore from in %s: %s' % (ctx.params['basebackup_dir'], why))
    try:
        basebackup.backup_files(manifest)
        needed = basebackup.restored_bytes(manifest)
    except basebackup.BackupError as exc:
        raise PreflightError(str(exc))
    if ctx.module.check_mode:
        check_hashes(manifest)
    wal = wal_check(ctx, manifest, target, extra_dirs)
    if not wal['ok']:
        raise PreflightError('WAL pre-flight failed for base backup %s -> %s: %s' % (
            os.path.basename(manifest['path']), target['text'], '; '.join(wal['problems'])))
    size = int(manifest['wal_segment_size'])
    staged = sum(size for name in wal['fetch'] if len(name) == 24)
    stage = not basebackup.space_problem(space_dir, needed + staged, size)
    if not stage:
        problem = basebackup.space_problem(space_dir, needed, size)
        if problem:
            raise PreflightError(problem)
        ctx.notes.append('not enough room to stage the %d MiB of WAL in pg_wal first: each segment is fetched when the server '
                         'asks for it (slower)' % (staged >> 20))
    return dict(backup=manifest, wal=wal, space_needed=needed + (staged if stage else 0), stage=stage)

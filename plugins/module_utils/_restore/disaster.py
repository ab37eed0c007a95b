# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A disaster restore of the live data directory, in order:

1. (before any outage) the base backup unpacked beside the data directory (``DATA-restoring-STAMP``) and proven
   intact; a copy of another database system (a different system identifier) is refused;
2. the live server asked to archive its current WAL segment, then stopped by its own method;
3. the live data directory renamed to the safety snapshot ``DATA-before-restore-STAMP`` (same file system: no copy,
   no time) -- never deleted by dbfleet; the verified copy renamed into its place, the live configuration files
   copied into it, the recovery settings added to its ``postgresql.auto.conf``;
4. the server started by its own method; WAL comes from the archive, then from the snapshot's own ``pg_wal`` (what
   had not been archived yet); wait until recovery reaches the target and promotes (or pauses);
5. the recovery settings reset.

A failure after step 2 puts things back: the failed attempt is moved to ``DATA-failed-restore-STAMP``, the
snapshot back to ``DATA``, and the server started again, so the host is as it was before the restore began.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import basebackup, live, preflight
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.instance import alive, postmaster_state
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.pitr import (
    STAGED_RESTORE_COMMAND,
    RestoreError,
    append_recovery,
    copy_config,
    finish_facts,
    reset_recovery,
    restore_config,
    stage_wal,
    unpack_verified,
    wait_for_target,
)
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.targets import recovery_settings
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.walrestore import restore_command


def paths(data_directory, stamp):
    """``(staging, snapshot, failed)`` beside the data directory, named so nobody wonders what they are."""
    return tuple('%s-%s-%s' % (data_directory, word, stamp) for word in ('restoring', 'before-restore', 'failed-restore'))


def layout_problem(data_directory, identity):
    """Why the live data directory cannot be swapped by a rename (a mount point, another owner), or None."""
    try:
        info, parent = os.lstat(data_directory), os.lstat(os.path.dirname(data_directory))
    except OSError as exc:
        return 'cannot look at the data directory %s: %s' % (data_directory, exc)
    if info.st_dev != parent.st_dev:
        return ('%s is a mount point: dbfleet moves the data directory aside by renaming it, which a mount point cannot be; '
                'restore by hand or mount the parent directory instead' % data_directory)
    if info.st_uid != identity[0]:
        return '%s is not owned by the OS user the server runs as (uid %d, run_as has %d)' % (data_directory, info.st_uid, identity[0])
    return None


def _running(data_directory):
    pid, _status = postmaster_state(data_directory)
    return bool(pid) and alive(pid)


def _control(ctx, action, log_file=None):
    argv, user = live.control_argv(ctx.restart, action, ctx.data_directory, ctx.bin_dir, log_file=log_file)
    return live.run_control(argv, user, '%s of the server' % action)


def run(ctx, plan, target, stamp):
    """The disaster restore (see the module docstring); the result dict, or RestoreError after putting things back."""
    data = ctx.data_directory
    staging, snapshot, failed = paths(data, stamp)
    manifest = plan['backup']
    started = time.monotonic()
    size = int(manifest['wal_segment_size'])
    config = os.path.join(ctx.params['config_dir'], 'wal-restore-%s.json' % stamp)
    _files.ensure_dir(staging, ctx.identity[0], ctx.identity[1], 0o700)
    try:
        # what is archived already is staged before the outage, while the base unpacks (what the live pg_wal holds, after)
        archived = [name for name in plan['wal']['fetch'] if name not in plan['wal']['fetch_tail']]
        timings, words, sysid, _control_minimums = unpack_verified(ctx, manifest, staging,
                                                                   (config, archived) if plan['stage'] else None)
        live_sysid = basebackup.system_identifier(data)
        if live_sysid and sysid != live_sysid:
            raise RestoreError('base backup %s is of database system %s, the live data directory %s of %s: refusing to '
                               'replace one cluster with another' % (manifest['path'], sysid, data, live_sysid))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _files.remove_file(config)
        raise
    pid = postmaster_state(data)[0]
    logs = live.log_positions([live.stderr_log(pid) if pid else None, live.collector_log(data)])
    stderr_file = live.stderr_log(pid) if pid else None
    if ctx.live and not ctx.live['in_recovery'] and ctx.params['switch_wal']:
        try:
            ctx.notes.append('archived the current WAL segment %s before stopping' % preflight.switch_and_wait(ctx))
        except preflight.PreflightError as exc:
            ctx.warnings.append('%s; what was not archived is read from the snapshot\'s pg_wal instead' % exc)
    outage = time.monotonic()
    rc, said = _control(ctx, 'stop')
    if not live.wait_stopped(data):
        shutil.rmtree(staging, ignore_errors=True)
        raise RestoreError('the server on %s did not stop (%s exit %d: %s): nothing was changed; the verified copy was '
                           'removed' % (data, ctx.restart.get('method') or 'pg_ctl', rc, said))
    os.rename(data, snapshot)
    try:
        os.rename(staging, data)
    except OSError:
        os.rename(snapshot, data)
        raise
    settings = []
    extra = [os.path.join(snapshot, 'pg_wal')]
    try:
        copied = copy_config(snapshot, data, ctx.identity)
        command = restore_command(ctx.interpreter, ctx.program, config)
        if plan['stage']:  # the rest: archived since the pre-flight, and the stopped server's own last segments
            wal = preflight.wal_check(ctx, manifest, target, extra)
            if not wal['ok']:
                raise RestoreError('WAL after the stop: %s' % '; '.join(wal['problems']))
            restore_config(config, ctx.params['wal_archive'], extra, sysid, size, ctx.identity[1], wal['fetch'])
            timings['staged_files'] = timings.get('staged_files', 0) + stage_wal(ctx, config, os.path.join(data, 'pg_wal'))
            command = STAGED_RESTORE_COMMAND
        else:
            restore_config(config, ctx.params['wal_archive'], extra, sysid, size, ctx.identity[1])
        settings = recovery_settings(target, ctx.params['target_action'], command, ctx.params['target_inclusive'],
                                     ctx.params['target_timeline'])
        append_recovery(data, settings, ctx.identity)
        replay = time.monotonic()
        rc, said = _control(ctx, 'start', stderr_file)
        if rc != 0 and not _running(data):
            raise RestoreError('the server did not start on the restored data directory (exit %d: %s)' % (rc, said))
        after = live.collector_log(data)
        if after and after not in logs:
            logs[after] = 0
        row = wait_for_target(ctx, ctx.connection, ctx.params['target_action'], lambda: _running(data),
                              ctx.params['timeout'], lambda: live.read_after(logs))
        timings['replay'] = round(time.monotonic() - replay, 3)
        if not row['in_recovery']:
            reset_recovery(ctx, settings)
    except (RestoreError, preflight.PreflightError, PgQueryError, OSError, _files.UnsafePath) as exc:
        undone = rollback(ctx, data, snapshot, failed)
        raise RestoreError('%s. %s' % (exc, undone))
    finally:
        _files.remove_file(config)
    result = finish_facts(row, live.read_after(logs), started)
    result.update(verifybackup=words, timings=timings, system_identifier=sysid, snapshot=snapshot, config_carried=copied,
                  outage_seconds=round(time.monotonic() - outage, 3))
    return result


def rollback(ctx, data, snapshot, failed):
    """Put the live data directory back as it was and start the server; a sentence saying what was done."""
    if _running(data):
        _control(ctx, 'stop')
        live.wait_stopped(data)
    if _running(data):
        return ('The restored server on %s could not be stopped: the safety snapshot is %s, untouched; stop the server, '
                'then move %s aside and %s back by hand' % (data, snapshot, data, snapshot))
    os.rename(data, failed)
    os.rename(snapshot, data)
    rc, said = _control(ctx, 'start')
    started = 'started again' if rc == 0 or _running(data) else 'NOT started (%s): start it by hand' % said
    return ('Put back: the data directory as it was before the restore is %s again (server %s); the failed attempt is '
            'kept in %s' % (data, started, failed))

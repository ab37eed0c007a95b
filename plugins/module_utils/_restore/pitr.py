# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time restore, once the pre-flight checks passed: a base backup unpacked and proven intact
(SHA-256 against the runner's manifest, then ``pg_verifybackup``), the recovery settings, a start, a wait until
recovery reaches the target, and what the server says it reached.

``validation`` does it in a throwaway instance (``_restore.instance``). ``disaster`` replaces the live data
directory: everything up to a verified copy happens before the outage; then the server is stopped, its data
directory moved aside as the safety snapshot (never deleted), the copy moved in with the live configuration files,
and the server started by its own method. A restore that fails after the stop puts the snapshot back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._archive import _as
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError, query, run_statements
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import basebackup, instance, live
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.targets import conf_lines, recovery_settings
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.walrestore import restore_command

REACHED_SQL = (
    "SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_replay_lsn()::text AS lsn, "
    "pg_last_xact_replay_timestamp() AS time, "
    "CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS pause_state, "
    "CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint()) "
    "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline")
RECOVERY_MARK = 'recovery settings written by dbfleet.postgresql pitr_restore (reset once the server is promoted)'


class RestoreError(Exception):
    """The restore failed; the message says at which step and what was left where."""


# The restore_command of a server whose WAL was staged in its pg_wal: fetch nothing (no value in it), so PostgreSQL
# reads each segment from pg_wal without starting a program per segment.
STAGED_RESTORE_COMMAND = 'false'


def restore_config(path, archive_dir, extra_dirs, sysid, segment_size, gid, stage_list=()):
    """Write the config of dbfleet-wal-restore (root-owned, readable by the server's group)."""
    data = json.dumps(dict(archive_dir=archive_dir, extra_dirs=extra_dirs, system_identifier=sysid, wal_segment_size=segment_size,
                           stage=list(stage_list)), indent=2, sort_keys=True) + '\n'
    _files.write_file(path, data.encode('utf-8'), 0, gid, 0o640)


def start_stage(ctx, config, pg_wal):
    """Start dbfleet-wal-restore --stage as the server's OS user (every listed file into ``pg_wal``, checked)."""
    argv = [ctx.interpreter, ctx.program, '--config', config, '--stage', pg_wal]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/', **_as(ctx.identity))  # pylint: disable=consider-using-with


def finish_stage(proc):
    """Wait for a :func:`start_stage` run; how many files it staged (RestoreError with its words when it failed)."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RestoreError(err.decode('utf-8', 'replace').strip()[-2000:] or 'staging WAL failed (exit %d)' % proc.returncode)
    return json.loads(out.decode('utf-8', 'replace') or '{}').get('staged', 0)


def stage_wal(ctx, config, pg_wal):
    """Stage now and wait: :func:`start_stage` then :func:`finish_stage`."""
    return finish_stage(start_stage(ctx, config, pg_wal))


def unpack_verified(ctx, manifest, target_dir, stage=None):
    """Unpack and prove the copy: ``(timings, verifybackup words, system identifier, control minimums)``.

    ``stage``: ``(config path, names)`` of WAL to stage into the copy's pg_wal while its base unpacks (the system
    identifier the staged segments must carry is read from the backup's own WAL first).
    """
    timings = {}
    started = time.monotonic()
    stager = []

    def start():
        sysid = basebackup.wal_system_identifier(os.path.join(target_dir, 'pg_wal'))
        restore_config(stage[0], ctx.params['wal_archive'], [], sysid, int(manifest['wal_segment_size']), ctx.identity[1],
                       stage[1])
        stager.append(start_stage(ctx, stage[0], os.path.join(target_dir, 'pg_wal')))

    try:
        basebackup.unpack_backup(manifest, target_dir, ctx.identity, start if stage else None)
        timings['unpack'] = round(time.monotonic() - started, 3)
        started = time.monotonic()
        words = basebackup.verify_unpacked(ctx.bin_dir, manifest, target_dir, ctx.identity)
        timings['verifybackup'] = round(time.monotonic() - started, 3)
        control = basebackup.control_settings(ctx.bin_dir, target_dir, ctx.identity)
        if stager:
            timings['staged_files'] = finish_stage(stager.pop())
            timings['staged_by'] = round(time.monotonic() - started, 3)
    except basebackup.BackupError as exc:
        raise RestoreError(str(exc))
    finally:
        for proc in stager:
            proc.kill()
            proc.wait()
    return timings, words, basebackup.system_identifier(target_dir), control


def reached_in_log(text, action):
    """Whether the server's log says recovery is over: promoted (ready for read-write connections), or paused."""
    if action == 'pause':
        return 'recovery has paused' in text or 'pausing at the end of recovery' in text
    return 'database system is ready to accept connections' in text


def wait_for_target(ctx, connection, action, running, timeout, log_text):
    """Wait until recovery reached the target (promoted, or paused); the facts the server gives then.

    The log is watched every 50 ms (the server says when it is done); the server is asked every second as well, for
    a log dbfleet cannot read.
    """
    deadline = time.monotonic() + timeout
    last, asked = None, 0.0
    while time.monotonic() < deadline:
        if not running():
            said = ' | '.join(instance.evidence(log_text())[-6:]) or 'no words in its log'
            raise RestoreError('the server stopped during recovery: %s' % said)
        since = time.monotonic() - asked
        if since > 1.0 or (since > 0.2 and reached_in_log(log_text(), action)):
            asked = time.monotonic()
            try:
                row = query(ctx.module, connection, REACHED_SQL, run_as=ctx.run_as, password=ctx.password, connect_timeout=5)[0]
            except PgQueryError as exc:
                last = str(exc)
                continue
            if not row['in_recovery'] or (action == 'pause' and row['pause_state'] == 'paused'):
                return row
        time.sleep(0.05)
    raise RestoreError('recovery did not reach the target within %d seconds (last: %s); see the server log'
                       % (timeout, last or 'still replaying'))


def finish_facts(row, log_text, started):
    """The result's ``reached``, ``evidence`` and ``rto_seconds``."""
    return dict(reached=dict(lsn=row['lsn'], time=row['time'], timeline=row['timeline'], promoted=not row['in_recovery'],
                             paused=row['pause_state'] == 'paused'),
                evidence=instance.evidence(log_text), rto_seconds=round(time.monotonic() - started, 3))


def validation(ctx, plan, target):
    """Restore into a throwaway instance; returns the result dict (the instance is left running for verification)."""
    manifest = plan['backup']
    inst = ctx.instance
    started = time.monotonic()
    config = os.path.join(inst.directory, 'wal-restore.json')
    staged = (config, plan['wal']['fetch']) if plan['stage'] else None
    timings, words, sysid, control = unpack_verified(ctx, manifest, inst.data, staged)
    if staged:
        command = STAGED_RESTORE_COMMAND
    else:
        restore_config(config, ctx.params['wal_archive'], [], sysid, int(manifest['wal_segment_size']), ctx.identity[1])
        command = restore_command(ctx.interpreter, ctx.program, config)
    recovery = recovery_settings(target, ctx.params['target_action'], command, ctx.params['target_inclusive'],
                                 ctx.params['target_timeline'])
    _files.write_file(os.path.join(inst.data, 'recovery.signal'), b'', ctx.identity[0], ctx.identity[1], 0o600)
    settings = instance.instance_settings(inst.port, inst.directory, control, recovery)
    inst.write_config(settings)
    replay = time.monotonic()
    inst.start(settings)
    try:
        inst.wait_started(ctx.params['timeout'])
        row = wait_for_target(ctx, inst.connection(ctx.superuser), ctx.params['target_action'], inst.running,
                              ctx.params['timeout'], inst.log_text)
    except instance.InstanceError as exc:
        raise RestoreError(str(exc))
    timings['replay'] = round(time.monotonic() - replay, 3)
    result = finish_facts(row, inst.log_text(), started)
    result.update(verifybackup=words, timings=timings, system_identifier=sysid,
                  instance=dict(directory=inst.directory, data_directory=inst.data, socket_directory=inst.socket_dir,
                                port=inst.port, log=inst.log))
    return result


def copy_config(snapshot, data_directory, identity):
    """Carry the live configuration files (postgresql.conf, pg_hba.conf, conf.d, ...) into the restored directory."""
    copied = []
    for name in live.config_entries(snapshot):
        target = os.path.join(data_directory, name)
        for argv in (['rm', '-rf', '--', target], ['cp', '-a', '--', os.path.join(snapshot, name), target]):
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd='/', check=False, **_as(identity))
            if proc.returncode != 0:
                raise RestoreError('could not carry %s into the restored data directory: %s'
                                   % (name, proc.stdout.decode('utf-8', 'replace').strip()))
        copied.append(name)
    return copied


def append_recovery(data_directory, settings, identity):
    """Add the recovery settings to the restored postgresql.auto.conf (they win over postgresql.conf) and recovery.signal."""
    path = os.path.join(data_directory, 'postgresql.auto.conf')
    current = _files.read_regular(path) or b''
    text = current.decode('utf-8', 'replace')
    if text and not text.endswith('\n'):
        text += '\n'
    text += conf_lines(settings, RECOVERY_MARK)
    _files.write_file(path, text.encode('utf-8'), identity[0], identity[1], 0o600)
    _files.write_file(os.path.join(data_directory, 'recovery.signal'), b'', identity[0], identity[1], 0o600)


def reset_recovery(ctx, settings):
    """After promotion: ALTER SYSTEM RESET every recovery setting and reload, so the next restart is a normal one."""
    statements = [('ALTER SYSTEM RESET %s' % name, None) for name, _value in settings]
    statements.append(('SELECT pg_reload_conf()', None))
    run_statements(ctx.module, ctx.connection, statements, password=ctx.password, run_as=ctx.run_as, read_only=False,
                   autocommit=True)

#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pitr_restore
short_description: Point-in-time restore from a base backup and the WAL archive, as a drill or for real
version_added: 0.3.0
description:
  - Restores a base backup made by the dump runner (C(kind=basebackup)) and replays archived WAL up to a target - a
    time, an LSN, a transaction id, a named restore point, C(immediate) (the end of the base backup) or, without a
    target, the end of the archive - then promotes or pauses.
  - Pre-flight checks run before anything is touched, in every mode and in check mode - a base backup that ends
    before the target, every file of it matching the runner's SHA-256, the archived WAL continuous from its start to
    the target (every missing segment named), enough disk space. When the target's WAL is still in the live server's
    current segment, the server is asked to archive it (O(switch_wal)). The unpacked copy is checked with
    C(pg_verifybackup) (files and WAL) before it is used.
  - O(mode=validation) (the default) restores into a throwaway instance in O(restore_root) - a spare port, a private
    socket directory, no TCP, C(archive_mode=off) so nothing is ever archived into production's archive - waits until
    recovery reaches the target, verifies the content when O(verify) is given, and removes it unless O(keep=true).
    Production is not touched.
  - O(mode=disaster) replaces the live data directory and refuses without O(authorization). After the pre-flight
    checks and a verified copy (all before any outage) it stops the server its own way (O(restart), as
    M(dbfleet.postgresql.pg_server_info) returns it), renames the data directory to the safety snapshot
    C(DATA-before-restore-STAMP), which it never deletes, moves the copy in with the live configuration files, starts
    the server and waits until it promotes. A failure after the stop puts the snapshot back and starts the server.
  - WAL reaches the server through the host program C(dbfleet-wal-restore) - inside the throwaway instance's
    directory in a drill (nothing stays on the host), at O(program_path) in a disaster restore - whose config names
    the archive; no shell command is built from any option. It checks each segment's size, address and system
    identifier before the server sees it.
  - Returns the reached LSN, time and timeline, the server's own words about where recovery stopped, the seconds it
    took (the measured RTO), the achieved RPO and, in disaster mode, the safety snapshot's path.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.connect_as
  - dbfleet.postgresql.restore
  - dbfleet.postgresql.safety
options:
  mode:
    description: V(validation) restores into a throwaway instance; V(disaster) replaces the live data directory.
    type: str
    choices: [validation, disaster]
    default: validation
  authorization:
    description:
      - Required for O(mode=disaster) outside check mode - exactly C(disaster:HOSTNAME), the host's own name as it
        reports it. Anything else is refused before anything happens.
    type: str
  basebackup_dir:
    description: Where the base backups and their runner manifests are.
    type: path
    default: /srv/basebackups
  base_backup:
    description: V(latest) (the newest one that ends before the target) or a base backup's stamp or directory name.
    type: str
    default: latest
  wal_archive:
    description: The WAL archive directory.
    type: path
    default: /srv/wal-archive
  target:
    description: Where recovery stops; at most one key. Empty - the end of the archived WAL.
    type: dict
    default: {}
    suboptions:
      time:
        description: A time with its zone, for example C(2026-06-12T09:10:00Z).
        type: str
      lsn:
        description: A WAL location, for example C(0/5000148).
        type: str
      xid:
        description: A transaction id.
        type: str
      name:
        description: A restore point made with C(pg_create_restore_point).
        type: str
      immediate:
        description: Stop as soon as the base backup is consistent.
        type: bool
  target_inclusive:
    description: Stop just after the target (V(true)) or just before it.
    type: bool
    default: true
  target_timeline:
    description: V(latest), V(current) or a timeline number.
    type: str
    default: latest
  target_action:
    description: What the server does at the target - V(promote) (a normal server on a new timeline) or V(pause).
    type: str
    choices: [promote, pause]
    default: promote
  data_directory:
    description: The live data directory (O(mode=disaster)); asked from the server when omitted.
    type: path
  restart:
    description:
      - How the live server is stopped and started (O(mode=disaster)) - the C(restart) that
        M(dbfleet.postgresql.pg_server_info) returns (C(method) V(pg_ctlcluster), V(systemd) or V(pg_ctl), C(argv),
        C(run_as)). Without it, C(pg_ctl -D) with the binaries of O(pg_bin).
    type: dict
  switch_wal:
    description: Ask the live server to archive its current WAL segment when the target's WAL is in it.
    type: bool
    default: true
  name:
    description: Name of the throwaway instance's directory in O(restore_root); C(pitr-STAMP) by default.
    type: str
  program_path:
    description: Where the WAL restore program is installed for a disaster restore (a drill keeps it in its instance).
    type: path
    default: /opt/dbfleet/bin/dbfleet-wal-restore
  config_dir:
    description: Directory of the WAL restore program's config during a disaster restore (removed afterwards).
    type: path
    default: /etc/dbfleet
attributes:
  check_mode:
    description: Runs every pre-flight check (reading, never writing) and reports the plan; restores nothing.
    support: full
  diff_mode:
    description: No diff; the plan says what would happen.
    support: none
requirements:
  - psycopg 3 on the host; the PostgreSQL server binaries of the backup's major version; zstd for zstd base backups
notes:
  - Base backups with tablespaces are refused (restore those by hand).
  - Unlogged tables come back empty from any point-in-time restore; the verification says so instead of failing.
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Drill - restore last night's base backup to 09:10 in a throwaway instance and check it
  dbfleet.postgresql.pitr_restore:
    target:
      time: "2026-06-12T09:10:00Z"
    verify:
      reference: "{{ reference_at_0910 }}"
  register: drill

- name: Disaster - production back to just before the bad DELETE (after the pre-flight in check mode)
  dbfleet.postgresql.pitr_restore:
    mode: disaster
    authorization: "disaster:db-primary"
    target:
      time: "2026-06-12T14:01:59Z"
    restart: "{{ server.restart }}"
'''

RETURN = r'''
mode:
  description: The mode that ran.
  returned: always
  type: str
plan:
  description: What the restore does (or did), step by step, in words.
  returned: always
  type: list
  elements: str
base_backup:
  description: The base backup restored from - path, stamp, start/end LSN, timeline.
  returned: always
  type: dict
wal:
  description: The WAL continuity verdict - timeline, first/last needed segment, from_archive, missing; C(staged) when
    the WAL was copied into the restored pg_wal first (room allowing), so replay never waits for a program.
  returned: always
  type: dict
reached:
  description: Where recovery stopped - C(lsn), C(time) (of the last replayed transaction), C(timeline), C(promoted), C(paused).
  returned: when the restore ran
  type: dict
evidence:
  description: The server log's lines about recovery (C(recovery stopping before commit of transaction ...), ...).
  returned: when the restore ran
  type: list
  elements: str
rto_seconds:
  description: Seconds from the start of the restore to a server that reached the target (the measured RTO).
  returned: when the restore ran
  type: float
rpo_seconds:
  description: How long before the target the newest restorable point lies (0 when recovery stopped at the target).
  returned: when the restore ran
  type: float
outage_seconds:
  description: Seconds the live server was down (O(mode=disaster)).
  returned: in disaster mode
  type: float
authorization_required:
  description: The O(authorization) a disaster restore of this host needs (C(disaster:HOSTNAME)).
  returned: in disaster mode
  type: str
snapshot:
  description: The safety snapshot - the live data directory as it was before the restore. dbfleet never deletes it.
  returned: in disaster mode
  type: str
instance:
  description: The throwaway instance - directory, data_directory, socket_directory, port, log, and C(removed).
  returned: in validation mode
  type: dict
verification:
  description: Reference vs restored per database (C(verdict) verified, failed or scanned; C(problems); C(databases)).
  returned: when O(verify) was given
  type: dict
timings:
  description: Seconds per step (unpack, verifybackup, replay).
  returned: when the restore ran
  type: dict
'''

import os
import socket
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _desired
from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath, ensure_dir
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import postgres_common_argument_spec
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import common, disaster, instance, pitr, preflight
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.targets import TargetError, parse_target, rpo_seconds
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import format_stamp, utcnow
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule

TARGET_OPTIONS = dict(time=dict(type='str'), lsn=dict(type='str'), xid=dict(type='str'), name=dict(type='str'),
                      immediate=dict(type='bool'))


def argument_spec():
    spec = postgres_common_argument_spec()
    spec.update(common.restore_argument_spec())
    spec.update(
        mode=dict(type='str', choices=['validation', 'disaster'], default='validation'),
        authorization=dict(type='str'),
        basebackup_dir=dict(type='path', default='/srv/basebackups'),
        base_backup=dict(type='str', default='latest'),
        wal_archive=dict(type='path', default='/srv/wal-archive'),
        target=dict(type='dict', default={}, options=TARGET_OPTIONS),
        target_inclusive=dict(type='bool', default=True),
        target_timeline=dict(type='str', default='latest'),
        target_action=dict(type='str', choices=['promote', 'pause'], default='promote'),
        data_directory=dict(type='path'),
        restart=dict(type='dict'),
        switch_wal=dict(type='bool', default=True),
        name=dict(type='str'),
        program_path=dict(type='path', default=common.WAL_RESTORE_PROGRAM),
        config_dir=dict(type='path', default='/etc/dbfleet'),
    )
    return spec


def expected_authorization():
    return 'disaster:%s' % socket.gethostname()


def describe_plan(ctx, mode, plan, target, where):
    backup, wal = plan['backup'], plan['wal']
    steps = ['restore base backup %s (%s, timeline %s) and replay %d archived WAL segment(s) %s .. %s (timeline %s) to %s, '
             'then %s' % (os.path.basename(backup['path']), backup.get('finished_at'), backup['timeline'], wal['from_archive'],
                          wal['first_needed'], wal['last_needed'], wal['timeline'], target['text'], ctx.params['target_action'])]
    if mode == 'validation':
        steps.insert(0, 'unpack it into the throwaway instance %s (socket only, archive_mode=off) and prove it with '
                        'pg_verifybackup' % where)
        steps.append('verify its content, then remove it' if not ctx.params['keep'] else 'leave it running (keep)')
    else:
        steps.insert(0, 'unpack it beside %s and prove it with pg_verifybackup, before any outage' % where)
        steps.insert(1, 'stop the server, rename %s to the safety snapshot %s (never deleted), move the verified copy in '
                        'with the live configuration files, start the server' % (where, disaster.paths(where, 'STAMP')[1]))
    return steps


def fail(module, ctx, msg, **extra):
    for warning in ctx.warnings:
        module.warn(warning)
    module.fail_json(msg=msg, **extra)


def main():
    module = DbfleetModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    ctx = common.Context(module)
    mode = params['mode']
    try:
        target = parse_target(params['target'])
    except TargetError as exc:
        module.fail_json(msg=str(exc))
    if mode == 'disaster' and not module.check_mode and params['authorization'] != expected_authorization():
        module.fail_json(msg='Refused: a disaster restore replaces the live data directory of %s and needs explicit '
                             'authorization. Nothing was done. Run it in check mode first, then pass authorization: %s'
                             % (socket.gethostname(), expected_authorization()), changed=False,
                         authorization_required=expected_authorization())
    stamp = format_stamp(utcnow())
    ctx.live = preflight.live_facts(ctx)
    if mode == 'disaster':
        data_directory = params['data_directory'] or (ctx.live or {}).get('data_directory')
        if not data_directory:
            fail(module, ctx, 'the live data directory is unknown: the server does not answer; set data_directory')
        if ctx.live and ctx.live['in_recovery']:
            fail(module, ctx, 'this server is a standby: a disaster restore replaces a primary; rebuild standbys from it instead')
        module.require_write_destination(os.path.dirname(data_directory), 'data_directory')
        ctx.data_directory = data_directory
        ctx.restart = params['restart'] or {}
        space_dir = os.path.dirname(data_directory)
        extra_dirs = [os.path.join(data_directory, 'pg_wal')]
    else:
        module.require_write_destination(params['restore_root'], 'restore_root')
        space_dir = params['restore_root']
        extra_dirs = []
        while not os.path.isdir(space_dir):
            space_dir = os.path.dirname(space_dir)
    try:
        plan = preflight.run(ctx, target, space_dir, extra_dirs)
    except preflight.PreflightError as exc:
        fail(module, ctx, 'Pre-flight failed, nothing was touched: %s' % exc, stage='preflight', changed=False)
    backup = plan['backup']
    ctx.bin_dir = ctx.find_bin_dir(common.major_of(backup.get('server_version') or backup.get('pg_basebackup_version')))
    if mode == 'disaster':
        problem = disaster.layout_problem(ctx.data_directory, ctx.identity)
        if problem:
            fail(module, ctx, 'Pre-flight failed, nothing was touched: %s' % problem, stage='preflight', changed=False)
    name = params['name'] or 'pitr-%s' % stamp
    where = ctx.data_directory if mode == 'disaster' else os.path.join(params['restore_root'], name)
    result = dict(changed=True, mode=mode, target=target['text'], plan=describe_plan(ctx, mode, plan, target, where),
                  base_backup=dict((key, backup.get(key)) for key in ('path', 'stamp', 'start_lsn', 'end_lsn', 'timeline',
                                                                      'finished_at', 'start_wal_file', 'end_wal_file')),
                  wal=dict((key, value) for key, value in plan['wal'].items() if not key.startswith('fetch')), notes=ctx.notes)
    result['wal']['staged'] = plan['stage']
    if mode == 'disaster':
        result.update(authorization_required=expected_authorization(), data_directory=ctx.data_directory)
    if module.check_mode:
        for warning in ctx.warnings:
            module.warn(warning)
        module.exit_json(**result)
    started_at = time.time()
    if mode == 'disaster':
        try:
            install_program(module, ctx, params['program_path'])
        except (OSError, UnsafePath) as exc:
            fail(module, ctx, 'could not install the WAL restore program at %s: %s' % (params['program_path'], exc), **result)
        try:
            result.update(disaster.run(ctx, plan, target, stamp))
        except pitr.RestoreError as exc:
            fail(module, ctx, 'Disaster restore failed: %s' % exc, **result)
    else:
        result.update(run_validation(module, ctx, plan, target, name, result))
    reached_target = any('recovery stopping' in line for line in result.get('evidence', []))
    result['rpo_seconds'] = rpo_seconds(target, reached_target, newest_mtime(params['wal_archive'], plan['wal']), started_at)
    verification = result.get('verification')
    if verification and verification['verdict'] == 'failed' and params['fail_on_mismatch']:
        fail(module, ctx, 'The restored copy does not match: %s' % '; '.join(verification['problems']), **result)
    for warning in ctx.warnings:
        module.warn(warning)
    module.exit_json(**result)


def install_program(module, ctx, path):
    """The WAL restore program at ``path`` (root-owned 0755); OSError or UnsafePath when it cannot be written."""
    changed_items, _diffs = _desired.plan(common.program_items(path))
    _desired.apply(module, changed_items)
    ctx.program = path


def run_validation(module, ctx, plan, target, name, result):
    params = module.params
    try:
        ensure_dir(params['restore_root'], 0, 0, 0o755)
        port = params['port'] or instance.spare_port()
    except (OSError, UnsafePath, instance.InstanceError) as exc:
        fail(module, ctx, 'cannot make the throwaway instance in %s: %s' % (params['restore_root'], exc), **result)
    ctx.instance = inst = instance.Instance(params['restore_root'], name, ctx.identity, ctx.bin_dir, port)
    try:
        inst.prepare()
        install_program(module, ctx, os.path.join(inst.directory, 'dbfleet-wal-restore'))
        out = pitr.validation(ctx, plan, target)
        if params['verify'] is not None:
            out['verification'] = common.verify_copy(ctx, inst.connection(ctx.superuser), params['verify'],
                                                     skip_unlogged=True)
    except (pitr.RestoreError, instance.InstanceError, OSError, UnsafePath) as exc:
        tail = instance.evidence(inst.log_text())[-8:]
        if not params['keep']:
            inst.remove()
        fail(module, ctx, 'Validation restore failed: %s' % exc, evidence=tail, **result)
    out['instance']['removed'] = not params['keep']
    if not params['keep']:
        inst.remove()
    return out


def newest_mtime(archive, wal):
    try:
        return os.lstat(os.path.join(archive, wal['newest_archived'])).st_mtime if wal.get('newest_archived') else None
    except OSError:
        return None


if __name__ == '__main__':
    main()

#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_dump_schedule
short_description: Host-local scheduled pg_dump that keeps running when the controller is gone
version_added: 0.1.0
description:
  - Installs, updates or removes a named dump schedule on a database host - an C(/etc/cron.d) entry and the
    host-side runner it calls - so nightly dumps run whether or not anyone is connected.
  - The runner dumps to a temporary name and renames only on success, checks the exit status of every stage of
    the pipeline, hashes (SHA-256) while it streams, writes a JSON manifest beside each dump, takes a lock so runs
    never overlap, prunes by age but never below the newest O(keep_min) good dumps, logs to a file and can copy
    each dump to S3. A failed run exits non-zero, leaves no file that looks like a backup and marks its manifest
    failed.
  - Compresses exactly once. C(zstd) is the default; with PostgreSQL 15 and older the custom format is written
    uncompressed by C(pg_dump) and piped through C(zstd), since C(pg_dump) itself only knows gzip there.
  - Before installing, it connects the way the runner will. It refuses a schedule that cannot connect, and one
    on a streaming replica whose settings let recovery cancel a long dump, unless O(allow_replica=true).
  - O(run_now=true) runs a dump immediately, exactly as cron would, and returns its manifest.
  - Check mode reports what would change (files, cron entry, with a diff) and changes nothing.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.safety
options:
  name:
    description: Name of the schedule (letters, digits, C(-), C(_)); names the cron file, config and log.
    type: str
    required: true
  state:
    description: Whether the schedule should exist. V(absent) removes cron entry and config, never dumps or logs.
    type: str
    choices: [present, absent]
    default: present
  kind:
    description:
      - V(dump) takes logical dumps with C(pg_dump) (and C(pg_dumpall --globals-only)).
      - V(basebackup) takes a physical base backup of the whole cluster with C(pg_basebackup) (tar format, WAL
        streamed into it, a C(backup_manifest) with SHA-256 checksums), the starting point of a point-in-time restore.
        The connecting role needs the REPLICATION attribute. O(databases), O(format), O(jobs) and O(globals) do
        not apply.
    type: str
    choices: [dump, basebackup]
    default: dump
  wal_archive:
    description:
      - With O(kind=basebackup), the WAL archive directory to prune after a good base backup and retention;
        segments older than the start of the oldest base backup kept are removed (C(pg_archivecleanup)), never
        anything a kept base backup needs. One WAL archive serves one base-backup schedule.
    type: path
  schedule:
    description:
      - When to run. Standard 5-field cron (V(0 3 * * *)), a nickname (V(@daily)), or the 6-field form with seconds
        first (V(0 0 3 * * *)); cron runs jobs on the minute, so the seconds field must be 0.
      - Required when O(state=present).
    type: str
  databases:
    description:
      - Databases to dump. The single item V(all) means every database that accepts connections, except templates.
    type: list
    elements: str
    default: [all]
  exclude_databases:
    description: Databases to leave out when O(databases=[all]).
    type: list
    elements: str
    default: []
  format:
    description:
      - C(pg_dump) output format. V(custom) is restorable with C(pg_restore) (selective, parallel). V(directory) dumps
        tables in parallel with O(jobs). V(plain) is SQL text.
    type: str
    choices: [custom, directory, plain]
    default: custom
  jobs:
    description: Parallel jobs for O(format=directory).
    type: int
    default: 1
  compression:
    description: Compression, applied exactly once. V(zstd) where possible (see the description).
    type: str
    choices: [zstd, gzip, lz4, none]
    default: zstd
  compression_level:
    description: Compression level; the compressor's fast default when omitted (zstd 1... 19, gzip 1... 9, lz4 1... 12).
    type: int
  dest:
    description: Directory the dumps and their manifests are written to.
    type: path
    default: /srv/backups
  retention_days:
    description: Delete dumps older than this many days...
    type: int
    default: 14
  keep_min:
    description: ...but always keep at least this many of the newest good dumps of each database (at least 1).
    type: int
    default: 3
  globals:
    description:
      - Also dump roles and tablespaces (C(pg_dumpall --globals-only)) beside the databases.
      - Defaults to V(true) for O(kind=dump); not available for O(kind=basebackup).
    type: bool
  run_as:
    description: Operating-system user the dump runs as (cron and O(run_now) alike). Owns the dumps.
    type: str
    default: postgres
  pg_bin:
    description: Directory of the C(pg_dump) to use. By default the newest one installed (it can dump older servers).
    type: path
  lock_wait:
    description: Seconds a run waits for a previous run of the same schedule to finish before it skips.
    type: int
    default: 0
  lock_timeout:
    description:
      - Seconds C(pg_dump) waits for a table lock held by another session (C(--lock-wait-timeout)) before the dump of
        that database fails, instead of waiting without end.
    type: int
    default: 300
  run_timeout:
    description:
      - Seconds a whole run may take. A run still going then is stopped, its C(pg_dump)/C(pg_basebackup) processes
        killed, nothing it was writing kept, and it is recorded as failed ("timed out").
    type: int
    default: 21600
  allow_replica:
    description:
      - Install the schedule on a streaming replica even when C(hot_standby_feedback) is off and
        C(max_standby_streaming_delay) is not -1, where recovery may cancel a long dump.
    type: bool
    default: false
  s3_bucket:
    description: Copy every good dump to this S3 bucket (boto3 on the host), verified by SHA-256.
    type: str
  s3_prefix:
    description: Key prefix in O(s3_bucket).
    type: str
    default: ''
  s3_endpoint_url:
    description: S3 endpoint for S3-compatible storage.
    type: str
  s3_region:
    description: S3 region.
    type: str
  s3_access_key:
    description: Access key for S3; stored on the host in a file only O(run_as) can read. Default is boto3's own chain.
    type: str
  s3_secret_key:
    description: Secret key for S3 (with O(s3_access_key)).
    type: str
  run_now:
    description: Run a dump now, as cron would, and return its manifest. Fails the task when the dump fails.
    type: bool
    default: false
  runner_path:
    description: Where the runner is installed (shared by all schedules on the host).
    type: path
    default: /opt/dbfleet/bin/dbfleet-pg-dump
  config_dir:
    description: Where schedule configs, passfiles and S3 credential files live.
    type: path
    default: /etc/dbfleet/pg_dump
  cron_dir:
    description: The cron drop-in directory.
    type: path
    default: /etc/cron.d
  state_dir:
    description: Where locks and the last run's summary live (one sub-directory per schedule).
    type: path
    default: /var/lib/dbfleet/pg_dump
  log_dir:
    description: Where the runner logs (one file per schedule).
    type: path
    default: /var/log/dbfleet/pg_dump
attributes:
  check_mode:
    description: Reports exactly what would change and changes nothing; O(run_now) reports a change without dumping.
    support: full
  diff_mode:
    description: Shows the cron entry and config before and after; of a secret only that it changed.
    support: full
requirements:
  - croniter on the host (Debian python3-croniter) to show the next run times; schedules are validated without it
  - boto3 on the host when S3 upload is used
notes:
  - The runner, its config and the secrets are owned by root; configs and secrets are readable by the group of
    O(run_as) (mode 0640) and cannot be changed by it. The password reaches PostgreSQL through a private passfile
    each run makes from that file, never a command line. Edit-mode backups never copy secrets.
  - O(dest) and O(wal_archive) are refused inside system directories (C(/etc), C(/usr), C(/run), ...) and C(.ssh)
    directories, after resolving symlinks; directories are created and fixed without following a symlink another
    user could have planted.
seealso:
  - module: dbfleet.postgresql.file_stat
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Nightly dump of app_prod at 03:00, two weeks kept, never fewer than 3 good dumps
  dbfleet.postgresql.pg_dump_schedule:
    name: nightly
    schedule: "0 0 3 * * *"
    databases: [app_prod]
    dest: /srv/backups
    retention_days: 14
    keep_min: 3

- name: Every database, directory format with 4 jobs, copied to S3, and run once right now
  dbfleet.postgresql.pg_dump_schedule:
    name: full
    schedule: "30 1 * * *"
    format: directory
    jobs: 4
    s3_bucket: db-offsite
    s3_prefix: "{{ inventory_hostname }}/"
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
    run_now: true
  register: dump

- name: Weekly base backup for point-in-time restore, pruning WAL no kept base backup needs
  dbfleet.postgresql.pg_dump_schedule:
    name: weekly-base
    kind: basebackup
    schedule: "0 4 * * 0"
    dest: /srv/basebackups
    keep_min: 2
    retention_days: 35
    wal_archive: /srv/wal-archive
    login_host: 127.0.0.1
    login_user: dbfleet_backup
    login_password: "{{ vault_backup_pg_password }}"

- name: Remove a schedule (dumps and logs stay)
  dbfleet.postgresql.pg_dump_schedule:
    name: nightly
    state: absent
'''

RETURN = r'''
summary:
  description: One sentence for people - what is installed, the next run, and what a run now made (or, in check mode,
    that a dump would run now).
  returned: when state is present
  type: str
  sample: 'nightly: dump of all at "0 3 * * *", next run 2026-12-02T03:00:00+00:00; ran now: app_prod-20261201T210000Z.dump.zst (21.3 MiB, sha256 5f1c...).'
cron_expression:
  description: The 5-field cron expression installed.
  returned: when state is present
  type: str
  sample: 0 3 * * *
next_runs:
  description: The next five run times, host local time.
  returned: when state is present
  type: list
  elements: str
command:
  description: The command cron runs (as O(run_as)); run it by hand to get the same dump.
  returned: when state is present
  type: str
  sample: /usr/bin/python3 /opt/dbfleet/bin/dbfleet-pg-dump --config /etc/dbfleet/pg_dump/nightly.json --quiet
cron_file:
  description: The cron drop-in file.
  returned: always
  type: str
files:
  description: Files and directories that were (or in check mode would be) created, changed or removed.
  returned: always
  type: list
  elements: str
config:
  description: The runner's configuration (it holds no secrets).
  returned: when state is present
  type: dict
is_replica:
  description: Whether the server the schedule connects to is in recovery.
  returned: when state is present
  type: bool
run:
  description: Summary of the O(run_now) dump (status, errors, pruned files), with one manifest per artifact under C(artifacts).
  returned: when run_now ran
  type: dict
'''

import json
import os
import pwd
import shlex
import sys

from ansible_collections.dbfleet.postgresql.plugins.module_utils._cron import (
    CRON_NAME_RE,
    HAS_CRONITER,
    ScheduleError,
    next_runs,
    normalize_schedule,
    render_cron_file,
)
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import (
    PgError,
    as_user,
    connection_settings,
    find_pg_tool,
    passfile_line,
    postgres_common_argument_spec,
)
from ansible_collections.dbfleet.postgresql.plugins.module_utils import _desired
from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError, run_statements
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config as runner_config
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.program import build_program
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule


def validate(module, params):
    """Reject bad input before anything is looked at or written."""
    if not CRON_NAME_RE.match(params['name']):
        module.fail_json(msg='name=%r: use letters, digits, "-" and "_" only (it names a file in /etc/cron.d)' % params['name'])
    if params['state'] == 'absent':
        return None
    try:
        expression = normalize_schedule(params['schedule'])
    except ScheduleError as exc:
        module.fail_json(msg='schedule: %s' % exc)
    if bool(params['s3_access_key']) != bool(params['s3_secret_key']):
        module.fail_json(msg='s3_access_key and s3_secret_key go together: give both, or neither to use boto3\'s own credentials')
    if (params['s3_access_key'] or params['s3_prefix'] or params['s3_endpoint_url']) and not params['s3_bucket']:
        module.fail_json(msg='S3 options are set but s3_bucket is not')
    try:
        pwd.getpwnam(params['run_as'])
    except KeyError:
        module.fail_json(msg='run_as=%s: no such user on this host' % params['run_as'])
    return expression


def paths_for(params):
    """Every file of the schedule, named the way the runner names them by default."""
    return runner_config.schedule_paths(params['name'], config_dir=params['config_dir'], state_dir=params['state_dir'],
                                        log_dir=params['log_dir'], cron_dir=params['cron_dir'])


def runner_program():
    """The runner as it will be installed: one file built from the module_utils sources (same sources, same bytes)."""
    return build_program('dbfleet-pg-dump', sys.executable)


def build_config(params, paths, connection):
    """The runner's config, built and defaulted by the runner's own code (no secrets in it)."""
    s3 = None
    if params['s3_bucket']:
        s3 = dict(bucket=params['s3_bucket'], prefix=params['s3_prefix'] or '', endpoint_url=params['s3_endpoint_url'],
                  region=params['s3_region'], credentials_file=paths['s3_credentials'] if params['s3_access_key'] else None)
    databases = params['databases']
    pg_dump = find_pg_tool('pg_dump')
    if params['kind'] == 'dump':
        # What to dump; a base backup takes the whole cluster, so the runner's defaults stand there.
        what = dict(databases='all' if databases == ['all'] else databases, exclude_databases=params['exclude_databases'],
                    format=params['format'], jobs=params['jobs'],
                    globals=True if params['globals'] is None else params['globals'], wal_archive=params['wal_archive'])
    else:
        what = dict(globals=params['globals'], wal_archive=params['wal_archive'])
        if databases != ['all'] or params['exclude_databases']:
            what.update(databases=databases, exclude_databases=params['exclude_databases'])
        if params['format'] != 'custom' or params['jobs'] != 1:
            what.update(format=params['format'], jobs=params['jobs'])
    return runner_config.build_config(
        params['name'], params['dest'],
        kind=params['kind'],
        compression=params['compression'],
        compression_level=params['compression_level'],
        retention_days=params['retention_days'],
        keep_min=params['keep_min'],
        **what,
        connection=dict(connection, passfile=paths['passfile'] if params['login_password'] else None),
        pg_bin=params['pg_bin'] or (os.path.dirname(pg_dump) if pg_dump else None),
        lock_file=paths['lock'],
        lock_wait=params['lock_wait'],
        lock_timeout=params['lock_timeout'],
        run_timeout=params['run_timeout'],
        state_dir=paths['state'],
        log_file=paths['log'],
        s3=s3,
    )


def check_server(module, params, connection):
    """Connect as the runner will; refuse a replica whose recovery may cancel a long dump."""
    try:
        rows = run_statements(module, connection, [("SELECT pg_is_in_recovery(), current_setting('hot_standby_feedback'), "
                                                    "current_setting('max_standby_streaming_delay')", None)],
                              password=params['login_password'], run_as=params['run_as'])[0]['rows']
    except PgQueryError as exc:
        if module.check_mode:
            # In a plan the role or password may be created by an earlier task that did not run either.
            module.warn('could not check the connection the dumps will use (%s); a real run refuses to install '
                        'the schedule if it still fails then' % exc)
            return None
        module.fail_json(msg='pg_dump_schedule %s: checked the connection the dumps will use and it failed, so no '
                             'schedule was installed: %s' % (params['name'], exc))
    is_replica, feedback, delay = rows[0]
    # A base backup from a standby is not cancelled by recovery; a long pg_dump can be.
    if is_replica and params['kind'] == 'dump' and not params['allow_replica'] and feedback != 'on' and delay != '-1':
        module.fail_json(msg='pg_dump_schedule %s: this server is a streaming replica with hot_standby_feedback=%s and '
                             'max_standby_streaming_delay=%s, so replaying WAL can cancel a long pg_dump ("canceling '
                             'statement due to conflict with recovery"). Set hot_standby_feedback=on (or '
                             'max_standby_streaming_delay=-1) on this replica, dump the primary instead, or set '
                             'allow_replica: true to accept the risk.' % (params['name'], feedback, delay),
                         is_replica=True)
    return is_replica


def run_now(module, params, paths, command):
    try:
        argv = as_user(command[:-1] + ['--json'], params['run_as'])
    except PgError as exc:
        module.fail_json(msg='pg_dump_schedule %s: %s' % (params['name'], exc))
    rc, out, err = module.run_command(argv, cwd='/')
    try:
        summary = json.loads(out)
    except ValueError:
        summary = None
    if rc != 0 or not summary or summary.get('status') != 'ok':
        errors = (summary or {}).get('errors') or [(err or out).strip()[-2000:] or 'runner exit status %d' % rc]
        module.fail_json(msg='pg_dump_schedule %s: the dump run now FAILED (exit %d): %s. Log: %s'
                             % (params['name'], rc, '; '.join(errors), paths['log']),
                         changed=True, run=summary, rc=rc)
    return summary


def desired_state(params, paths, config, expression, connection, command):
    """Directories first, then files, then files that must go: what this schedule needs on the host.

    Host programs are root:root 0755; configs and secrets root:<run_as's group> 0640, so the run
    user reads them and cannot change them; the directories the runner writes belong to it.
    """
    run_as = params['run_as']
    group = _desired.group_of(run_as)
    what = 'the whole cluster' if params['kind'] == 'basebackup' else ', '.join(params['databases'])
    description = 'dbfleet %s schedule "%s": %s' % (params['kind'], params['name'], what)
    items = [
        _desired.DesiredDir(os.path.dirname(params['runner_path']), mode=0o755),
        _desired.DesiredDir(params['config_dir'], mode=0o755),
        _desired.DesiredDir(paths['state'], owner=run_as, mode=0o750),
        _desired.DesiredDir(params['log_dir'], owner=run_as, mode=0o750),
        _desired.DesiredDir(params['dest'], owner=run_as, mode=0o750),
        _desired.DesiredFile(params['runner_path'], runner_program(), mode=0o755, shown=False),
        _desired.DesiredFile(paths['config'], (json.dumps(config, indent=2, sort_keys=True) + '\n').encode('utf-8'),
                             group=group, mode=0o640),
        _desired.DesiredFile(paths['cron'], render_cron_file(description, expression, run_as, command).encode('utf-8'),
                             mode=0o644),
    ]
    secrets = ((paths['passfile'], params['login_password'] and passfile_line(connection, params['login_password'])),
               (paths['s3_credentials'], params['s3_access_key'] and json.dumps(dict(
                   aws_access_key_id=params['s3_access_key'], aws_secret_access_key=params['s3_secret_key'])) + '\n'))
    for path, content in secrets:
        if content:
            items.append(_desired.DesiredFile(path, content.encode('utf-8'), group=group, mode=0o640, secret=True))
        else:
            items.append(_desired.ObsoleteFile(path, secret=True))
    return items


def summary_sentence(params, expression, result):
    """One sentence for people: what is installed, when it runs next, and what a run now did or would do."""
    what = 'base backup' if params['kind'] == 'basebackup' else 'dump of %s' % ', '.join(params['databases'])
    nxt = result.get('next_runs') or []
    text = '%s: %s at "%s"%s' % (params['name'], what, expression, ', next run %s' % nxt[0] if nxt else '')
    run = result.get('run')
    if run is None:
        return text + '.'
    if run.get('status') == 'would run now':
        return text + '; a dump would run now (check mode: nothing was run).'
    made = [a for a in run.get('artifacts') or [] if a.get('status') == 'ok']
    parts = ['%s (%s, sha256 %s...)' % (os.path.basename(a['path']), _size(a.get('size')), (a.get('sha256') or '')[:12])
             for a in made]
    return text + '; ran now: %s.' % (', '.join(parts) if parts else 'nothing was made')


def _size(num):
    if num is None:
        return '? bytes'
    for unit in ('bytes', 'KiB', 'MiB', 'GiB', 'TiB'):
        if num < 1024 or unit == 'TiB':
            return ('%d %s' % (num, unit)) if unit == 'bytes' else ('%.1f %s' % (num, unit))
        num /= 1024.0
    return '%d bytes' % num


def present(module, params, expression):
    module.require_write_destination(params['dest'], 'dest')
    if params['wal_archive']:
        module.require_write_destination(params['wal_archive'], 'wal_archive')
    paths = paths_for(params)
    connection = connection_settings(params)
    config = build_config(params, paths, connection)
    errors = runner_config.validate_config(config)
    if errors:
        module.fail_json(msg='pg_dump_schedule %s: invalid settings, nothing was changed: %s' % (params['name'], '; '.join(errors)))
    is_replica = check_server(module, params, connection)

    command = [sys.executable, params['runner_path'], '--config', paths['config'], '--quiet']
    try:
        items = desired_state(params, paths, config, expression, connection, command)
        changed_items, diffs = _desired.plan(items)
    except (UnsafePath, ScheduleError) as exc:
        module.fail_json(msg='pg_dump_schedule %s: %s; nothing was changed' % (params['name'], exc))
    result = dict(
        changed=bool(changed_items or params['run_now']), cron_expression=expression, next_runs=_next_runs(module, expression),
        cron_file=paths['cron'], command=' '.join(shlex.quote(arg) for arg in command), config=config,
        is_replica=is_replica, log_file=paths['log'], files=[item.path for item in changed_items], diff=diffs,
    )
    if not module.writes_allowed:
        if params['run_now']:
            result['run'] = dict(status='would run now')
        result['summary'] = summary_sentence(params, expression, result)
        module.exit_json(**result)

    try:
        _desired.apply(module, changed_items)
    except (OSError, UnsafePath) as exc:
        module.fail_json(msg='pg_dump_schedule %s: could not install the schedule: %s' % (params['name'], exc), **result)
    if params['run_now']:
        result['run'] = run_now(module, params, paths, command)
    result['summary'] = summary_sentence(params, expression, result)
    module.exit_json(**result)


def _next_runs(module, expression):
    if not HAS_CRONITER:
        module.warn('croniter is not installed on this host, so the next run times are not shown (install python3-croniter)')
        return []
    return next_runs(expression)


def absent(module, params):
    paths = paths_for(params)
    items = [_desired.ObsoleteFile(paths['cron']), _desired.ObsoleteFile(paths['config']),
             _desired.ObsoleteFile(paths['passfile'], secret=True), _desired.ObsoleteFile(paths['s3_credentials'], secret=True)]
    try:
        changed_items, diffs = _desired.plan(items)
    except UnsafePath as exc:
        module.fail_json(msg='pg_dump_schedule %s: %s; nothing was changed' % (params['name'], exc))
    result = dict(changed=bool(changed_items), cron_file=paths['cron'], files=[item.path for item in changed_items], diff=diffs)
    if module.writes_allowed:
        _desired.apply(module, changed_items)
    module.exit_json(**result)


def argument_spec():
    """The module's options (the connection options and its own)."""
    spec = postgres_common_argument_spec()
    spec.update(
        name=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        schedule=dict(type='str'),
        databases=dict(type='list', elements='str', default=['all']),
        exclude_databases=dict(type='list', elements='str', default=[]),
        format=dict(type='str', choices=['custom', 'directory', 'plain'], default='custom'),
        jobs=dict(type='int', default=1),
        compression=dict(type='str', choices=['zstd', 'gzip', 'lz4', 'none'], default='zstd'),
        compression_level=dict(type='int'),
        dest=dict(type='path', default='/srv/backups'),
        retention_days=dict(type='int', default=14),
        keep_min=dict(type='int', default=3),
        globals=dict(type='bool'),
        kind=dict(type='str', choices=['dump', 'basebackup'], default='dump'),
        wal_archive=dict(type='path'),
        run_as=dict(type='str', default='postgres'),
        pg_bin=dict(type='path'),
        lock_wait=dict(type='int', default=0),
        lock_timeout=dict(type='int', default=300),
        run_timeout=dict(type='int', default=21600),
        allow_replica=dict(type='bool', default=False),
        s3_bucket=dict(type='str'),
        s3_prefix=dict(type='str', default=''),
        s3_endpoint_url=dict(type='str'),
        s3_region=dict(type='str'),
        s3_access_key=dict(type='str', no_log=True),
        s3_secret_key=dict(type='str', no_log=True),
        run_now=dict(type='bool', default=False),
        runner_path=dict(type='path', default=os.path.join(runner_config.PROGRAM_DIR, 'dbfleet-pg-dump')),
        config_dir=dict(type='path', default=runner_config.DEFAULT_DIRS['config_dir']),
        cron_dir=dict(type='path', default=runner_config.DEFAULT_DIRS['cron_dir']),
        state_dir=dict(type='path', default=runner_config.DEFAULT_DIRS['state_dir']),
        log_dir=dict(type='path', default=runner_config.DEFAULT_DIRS['log_dir']),
    )
    return spec


def main():
    module = DbfleetModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[('state', 'present', ('schedule',))])
    params = module.params
    expression = validate(module, params)
    if params['state'] == 'absent':
        absent(module, params)
    present(module, params, expression)


if __name__ == '__main__':
    main()

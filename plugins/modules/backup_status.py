#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_status
short_description: Every backup fact of a host in one round trip - schedules, last runs, newest dumps, history, off-site
version_added: 0.2.0
description:
  - Reads every dump schedule installed on the host by M(dbfleet.postgresql.pg_dump_schedule) (the configs in
    O(config_dir)) and, for each, what it left behind - its last run (C(last-run.json) - status, when, errors,
    warnings, databases not dumped), a run that died without finishing (C(running.json) left behind by a process that
    is gone), and per database the newest good dump with its manifest history (sizes over time, newest first, at
    most O(history) entries). Base-backup schedules report their newest base backup the same way.
  - Proves the newest good dump of each database - freshness against O(max_age) (base backups against
    O(basebackup_max_age)); its size against the median of the previous O(size_baseline) good dumps
    (O(max_size_drop_pct)), so one odd night does not hide a collapse and one small dump does not pass as normal;
    its size (always) and SHA-256 (with O(checksum=true), streamed in one pass) against its manifest; that it is a
    readable archive (O(validate), C(pg_restore --list), the whole compressed stream checked in the same pass as the
    hash); and, when the manifest names an off-site copy, that the object is in S3 with the manifest's size, SHA-256
    metadata and S3 checksum (O(check_offsite), boto3 on the host).
  - Every problem is a sentence in RV(violations); RV(healthy) is true when there are none. RV(dbfleet_report) is a
    compact summary the C(dbfleet.postgresql.fleet_report) callback turns into the fleet table and charts.
  - Never changes anything, in any mode. Reads as root without following symlinks, never opens a FIFO, and never reads
    the schedules' secrets (C(NAME.pgpass), C(NAME.s3.json) are not opened, S3 credentials never appear in a result).
extends_documentation_fragment:
  - dbfleet.postgresql.safety
  - dbfleet.postgresql.read_only
options:
  config_dir:
    description: Where the schedule configs are (C(NAME.json)).
    type: path
    default: /etc/dbfleet/pg_dump
  schedules:
    description:
      - Only these schedules (by name); all of them when empty. With O(require_schedule=true) each one missing is a
        violation.
    type: list
    elements: str
    default: []
  databases:
    description:
      - Only the dumps of these databases (V(globals) for the roles, V(base) for base backups); every database the
        schedules dump when empty.
    type: list
    elements: str
    default: []
  require_schedule:
    description: A host without any dump schedule (of O(schedules), when given) is a violation (nothing backs it up).
    type: bool
    default: false
  max_age:
    description:
      - Oldest the newest good dump of each database may be, in seconds or as a duration (V(26h), V(1d12h)). The age
        is counted from the UTC stamp in the dump's name (when the run started), like the runner's retention does.
    type: str
  basebackup_max_age:
    description: Oldest the newest good base backup may be (as O(max_age)); base backups are not judged by O(max_age).
    type: str
  max_size_drop_pct:
    description:
      - Largest allowed shrink, in percent, of the newest good dump against the median size of the previous
        O(size_baseline) good dumps of the same database (on disk).
    type: float
  size_baseline:
    description: How many previous good dumps the median for O(max_size_drop_pct) is taken over.
    type: int
    default: 5
  history:
    description: Most manifests reported per database in RV(schedules[].databases[].history), newest first.
    type: int
    default: 30
  checksum:
    description:
      - Re-compute the SHA-256 of each newest good dump and base backup (streamed, one pass) and compare it with the
        manifest. Without it only sizes are compared.
    type: bool
    default: false
  validate:
    description:
      - Check each newest good dump is a readable archive (C(pg_restore --list); a plain SQL dump must end with
        C(pg_dump)'s closing line; a compressed stream must decompress to its end). Parsers run as the file's owner.
    type: bool
    default: true
  pg_restore:
    description: Path of the C(pg_restore) to use for O(validate). By default the newest one installed.
    type: path
  check_offsite:
    description:
      - Ask S3 (C(head_object)) about the off-site copy each newest good dump's and base backup's manifest names.
    type: bool
    default: true
  offsite_timeout:
    description: Seconds S3 may take to answer one request (no retries).
    type: int
    default: 10
  fail_on_violation:
    description: Fail the host when RV(violations) is not empty.
    type: bool
    default: false
requirements:
  - boto3 on the host for O(check_offsite) when a manifest names an S3 copy (Debian python3-boto3)
notes:
  - The path deny-list applies to O(config_dir), to every schedule's destination and state directory and to every
    artifact looked at.
  - The newest dump is judged by the stamp in its name, and a stamp more than five minutes ahead of the host clock is
    set aside as not made by this host's dumps (a wrong clock or a planted file), as the runner's retention does.
seealso:
  - module: dbfleet.postgresql.pg_dump_schedule
  - module: dbfleet.postgresql.file_stat
  - module: dbfleet.postgresql.wal_archive_status
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Did every schedule run, is every newest dump fresh, the right size, restorable and off-site?
  dbfleet.postgresql.backup_status:
    max_age: 26h
    basebackup_max_age: 8d
    max_size_drop_pct: 50
    checksum: true
    fail_on_violation: true

- name: Only the nightly schedule, sizes only (no hashing), no S3
  dbfleet.postgresql.backup_status:
    schedules: [nightly]
    max_age: 26h
    check_offsite: false
  register: backups
'''

RETURN = r'''
healthy:
  description: True when there are no violations.
  returned: always
  type: bool
violations:
  description: Every problem found, one sentence each, naming the schedule, the file and the number. Empty when all is
    well.
  returned: always
  type: list
  elements: str
warnings_found:
  description: Things worth knowing that are not a violation (a run skipped because another held the lock, a run in
    progress).
  returned: always
  type: list
  elements: str
schedules:
  description: One entry per schedule found.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The schedule's name.
      type: str
    kind:
      description: V(dump) or V(basebackup).
      type: str
    config:
      description: Path of its config.
      type: str
    dest:
      description: Where its artifacts are.
      type: str
    last_run:
      description: The last run's summary (status, started_at, finished_at, errors, warnings, not_dumped, exit_code,
        previous_run) plus age_seconds; null when it never ran (or its state was removed).
      type: dict
    running:
      description: A run holding the lock (pid, started_at, alive), null when none.
      type: dict
    died:
      description: How a run that died without finishing is reported, null when none did.
      type: str
    databases:
      description: Per database (C(globals) and C(base) included), the newest good dump and the history.
      type: list
      elements: dict
      contains:
        db:
          description: Database name (V(globals) for the roles, V(base) for base backups).
          type: str
        kind:
          description: V(database), V(globals) or V(basebackup), from the manifest.
          type: str
        newest:
          description: The newest good dump - path, stamp, age_seconds, size, recorded_size, sha256 (with checksum),
            compression, checksum (V(ok), V(size-only), V(mismatch)), valid, archive, baseline_size, size_change_pct,
            offsite; null when there is none.
          type: dict
        history:
          description: Newest first - stamp, status (V(ok), V(failed), V(missing), V(unknown)), size (on disk when the
            dump is there, else as recorded), recorded_size, error.
          type: list
          elements: dict
basebackup:
  description: The newest good base backup of all base-backup schedules (path, stamp, age_seconds, size), null when none.
  returned: always
  type: dict
dbfleet_report:
  description: A compact summary for the C(dbfleet.postgresql.fleet_report) callback - check, healthy, violations,
    dumps (schedule, db, kind, path, stamp, age_seconds, size, baseline_size, size_change_pct, checksum, valid,
    offsite, history as [stamp, size, status] oldest first), basebackup, schedules (name, kind, last_status,
    finished_at, died).
  returned: always
  type: dict
'''

import datetime
import os
import stat
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import find_pg_tool
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import iso
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import format_duration, format_size, parse_duration
from ansible_collections.dbfleet.postgresql.plugins.module_utils._verify import schedules as sched
from ansible_collections.dbfleet.postgresql.plugins.module_utils._verify.artifact import (
    FUTURE_SLACK,
    READ_ERRORS,
    compare_manifest,
    measure,
    median,
    shrink_pct,
    validate_archive,
)
from ansible_collections.dbfleet.postgresql.plugins.module_utils._verify.offsite import OffsiteError, check_offsite, client_for


def _age(when, now):
    return round(now - when.timestamp(), 3)


def _parse_time(text):
    try:
        return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


class Check:
    """One run of the module: the thresholds, and the violations and warnings found so far."""

    def __init__(self, module, thresholds):
        self.module = module
        self.params = module.params
        self.thresholds = thresholds
        self.now = time.time()
        self.violations = []
        self.warnings = []
        self.pg_restore = None
        self._clients = {}

    def allowed(self, path, option):
        self.module.require_allowed_path(path, option)

    # --- a schedule ------------------------------------------------------------------------------------------

    def schedule(self, name, path):
        cfg, problems = sched.load_schedule(name, path)
        report = dict(name=name, config=path, kind=None, dest=None, last_run=None, running=None, died=None, databases=[])
        if cfg is None:
            self.violations.extend('schedule %s: %s' % (name, problem) for problem in problems)
            return report if problems else None
        report.update(kind=cfg['kind'], dest=cfg['dest'], state_dir=cfg['state_dir'],
                      offsite=dict(bucket=cfg['s3']['bucket'], prefix=cfg['s3']['prefix']) if cfg['s3'] else None)
        self.allowed(cfg['state_dir'], 'state_dir of schedule %s' % name)
        self.allowed(cfg['dest'], 'dest of schedule %s' % name)
        self._run_state(report, cfg)
        try:
            entries = sched.scan_dest(cfg['dest'])
        except READ_ERRORS as exc:
            self.violations.append('schedule %s: cannot list its destination %s: %s' % (name, cfg['dest'], exc))
            return report
        if entries is None:
            self.violations.append('schedule %s: its destination %s does not exist: no dump was ever written there'
                                   % (name, cfg['dest']))
            return report
        dbs = sched.by_database(entries, name)
        wanted = self.params['databases']
        if wanted:
            dbs = dict((db, items) for db, items in dbs.items() if db in wanted)
        expected = [db for db in (cfg['databases'] if isinstance(cfg['databases'], list) else []) if not wanted or db in wanted]
        for db in expected:
            if db not in dbs:
                self.violations.append('schedule %s: no dump of %s in %s at all, though the schedule lists it: the runs '
                                       'fail before it, or write elsewhere' % (name, db, cfg['dest']))
        for db in sorted(dbs):
            report['databases'].append(self._database(cfg, db, dbs[db]))
        if not dbs and report['last_run'] is None:
            self.violations.append('schedule %s has no dump in %s and no record of any run: it has never run (its first '
                                   'run is at the next scheduled time; run it now with run_now)' % (name, cfg['dest']))
        return report

    def _run_state(self, report, cfg):
        try:
            state = sched.run_state(cfg['state_dir'])
        except READ_ERRORS as exc:
            self.violations.append('schedule %s: cannot read its state in %s: %s' % (cfg['name'], cfg['state_dir'], exc))
            return
        self.violations.extend('schedule %s: %s' % (cfg['name'], problem) for problem in state['problems'])
        last = state['last_run']
        if last is not None:
            finished = _parse_time(last.get('finished_at') or last.get('started_at'))
            last['age_seconds'] = None if finished is None else round(self.now - finished, 3)
            when = '%s, %s ago' % (last.get('finished_at'), format_duration(last['age_seconds'])) if finished else 'unknown time'
            if last.get('status') == 'failed':
                self.violations.append('schedule %s: the last run (finished %s) FAILED: %s' % (
                    cfg['name'], when, '; '.join(str(e) for e in last.get('errors') or []) or 'no reason recorded'))
            elif last.get('status') == 'skipped':
                self.warnings.append('schedule %s: the last run (%s) was skipped: %s' % (
                    cfg['name'], when, '; '.join(str(e) for e in last.get('errors') or [])))
        report.update(last_run=last, running=state['running'], died=state['died'])
        if state['died']:
            self.violations.append('schedule %s: the %s (running.json is still in %s): that run\'s dumps are missing or '
                                   'partial - the log %s says how far it got' % (cfg['name'], state['died'],
                                                                                 cfg['state_dir'], cfg['log_file']))
        elif state['running']:
            self.warnings.append('schedule %s: a run is in progress (pid %s, started %s)'
                                 % (cfg['name'], state['running']['pid'], state['running']['started_at']))

    # --- a database's artifacts --------------------------------------------------------------------------------

    def _database(self, cfg, db, entries):
        horizon = self.now + FUTURE_SLACK
        limit = self.params['history']
        history, good, future = [], [], []
        for entry in entries:
            if entry['when'].timestamp() > horizon:
                future.append(entry)
                continue
            path = sched.artifact_path(cfg['dest'], entry)
            size = None
            if path and entry['status'] == 'ok' and not stat.S_ISDIR(entry['dumps'][os.path.basename(path)].st_mode):
                size = entry['dumps'][os.path.basename(path)].st_size
            manifest = entry['manifest'] or {}
            item = dict(stamp=entry['stamp'], status=entry['status'], recorded_size=manifest.get('size'),
                        size=size if size is not None else manifest.get('size'), error=manifest.get('error'), path=path)
            if entry['status'] == 'ok':
                good.append((entry, item))
            history.append(item)
        for entry in future:
            self.violations.append('%s: the %s dump stamped %s is in the future: not counted as the newest (a wrong '
                                   'clock, or a file this host\'s dumps did not make)' % (cfg['name'], db, entry['stamp']))
        kind = next((e['manifest'].get('kind') for e in entries if e['manifest']), None) or (
            'basebackup' if cfg['kind'] == 'basebackup' else 'database')
        report = dict(db=db, kind=kind, schedule=cfg['name'], newest=None, history=history[:limit])
        if not good:
            newest = history[0] if history else None
            why = ('the newest, %s, %s: %s' % (newest['stamp'], newest['status'].upper(), newest['error'] or 'no reason recorded')
                   if newest else 'none at all')
            self.violations.append('schedule %s: no good dump of %s in %s (%s)' % (cfg['name'], db, cfg['dest'], why))
            return report
        entry, item = good[0]
        if history[0] is not item and history[0]['status'] == 'failed':
            self.violations.append('schedule %s: the newest dump of %s, %s, FAILED: %s (the newest good one is %s)'
                                   % (cfg['name'], db, history[0]['stamp'], history[0]['error'] or 'no reason recorded',
                                      entry['stamp']))
        previous = [i['size'] for _e, i in good[1:1 + self.params['size_baseline']] if i['size'] is not None]
        report['newest'] = self._newest(cfg, db, kind, entry, item, previous)
        return report

    def _newest(self, cfg, db, kind, entry, item, previous):
        path = item['path']
        self.allowed(path, 'an artifact of schedule %s' % cfg['name'])
        is_base = kind == 'basebackup'
        newest = dict(path=path, stamp=entry['stamp'], age_seconds=_age(entry['when'], self.now),
                      recorded_size=item['recorded_size'], checksum=None, valid=None, offsite=None)
        max_age = self.thresholds['basebackup_max_age' if is_base else 'max_age']
        what = 'base backup' if is_base else 'dump of %s' % db
        if max_age is not None and newest['age_seconds'] > max_age:
            self.violations.append('%s is the newest good %s (schedule %s), %s old, older than %s %s: the last %s did not '
                                   'run or did not succeed' % (path, what, cfg['name'], format_duration(newest['age_seconds']),
                                                               'basebackup_max_age' if is_base else 'max_age',
                                                               format_duration(max_age), 'base backups' if is_base else 'dumps'))
        validate = self.params['validate']
        try:
            is_dir = stat.S_ISDIR(entry['dumps'][os.path.basename(path)].st_mode)
            measured = measure(path, checksum=self.params['checksum'], inspect=validate, is_dir=is_dir)
        except READ_ERRORS as exc:
            self.violations.append('cannot read %s, the newest good %s: %s' % (path, what, exc))
            return newest
        size = measured['size']
        item['size'] = size
        newest.update(size=size, size_human=format_size(size), compression=measured['compression'])
        if measured['sha256']:
            newest['sha256'] = measured['sha256']
        info, problems = compare_manifest(path, size, measured['sha256'], sched.sidecar(cfg['dest'], entry), entry['manifest'])
        newest['manifest'] = info
        if is_base and size != info['size']:
            problems.extend(self._base_files(path, entry['manifest']))
        newest['checksum'] = 'mismatch' if problems else ('ok' if measured['sha256'] else 'size-only')
        self.violations.extend(problems)
        if previous:
            baseline = median(previous)
            newest.update(baseline_size=baseline, size_change_pct=-shrink_pct(size, baseline) or 0.0)
            limit = self.thresholds['max_size_drop_pct']
            drop = shrink_pct(size, baseline)
            if limit is not None and drop > limit:
                self.violations.append('%s is %s, %.1f%% smaller than the median %s of the previous %d good %ss: a dump '
                                       'that shrinks this much usually means pg_dump failed mid-run, or data is gone'
                                       % (path, format_size(size), drop, format_size(baseline), len(previous), what))
        if validate:
            archive, problem = validate_archive(path, measured, self._pg_restore())
            newest.update(archive=archive, valid=problem is None)
            if problem:
                self.violations.append(problem)
        newest['offsite'] = self._offsite(cfg, entry['manifest'], path)
        return newest

    def _base_files(self, path, manifest):
        """Which files of a base backup differ from its manifest's listing, in words."""
        problems = []
        for rel, recorded in sorted((manifest.get('files') or {}).items()):
            try:
                size = os.lstat(os.path.join(path, rel)).st_size
            except OSError:
                problems.append('%s/%s is missing: the base backup is incomplete' % (path, rel))
                continue
            if size != (recorded or {}).get('size'):
                problems.append('%s/%s is %d bytes, its manifest says %s' % (path, rel, size, (recorded or {}).get('size')))
        return problems

    def _pg_restore(self):
        if self.pg_restore is None:
            self.pg_restore = find_pg_tool('pg_restore', self.params['pg_restore']) or ''
        return self.pg_restore

    # --- off-site ------------------------------------------------------------------------------------------------

    def _offsite(self, cfg, manifest, path):
        offsite = manifest.get('offsite')
        if not offsite:
            return None
        where = 's3://%s/%s' % (offsite.get('bucket'), offsite.get('key'))
        if not offsite.get('verified'):
            self.violations.append('the off-site copy %s of %s was not verified when it was uploaded: %s'
                                   % (where, path, offsite.get('error') or 'no reason recorded'))
            return dict(bucket=offsite.get('bucket'), key=offsite.get('key'), status='unverified')
        if not self.params['check_offsite']:
            return dict(bucket=offsite.get('bucket'), key=offsite.get('key'), status='unchecked')
        if not cfg['s3']:
            self.violations.append('the manifest of %s names the off-site copy %s, but schedule %s has no s3 settings to '
                                   'check it with' % (path, where, cfg['name']))
            return dict(bucket=offsite.get('bucket'), key=offsite.get('key'), status='unchecked')
        try:
            client = self._client(cfg)
            facts, problems = check_offsite(client, manifest, path)
        except OffsiteError as exc:
            self.violations.append(str(exc))
            return dict(bucket=offsite.get('bucket'), key=offsite.get('key'), status='error')
        self.violations.extend(problems)
        facts['status'] = 'ok' if not problems else ('missing' if not facts['present'] else 'mismatch')
        return facts

    def _client(self, cfg):
        if cfg['name'] not in self._clients:
            self._clients[cfg['name']] = client_for(cfg['s3'], self.params['offsite_timeout'])
        return self._clients[cfg['name']]


def _report(check, schedules):
    """The compact summary the fleet_report callback reads."""
    dumps, base = [], None
    for schedule in schedules:
        for database in schedule['databases']:
            newest = database['newest'] or {}
            entry = dict(schedule=schedule['name'], db=database['db'], kind=database['kind'], path=newest.get('path'),
                         stamp=newest.get('stamp'), age_seconds=newest.get('age_seconds'), size=newest.get('size'),
                         baseline_size=newest.get('baseline_size'), size_change_pct=newest.get('size_change_pct'),
                         checksum=newest.get('checksum'), valid=newest.get('valid'),
                         offsite=(newest.get('offsite') or {}).get('status'),
                         history=[[h['stamp'], h['size'], h['status']] for h in reversed(database['history'])])
            if database['kind'] == 'basebackup':
                if newest and (base is None or newest['stamp'] > base['stamp']):
                    base = entry
            else:
                dumps.append(entry)
    return dict(check='backups', healthy=not check.violations, violations=check.violations, dumps=dumps, basebackup=base,
                schedules=[dict(name=s['name'], kind=s['kind'], last_status=(s['last_run'] or {}).get('status'),
                                finished_at=(s['last_run'] or {}).get('finished_at'), died=s['died']) for s in schedules])


def main():
    module = DbfleetModule(
        argument_spec=dict(
            config_dir=dict(type='path', default=sched.CONFIG_DIR),
            schedules=dict(type='list', elements='str', default=[]),
            databases=dict(type='list', elements='str', default=[]),
            require_schedule=dict(type='bool', default=False),
            max_age=dict(type='str'),
            basebackup_max_age=dict(type='str'),
            max_size_drop_pct=dict(type='float'),
            size_baseline=dict(type='int', default=5),
            history=dict(type='int', default=30),
            checksum=dict(type='bool', default=False),
            validate=dict(type='bool', default=True),
            pg_restore=dict(type='path'),
            check_offsite=dict(type='bool', default=True),
            offsite_timeout=dict(type='int', default=10),
            fail_on_violation=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        thresholds = dict(max_age=parse_duration(params['max_age'], 'max_age'),
                          basebackup_max_age=parse_duration(params['basebackup_max_age'], 'basebackup_max_age'),
                          max_size_drop_pct=params['max_size_drop_pct'])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    drop = params['max_size_drop_pct']
    if drop is not None and not 0 <= drop <= 100:
        module.fail_json(msg='max_size_drop_pct must be between 0 and 100 (got %s)' % drop)
    for option, low, high in (('size_baseline', 1, 1000), ('history', 1, 10000), ('offsite_timeout', 1, 300)):
        if not low <= params[option] <= high:
            module.fail_json(msg='%s must be from %d to %d (got %d)' % (option, low, high, params[option]))

    check = Check(module, thresholds)
    try:
        found = sched.config_files(params['config_dir'])
    except READ_ERRORS as exc:
        module.fail_json(msg='cannot list the schedule configs in %s: %s' % (params['config_dir'], exc))
    found = found or []
    if params['schedules']:
        names = [name for name, _path in found]
        for wanted in params['schedules']:
            if wanted not in names and params['require_schedule']:
                check.violations.append('schedule %s is not installed on this host (no %s/%s.json)'
                                        % (wanted, params['config_dir'], wanted))
        found = [(name, path) for name, path in found if name in params['schedules']]
    if not found and params['require_schedule']:
        check.violations.append('no dump schedule is installed on this host (no config in %s): nothing backs it up - '
                                'install one with playbooks/nightly_backup.yml (dbfleet.postgresql.backup)'
                                % params['config_dir'])
    schedules = [report for report in (check.schedule(name, path) for name, path in found) if report is not None]
    bases = [d['newest'] for s in schedules for d in s['databases'] if d['kind'] == 'basebackup' and d['newest']]
    base = max(bases, key=lambda n: n['stamp']) if bases else None
    result = dict(changed=False, healthy=not check.violations, violations=check.violations, warnings_found=check.warnings,
                  schedules=schedules, checked_at=iso(datetime.datetime.now(datetime.timezone.utc)),
                  thresholds=thresholds,
                  basebackup=dict((k, base.get(k)) for k in ('path', 'stamp', 'age_seconds', 'size')) if base else None,
                  dbfleet_report=_report(check, schedules))
    if check.violations and params['fail_on_violation']:
        module.fail_json(msg='; '.join(check.violations), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

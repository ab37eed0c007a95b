#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_migrate
short_description: Ordered SQL migrations with a version table, an advisory lock and a rolled-back dry run
version_added: 0.3.0
description:
  - Applies the SQL migrations of a directory on the host to one database, in version order, each in its own
    transaction, and records each in a version table (O(table)) with its version, name, SHA-256 checksum, time applied,
    duration and whether it ran outside a transaction. Runs through psycopg 3 as the OS user O(run_as), in one
    connection for the whole run; the SQL reaches the server on the query process's stdin, never on a command line.
  - "Naming: C(<version>_<name>.sql) applies a migration and the optional C(<version>_<name>.down.sql) reverts it, for
    example C(0007_add_index.sql) and C(0007_add_index.down.sql). The version is a whole number (leading zeros are
    fine, C(0007) is 7), the name letters, digits, C(_) and C(-). Hidden files and files not ending in C(.sql) are not
    migrations. Any other C(.sql) name, a name with a control character, two files with one version, a down file
    without its migration, a symlink and anything but a regular file are refused before anything runs."
  - "Markers, in the comment lines at the top of a file: C(-- dbfleet:no-transaction) runs the file's statements one
    by one outside a transaction (C(CREATE INDEX CONCURRENTLY), C(VACUUM)); the run says so in RV(applied), and such a
    file cannot be dry-run. C(-- dbfleet:lock-timeout=30s) and C(-- dbfleet:statement-timeout=2h) give one file its
    own timeouts. An unknown marker is refused. A transactional file containing C(BEGIN)/C(COMMIT)/C(ROLLBACK), or a
    statement that cannot run in a transaction, is refused with what to change."
  - Two runs never interleave - a run holds an advisory lock (its key derived from the table's name) from before it
    reads the version table until it ends. Another run waits up to O(lock_wait), then fails naming the session that
    holds it (pid, application_name, client, since when, what it runs).
  - Drift is an error, never skipped - an applied file whose checksum changed (both checksums are shown), an applied
    version without its file (an older ref), a migration below the highest applied version that was never applied.
  - Every migration runs with O(lock_timeout) and O(statement_timeout), so that it neither queues every other query
    behind a lock it waits for nor runs without end.
  - Check mode (and inventory C(dbfleet_mode=plan)) is the dry run - the pending migrations run inside one
    transaction that is rolled back - reporting what would apply and whether it would succeed, with the error of the
    file that would fail. The dry run stops before the first non-transactional file - it and the files after it are
    reported in RV(dry_run.not_dry_runnable). A dry run that would fail fails the task; nothing is changed either way.
  - A streaming replica (a server in recovery) is not a failure - the module reports RV(read_only=true) and the version
    it has replayed; the change reaches it from its primary.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.connect_as
  - dbfleet.postgresql.safety
options:
  db:
    description: The database to migrate; the connection goes there (O(login_db) is not used by this module).
    type: str
    required: true
  path:
    description:
      - The directory holding the migration files, on the host (absolute; no C(..) component). Another user may own
        it - it is read without following symlinks it could have planted.
    type: path
    required: true
  state:
    description:
      - V(up) applies the pending migrations (up to O(target) when given); V(down) reverts applied migrations above
        O(target) with their C(.down.sql) files, newest first; V(status) only reports (read-only, no lock).
    type: str
    choices: [up, down, status]
    default: up
  target:
    description:
      - The version to migrate to - a migration's version, or V(0) with O(state=down) to revert everything.
        Required with O(state=down).
    type: int
  table:
    description: The version table, schema-qualified; created (with its schema) by the first run that applies something.
    type: str
    default: dbfleet.schema_migrations
  lock_wait:
    description: How long to wait for another run's lock, in seconds or as a duration (V(90s), V(5m)).
    type: str
    default: 60s
  lock_timeout:
    description:
      - How long a statement of a migration may wait for a lock on a table before the migration fails (and is rolled
        back), rather than holding up every query that queues behind it. Seconds or a duration.
    type: str
    default: 10s
  statement_timeout:
    description: How long one statement of a migration may run. Seconds or a duration (V(30m), V(2h)).
    type: str
    default: 30m
attributes:
  check_mode:
    description: The dry run - pending migrations applied in a transaction that is rolled back; changes nothing.
    support: full
  diff_mode:
    description: The applied migrations (version and file) before and after.
    support: full
requirements:
  - psycopg 3 on the host (Debian/Ubuntu python3-psycopg, RHEL-family python3-psycopg3)
notes:
  - Write non-transactional migrations so that they can run again (C(CREATE INDEX CONCURRENTLY IF NOT EXISTS)) - if
    one fails halfway, its earlier statements stay and it is not recorded; a failed C(CREATE INDEX CONCURRENTLY)
    leaves an invalid index to drop first.
  - The dry run really runs the SQL, inside a transaction - it takes the same locks for as long as it runs (bounded by
    O(lock_timeout)), and what no transaction undoes (sequence values) is not undone.
  - The role C(dbfleet.postgresql.migrate) (and C(playbooks/migrate.yml)) fetches the files at a git ref, or from the
    controller, and runs this module across a group, ending with a table of every host.
seealso:
  - module: dbfleet.postgresql.pg_server_info
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Apply the pending migrations
  dbfleet.postgresql.pg_migrate:
    db: app_prod
    path: /srv/migrations/db
  register: migrated

- name: What would apply, and would it succeed? (nothing changes)
  dbfleet.postgresql.pg_migrate:
    db: app_prod
    path: /srv/migrations/db
  check_mode: true

- name: Go back to version 6 (runs 0009, 0008 and 0007's .down.sql files)
  dbfleet.postgresql.pg_migrate:
    db: app_prod
    path: /srv/migrations/db
    state: down
    target: 6

- name: A host whose local connections need a password, with a long backfill
  dbfleet.postgresql.pg_migrate:
    db: app_prod
    path: /srv/migrations/db
    login_user: postgres
    login_password: "{{ vault_pg_admin_password }}"
    statement_timeout: 2h
'''

RETURN = r'''
state:
  description: The state asked for.
  returned: always
  type: str
database:
  description: The database.
  returned: always
  type: str
table:
  description: The version table.
  returned: always
  type: str
read_only:
  description: True on a streaming replica (in recovery) - nothing was tried there; the change comes from its primary.
  returned: always
  type: bool
version_before:
  description: The highest applied version when the run began (0 - none).
  returned: when the server was reached
  type: int
current_version:
  description: The highest applied version now (in check mode, still the one before).
  returned: when the server was reached
  type: int
target:
  description: The target version asked for, or null.
  returned: always
  type: int
applied:
  description: The migrations this run applied (with O(state=down), reverted), in order, each with C(version),
    C(name), C(file), C(non_transactional) and C(seconds).
  returned: always
  type: list
  elements: dict
  sample: [{version: 7, name: add_index, file: 0007_add_index.sql, non_transactional: true, seconds: 0.42}]
would_apply:
  description: In check mode, the migrations a real run would apply (with O(state=down), revert).
  returned: in check mode
  type: list
  elements: dict
pending:
  description: Migrations not applied (after this run), up to the target.
  returned: when the server was reached
  type: list
  elements: dict
dry_run:
  description: In check mode, what the dry run found.
  returned: in check mode, when something would change
  type: dict
  contains:
    would_succeed:
      description: Whether the files tried succeeded; null when none could be tried.
      type: bool
    tried:
      description: The files run in the transaction that was rolled back, each with C(seconds), as RV(applied).
      type: list
      elements: dict
    not_dry_runnable:
      description: The first non-transactional file and the files after it, which the dry run could not try.
      type: list
      elements: dict
    failed:
      description: The file that would fail, as RV(failed_migration); null when none would.
      type: dict
failed_migration:
  description: The migration that failed - C(version), C(file), C(error), C(sqlstate), C(line) (in the file, when
    PostgreSQL says where), C(detail), C(hint), C(context), C(non_transactional), C(statements_done) (of a
    non-transactional file, the statements that took effect).
  returned: when a migration failed
  type: dict
seconds:
  description: How long the migrations took, in all.
  returned: always
  type: float
lock:
  description: The advisory lock - C(key) and C(waited_seconds) (null when not taken, as with O(state=status)).
  returned: always
  type: dict
summary:
  description: One sentence saying what happened on this host.
  returned: always
  type: str
'''

import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath
from ansible_collections.dbfleet.postgresql.plugins.module_utils._migrate import database as sql
from ansible_collections.dbfleet.postgresql.plugins.module_utils._migrate import plan as planning
from ansible_collections.dbfleet.postgresql.plugins.module_utils._migrate.files import read_directory
from ansible_collections.dbfleet.postgresql.plugins.module_utils._look import MAX_CONNECT_TIMEOUT, look_argument_spec
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError, Session
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import connection_settings
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import parse_duration

APPNAME = 'dbfleet pg_migrate'


def options_from(params):
    """The checked options: ``(options, problem)``; ``problem`` is a sentence when one is unusable."""
    try:
        schema, table = sql.parse_table(params['table'])
        options = dict(schema=schema, table=table, lock_wait=parse_duration(params['lock_wait'], 'lock_wait'),
                       lock_timeout=parse_duration(params['lock_timeout'], 'lock_timeout'),
                       statement_timeout=parse_duration(params['statement_timeout'], 'statement_timeout'))
        sql.timeout_ms(options['lock_timeout'], 'lock_timeout')
        sql.timeout_ms(options['statement_timeout'], 'statement_timeout')
    except ValueError as exc:
        return None, str(exc)
    path, db = params['path'], params['db']
    if not path.startswith('/') or '..' in path.split('/'):
        return None, 'path=%r: give the migration directory as an absolute path without ".." components' % path
    if '=' in db or db.startswith(('postgres://', 'postgresql://')):
        return None, 'db=%r: give a database name, not a connection string' % db
    if params['target'] is not None and params['target'] < 0:
        return None, 'target must be 0 or a migration version, got %d' % params['target']
    if params['state'] == 'down' and params['target'] is None:
        return None, 'state=down needs a target: the version to go back to (0 reverts every migration)'
    if not 1 <= params['connect_timeout'] <= MAX_CONNECT_TIMEOUT:
        return None, 'connect_timeout must be from 1 to %d seconds, got %d' % (MAX_CONNECT_TIMEOUT, params['connect_timeout'])
    return options, None


class Run(object):
    """One pg_migrate run on one database: connect, lock, compare, then dry-run or apply, and say what happened."""

    def __init__(self, module, options, migrations):
        self.module = module
        self.params = module.params
        self.options = options
        self.migrations = migrations
        self.state = self.params['state']
        self.schema, self.table = options['schema'], options['table']
        self.key = sql.lock_key(self.schema, self.table)
        self.session = None
        self.running = None
        self.applied = {}
        self.result = dict(changed=False, state=self.state, database=self.params['db'],
                           table='%s.%s' % (self.schema, self.table), target=self.params['target'], read_only=False,
                           applied=[], seconds=0.0, lock=dict(key=self.key, waited_seconds=None))

    # --- talking to the server -------------------------------------------------------------------------------

    def ask(self, statement, what):
        """Rows (dicts) of one internal statement; the host fails in words when it cannot run."""
        answer = self.session.step([statement], mode='autocommit')
        if not answer['ok']:
            self.fail('%s on database %s failed: %s' % (what, self.params['db'], answer.get('error')))
        result = answer['results'][0]
        return [dict(zip(result['columns'], row)) for row in result['rows']]

    def lock(self):
        """Take the advisory lock, polling (a waiting run holds no snapshot that CREATE INDEX CONCURRENTLY would
        wait for); after lock_wait, fail naming who holds it."""
        started = time.monotonic()
        while not self.ask(sql.try_lock_statement(self.key), 'taking the migration lock')[0]['pg_try_advisory_lock']:
            waited = time.monotonic() - started
            if waited >= self.options['lock_wait']:
                holder = self.ask(sql.holder_statement(self.key), 'looking up who holds the migration lock')
                self.fail('another run is migrating database %s: the migration lock of %s was not free within %ds '
                          '(lock_wait). It is held by %s. Nothing was changed by this run.'
                          % (self.params['db'], self.result['table'], self.options['lock_wait'],
                             sql.describe_holder(holder[0] if holder else None)), holder=holder[0] if holder else None)
            time.sleep(min(0.5, max(0.05, self.options['lock_wait'] - waited)))
        self.result['lock']['waited_seconds'] = round(time.monotonic() - started, 3)

    def read_applied(self, table_exists):
        if not table_exists:
            return {}
        answer = self.session.step([sql.select_applied_statement(self.schema, self.table)], mode='autocommit')
        if not answer['ok']:
            self.fail('%s exists in database %s but could not be read as pg_migrate\'s version table (%s): if it belongs '
                      'to another tool, choose another table with the table option'
                      % (self.result['table'], self.params['db'], answer.get('primary') or answer.get('error')))
        return sql.applied_from_result(answer['results'][0])

    # --- the story -------------------------------------------------------------------------------------------

    def main(self):
        password = self.params['login_password']
        connection = dict(connection_settings(self.params), dbname=self.params['db'])
        try:
            with Session(self.module, connection, password=password, run_as=self.params['run_as'],
                         read_only=self.state == 'status', connect_timeout=self.params['connect_timeout'],
                         appname=APPNAME) as session:
                self.session = session
                self.story()
        except PgQueryError as exc:
            self.fail('pg_migrate on database %s: %s%s' % (self.params['db'], exc, self.running or ''),
                      stage=exc.stage)

    def story(self):
        server = self.ask(sql.server_statement(self.schema, self.table), 'asking the server')[0]
        in_recovery, table_exists = server['in_recovery'], server['table_exists']
        if in_recovery:
            self.applied = self.read_applied(table_exists)
            return self.replica()
        if self.state != 'status':
            self.lock()
        self.applied = self.read_applied(table_exists)
        problems, warnings = planning.drift(self.migrations, self.applied, self.params['path'])
        todo, more_problems, more_warnings = planning.plan(self.state, self.migrations, self.applied,
                                                           self.params['target'])
        for warning in warnings + more_warnings:
            self.module.warn(warning)
        before = planning.current_version(self.applied)
        self.result.update(version_before=before, current_version=before)
        self.set_pending()
        if problems or more_problems:
            self.fail('Nothing was changed: ' + ' '.join(problems + more_problems))
        if not todo:
            return self.finish()
        if self.module.check_mode:
            return self.dry_run(todo, table_exists)
        return self.apply(todo, table_exists)

    def replica(self):
        version = planning.current_version(self.applied)
        self.result.update(read_only=True, version_before=version, current_version=version)
        self.set_pending()
        self.result['summary'] = ('%s is a streaming replica (in recovery, read-only): nothing was tried here; it '
                                  'receives the migrations from its primary and has replayed version %d'
                                  % (self.params['db'], version))
        self.module.exit_json(**self.result)

    def apply(self, todo, table_exists):
        if not table_exists and self.state == 'up':
            answer = self.session.step(sql.create_table_statements(self.schema, self.table))
            if not answer['ok']:
                self.fail('could not create the version table %s in database %s: %s. Nothing was changed.'
                          % (self.result['table'], self.params['db'], answer.get('primary') or answer['error']))
        before = set(self.applied)
        for migration in todo:
            sql_file = migration['up'] if self.state == 'up' else migration['down']
            answer = self.run_file(migration, sql_file)
            if not answer['ok']:
                self.finish_failed(migration, sql_file, answer, before)
            self.record(migration, sql_file, answer['seconds'])
        self.result['diff'] = planning.diff(before, set(self.applied), self.migrations)
        self.session.step([sql.unlock_statement(self.key)], mode='autocommit')
        self.finish()

    def run_file(self, migration, sql_file):
        """Apply or revert one file in its own step (two for a non-transactional file: its statements, then its row)."""
        settings, lock, statement = sql.file_settings(sql_file, self.options['lock_timeout'],
                                                      self.options['statement_timeout'])
        deadline = sql.file_deadline(sql_file, lock, statement)
        self.running = (' while running %s (the server rolls back its transaction once it sees the connection gone; '
                        'a non-transactional file may have run in part - check the version table before running again)'
                        % sql_file['file'])
        if not sql_file['non_transactional']:
            return self.session.step(sql.file_statements(sql_file) + [self.record_statement(migration)],
                                     settings=settings, timeout=deadline)
        answer = self.session.step(sql.file_statements(sql_file), mode='autocommit', settings=settings, timeout=deadline)
        if not answer['ok']:
            return answer
        recorded = self.session.step([self.record_statement(migration, seconds=answer['seconds'])])
        if recorded['ok']:
            return answer
        recorded.update(done=len(sql_file['statements']), seconds=answer['seconds'])
        return recorded

    def record_statement(self, migration, seconds=None):
        """The version table's change for ``migration``: its row (``seconds`` None: the transaction's time) or its
        row's removal."""
        if self.state == 'up':
            return sql.insert_statement(self.schema, self.table, migration, seconds=seconds)
        return sql.delete_statement(self.schema, self.table, migration)

    def record(self, migration, sql_file, seconds):
        if self.state == 'up':
            self.applied[migration['version']] = dict(version=migration['version'])
        else:
            self.applied.pop(migration['version'], None)
        self.result['applied'].append(planning.listing(migration, sql_file, seconds=round(seconds, 3)))
        self.result['seconds'] = round(self.result['seconds'] + seconds, 3)
        self.result.update(changed=True, current_version=planning.current_version(self.applied))
        self.set_pending()

    def dry_run(self, todo, table_exists):
        statements, groups, deadline = sql.dry_run_statements(
            self.state, todo, self.schema, self.table, table_exists, self.options['lock_timeout'],
            self.options['statement_timeout'])
        tried = [group for group in groups if group[0] is not None]
        report = dict(would_succeed=None, tried=[], failed=None,
                      not_dry_runnable=[planning.listing(m, self.sql_file(m)) for m in todo[len(tried):]])
        versions = set(m['version'] for m in todo)
        after = set(self.applied) | versions if self.state == 'up' else set(self.applied) - versions
        self.result.update(changed=True, dry_run=report, would_apply=[planning.listing(m, self.sql_file(m)) for m in todo],
                           diff=planning.diff(set(self.applied), after, self.migrations))
        if not tried:
            return self.finish()
        self.running = ' during the dry run (its transaction is rolled back: nothing was changed)'
        answer = self.session.step(statements, mode='rollback', timeout=deadline)
        done = len(answer['results'])
        report['would_succeed'] = answer['ok']
        for migration, first, end in tried:
            if end <= done:
                seconds = sum(result['seconds'] for result in answer['results'][first:end])
                report['tried'].append(planning.listing(migration, self.sql_file(migration), seconds=round(seconds, 3)))
        if answer['ok']:
            return self.finish()
        migration, first, end = sql.group_of(groups, done)
        if migration is None:
            self.fail('Dry run: the version table %s could not be created in database %s: %s. Nothing was changed.'
                      % (self.result['table'], self.params['db'], answer.get('primary') or answer.get('error')))
        sql_file = self.sql_file(migration)
        report['failed'] = dict(sql.failure(answer, sql_file, recording=done == end - 1), version=migration['version'],
                                non_transactional=False)
        self.result['failed_migration'] = report['failed']
        return self.fail('Dry run on database %s would fail at %s. Nothing was changed (the transaction was rolled '
                         'back).' % (self.params['db'], sql.failure_sentence(report['failed'])))

    # --- reporting -------------------------------------------------------------------------------------------

    def sql_file(self, migration):
        return migration['up'] if self.state == 'up' else migration['down']

    def set_pending(self):
        target = self.params['target']
        self.result['pending'] = [planning.listing(m) for m in self.migrations if m['version'] not in self.applied
                                  and (target is None or self.state != 'up' or m['version'] <= target)]

    def finish_failed(self, migration, sql_file, answer, before):
        done = answer.get('done', 0)
        recording = done >= len(sql.file_statements(sql_file))
        statement = sql_file['statements'][done] if sql_file['non_transactional'] and not recording else None
        info = dict(sql.failure(answer, sql_file, statement, recording=recording), version=migration['version'],
                    non_transactional=sql_file['non_transactional'])
        if sql_file['non_transactional']:
            info['statements_done'] = answer.get('done', 0)
            stays = ('it is non-transactional: %d of its %d statements took effect and stay, and it is %s recorded as '
                     'applied - make it safe to run again (IF NOT EXISTS; a failed CREATE INDEX CONCURRENTLY leaves an '
                     'INVALID index to drop first), then run again'
                     % (info['statements_done'], len(sql_file['statements']), 'not' if self.state == 'up' else 'still'))
        else:
            stays = 'it was rolled back, nothing of it stays'
        self.result.update(failed_migration=info, diff=planning.diff(before, set(self.applied), self.migrations))
        self.fail('%s %s failed at %s; %s. It is at version %d%s.' % (
            'Migrating database' if self.state == 'up' else 'Reverting migrations of database', self.params['db'],
            sql.failure_sentence(info),
            stays, self.result['current_version'],
            self.applied_words(' (this run %s %%s)' % ('applied' if self.state == 'up' else 'reverted'))))

    def applied_words(self, template='%s'):
        files = ['%s (%.2f s%s)' % (a['file'], a['seconds'], ', non-transactional' if a['non_transactional'] else '')
                 for a in self.result['applied']]
        return template % ', '.join(files) if files else ''

    def finish(self):
        result, db = self.result, self.params['db']
        if self.state == 'status':
            result['summary'] = '%s is at version %d; %d migration(s) pending%s.' % (
                db, result['current_version'], len(result['pending']),
                ' (%s)' % ', '.join(p['file'] for p in result['pending']) if result['pending'] else '')
        elif self.module.check_mode and result['changed']:
            report = result['dry_run']
            verb = 'apply' if self.state == 'up' else 'revert'
            words = 'Dry run on %s: would %s %s' % (db, verb, ', '.join(m['file'] for m in result['would_apply']))
            if report['tried']:
                words += '; %s succeeded in a transaction that was rolled back' % ', '.join(m['file'] for m in report['tried'])
            skipped = [m['file'] for m in report['not_dry_runnable']]
            if skipped:
                words += '; %s is non-transactional and cannot be dry-run%s' % (
                    skipped[0], ', so %s could not be tried after it' % ', '.join(skipped[1:]) if skipped[1:] else '')
            result['summary'] = words + '. Nothing was changed.'
        elif result['changed']:
            result['summary'] = '%s: version %d -> %d, %s %s in %.2f s.' % (
                db, result['version_before'], result['current_version'], 'applied' if self.state == 'up' else 'reverted',
                self.applied_words(), result['seconds'])
        else:
            result['summary'] = '%s is at version %d: nothing to %s.' % (db, result['current_version'],
                                                                         'apply' if self.state == 'up' else 'revert')
        if not self.module._diff:  # pylint: disable=protected-access
            result.pop('diff', None)
        self.module.exit_json(**result)

    def fail(self, msg, **more):
        self.result.update(more)
        self.result['summary'] = msg
        self.module.fail_json(msg=msg, **self.result)


def main():
    argument_spec = look_argument_spec(verdict=False)
    argument_spec.update(
        db=dict(type='str', required=True),
        path=dict(type='path', required=True),
        state=dict(type='str', choices=list(planning.STATES), default='up'),
        target=dict(type='int'),
        table=dict(type='str', default='dbfleet.schema_migrations'),
        lock_wait=dict(type='str', default='60s'),
        lock_timeout=dict(type='str', default='10s'),
        statement_timeout=dict(type='str', default='30m'),
    )
    module = DbfleetModule(argument_spec=argument_spec, supports_check_mode=True)
    options, problem = options_from(module.params)
    if problem:
        module.fail_json(msg='Refused: %s. Nothing was changed.' % problem)
    path = module.params['path']
    try:
        migrations, problems = read_directory(path)
    except (OSError, UnsafePath) as exc:
        module.fail_json(msg='cannot read the migration directory %s: %s. Nothing was changed.'
                             % (path, getattr(exc, 'strerror', None) or exc))
    if problems:
        module.fail_json(msg='The migrations in %s cannot run - %s Nothing was changed.' % (path, ' '.join(
            p if p.endswith('.') else p + '.' for p in problems)), problems=problems)
    Run(module, options, migrations).main()


if __name__ == '__main__':
    main()

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_migrate and playbooks/migrate.yml on the fleet lab: two writable databases (db-primary, Debian with peer auth,
and db-pgdg, PGDG layout with password-only auth) migrated in lockstep from a git repository served by backup-box,
with a streaming replica reported read-only; a conflict fails one host with the file and the error while the other
completes; re-runs are no-ops; --check is a dry run on a failing and on a succeeding migration that leaves the
schema as it was; a host whose inventory says plan dry-runs while the other applies; down to a target reverts; an
edited applied file is refused with both checksums, and batches stop early; two concurrent runs apply a migration
exactly once (one waits, or gives up naming the holder); hostile names and symlinks are refused.

The tests share the database migrate_a on both primaries and run in file order (each starts from where the one
before left it); the database, the git server and every file they make are removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from tests.integration.ansible_cli import host_results, run_module, run_playbook

DB = 'migrate_a'
PRIMARIES = ['db-primary', 'db-pgdg']
REPLICA = 'db-replica-1'
PLAYBOOK = 'playbooks/migrate.yml'
GIT_ROOT = '/srv/git-test'
SCRATCH = '/srv/migrate-test'
APPLY = 'Apply the migrations with pg_migrate'
TABLE = 'Print the table of every host'

MAIN = {
    'README.md': 'Migrations of the migrate_a test database.\n',
    'db/migrations/0001_widgets.sql': "CREATE TABLE widgets (id int PRIMARY KEY, name text NOT NULL);\n"
                                      "INSERT INTO widgets VALUES (1, 'semi;colon');\n",
    'db/migrations/0001_widgets.down.sql': 'DROP TABLE widgets;\n',
    'db/migrations/0002_gadgets.sql': 'CREATE TABLE gadgets (id int PRIMARY KEY, widget int REFERENCES widgets (id));\n',
    'db/migrations/0002_gadgets.down.sql': 'DROP TABLE gadgets;\n',
    'db/migrations/0003_gadgets_widget_index.sql': '-- dbfleet:no-transaction\n-- builds without blocking writes\n'
                                                   'CREATE INDEX CONCURRENTLY IF NOT EXISTS gadgets_widget ON gadgets (widget);\n',
    'db/migrations/0003_gadgets_widget_index.down.sql': '-- dbfleet:no-transaction\n'
                                                        'DROP INDEX CONCURRENTLY IF EXISTS gadgets_widget;\n',
}
NEXT_OK = dict(MAIN, **{
    'db/migrations/0004_parts.sql': 'CREATE TABLE parts (id int PRIMARY KEY, gadget int REFERENCES gadgets (id));\n',
    'db/migrations/0004_parts.down.sql': 'DROP TABLE parts;\n',
    'db/migrations/0005_parts_gadget_index.sql': '-- dbfleet:no-transaction\n'
                                                 'CREATE INDEX CONCURRENTLY IF NOT EXISTS parts_gadget ON parts (gadget);\n',
    'db/migrations/0005_parts_gadget_index.down.sql': '-- dbfleet:no-transaction\n'
                                                      'DROP INDEX CONCURRENTLY IF EXISTS parts_gadget;\n',
})
NEXT_BAD = dict(MAIN, **{'db/migrations/0004_bad.sql': 'CREATE TABLE fine (id int);\n'
                                                       'ALTER TABLE parts_that_do_not_exist ADD COLUMN x int;\n'})
EDITED = dict(MAIN, **{'db/migrations/0001_widgets.sql': MAIN['db/migrations/0001_widgets.sql'] + '-- tidied up\n'})
BRANCHES = {'main': MAIN, 'next-ok': NEXT_OK, 'next-bad': NEXT_BAD, 'edited': EDITED}

# Everything that makes up the schema (namespaces, relations, columns, indexes and whether they are valid).
FINGERPRINT = r"""
SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
  SELECT 'ns ' || nspname AS x FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
  UNION ALL
  SELECT format('rel %s.%s %s', n.nspname, c.relname, c.relkind) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
  UNION ALL
  SELECT format('col %s.%s.%s %s', n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
  UNION ALL
  SELECT format('idx %s %s', i.indexrelid::regclass, i.indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg\_%'
) s"""
VERSIONS = ("SELECT coalesce(string_agg(version || ':' || checksum || ':' || non_transactional, ',' ORDER BY version), '') "
            "FROM dbfleet.schema_migrations")


def sha256(text):
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def free_port(addr):
    with socket.socket() as sock:
        sock.bind((addr, 0))
        return sock.getsockname()[1]


def git(work, *args):
    subprocess.run(['git', '-c', 'user.name=dbfleet test', '-c', 'user.email=test@example.invalid',
                    '-c', 'init.defaultBranch=main', '-C', str(work)] + list(args),
                   check=True, capture_output=True, text=True, timeout=60)


def put_files(lab, host, base, files, links=None, owner=None):
    """Create ``base`` on ``host`` (emptied first) with ``files`` ({name: text}) and ``links`` ({name: target})."""
    script = ('import json, os, shutil, sys\nreq = json.load(sys.stdin)\nshutil.rmtree(req["base"], ignore_errors=True)\n'
              'os.makedirs(req["base"])\nfor name, text in req["files"].items():\n'
              '    open(os.path.join(req["base"], name), "w").write(text)\n'
              'for name, target in req["links"].items():\n    os.symlink(target, os.path.join(req["base"], name))\n'
              'if req["owner"]:\n    shutil.chown(req["base"], req["owner"])\n')
    request = dict(base=base, files=files, links=links or {}, owner=owner)
    lab.exec(host, '/usr/bin/python3', '-c', script, input=json.dumps(request))


def psql(lab, host, sql):
    return lab.psql(host, sql, db=DB)


def schema_state(lab):
    return {h: (psql(lab, h, FINGERPRINT), psql(lab, h, VERSIONS)) for h in PRIMARIES}


def scratch(lab):
    """What the role's per-run directories left on the hosts (nothing, once a run is over)."""
    return {h: lab.exec(h, 'sh', '-c', 'find /run/dbfleet/migrate -mindepth 1 2>/dev/null | sort', check=False).stdout
            for h in PRIMARIES + [REPLICA]}


@pytest.fixture(scope='module')
def fleet(fleet_lab, tmp_path_factory):
    """migrate_a on both primaries, and a git repository of migrations served by backup-box (git daemon)."""
    lab = fleet_lab
    port = free_port('127.0.0.14')
    pidfile = GIT_ROOT + '/daemon.pid'
    for host in PRIMARIES:
        lab.psql(host, 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
        lab.psql(host, 'CREATE DATABASE %s' % DB)
    try:
        lab.exec('backup-box', 'sh', '-c', 'rm -rf {r} && mkdir -p {r} && git init -q --bare {r}/migrations.git'
                 .format(r=GIT_ROOT))
        lab.exec('backup-box', 'git', 'daemon', '--detach', '--pid-file=' + pidfile, '--reuseaddr', '--export-all',
                 '--enable=receive-pack', '--base-path=' + GIT_ROOT, '--listen=127.0.0.14', '--port=%d' % port, GIT_ROOT)
        url = 'git://127.0.0.14:%d/migrations.git' % port
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(('127.0.0.14', port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        work = tmp_path_factory.mktemp('migrations-repo')
        git(work, 'init', '-q')
        for branch, files in BRANCHES.items():
            if branch != 'main':
                git(work, 'checkout', '-q', '-B', branch, 'main')
            subprocess.run(['rm', '-rf', str(work / 'db')], check=True)
            for name, text in files.items():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).write_text(text)
            git(work, 'add', '-A')
            git(work, 'commit', '-q', '--allow-empty', '-m', branch)
        git(work, 'push', '-q', url, *BRANCHES)
        yield dict(lab=lab, url=url, work=work)
    finally:
        lab.exec('backup-box', 'sh', '-c', 'test -f {p} && kill $(cat {p}); rm -rf {r}'.format(p=pidfile, r=GIT_ROOT),
                 check=False)
        for host in PRIMARIES:
            lab.psql(host, 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
            lab.exec(host, 'rm', '-rf', SCRATCH, check=False)


def migrate(fleet, ref, *args, hosts='primary:pgdg', inventory=None, **extra):
    extra_vars = dict(migrate_db=DB, migrate_git_repo=fleet['url'], migrate_git_version=ref,
                      migrate_subdir='db/migrations', migrate_hosts=hosts)
    extra_vars.update(extra)
    return run_playbook(fleet['lab'], PLAYBOOK, *args, extra_vars=extra_vars, inventory=inventory)


def table(run):
    lines = run.results(TABLE)
    return dict((line.split()[0], line) for line in next(iter(lines.values()))['msg'][1:])


# --- the session API pg_migrate is built on --------------------------------------------------------------------

SESSION_SCRIPT = r'''
import json
from ansible_collections.dbfleet.postgresql.plugins.module_utils import _pgquery as q
conn = dict(host=None, port=5432, user=None, dbname='postgres')
out = {}
with q.Session(None, conn, run_as='postgres', read_only=False) as s:
    out['dry'] = s.step([("CREATE TABLE session_probe (a int)", None), ("INSERT INTO session_probe VALUES (1)", None)],
                        mode='rollback')
    out['gone'] = s.step([("SELECT to_regclass('session_probe') IS NULL", None)])
    out['set'] = s.step([("SHOW lock_timeout", None)], mode='autocommit', settings={'lock_timeout': '1234ms'})
    out['reset'] = s.step([("SHOW lock_timeout", None)], mode='autocommit')
    out['local'] = s.step([("SHOW statement_timeout", None)], settings={'statement_timeout': '4321ms'})
    s.step([("SELECT pg_advisory_lock(4242)", None)], mode='autocommit')
    out['held'] = s.step([("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", None)])
    out['pid'] = s.backend_pid
out['batch'] = q.run_session(None, conn, [dict(statements=[("SELECT 1", None)]), dict(statements=[("SELECT 1/0", None)]),
                                          dict(statements=[("SELECT 2", None)])], run_as='postgres')
print(json.dumps(out))
'''


def test_session_steps_keep_one_connection_and_report_each_step(fleet_lab):
    run = fleet_lab.exec('db-primary', 'env', 'PYTHONPATH=%s' % os.path.join(str(fleet_lab.repo), 'build', 'collections'),
                         '/usr/bin/python3', '-c', SESSION_SCRIPT)
    out = json.loads(run.stdout)
    assert out['dry']['ok'] and out['gone']['results'][0]['rows'] == [[True]]  # rolled back
    assert out['set']['results'][0]['rows'] == [['1234ms']] and out['reset']['results'][0]['rows'] == [['0']]
    assert out['local']['results'][0]['rows'] == [['4321ms']]
    assert out['held']['results'][0]['rows'] == [[1]]  # a session lock lasts from step to step
    assert all(r['seconds'] >= 0 for r in out['dry']['results']) and out['dry']['seconds'] > 0
    first, second = out['batch']  # stops at the first failure
    assert first['ok'] and not second['ok'] and second['sqlstate'] == '22012' and second['done'] == 0
    assert fleet_lab.psql('db-primary', 'SELECT count(*) FROM pg_locks WHERE pid = %d' % out['pid']) == '0'


# --- refused before anything runs ------------------------------------------------------------------------------

def test_hostile_names_and_symlinks_are_refused_and_nothing_runs(fleet):
    lab = fleet['lab']
    base = SCRATCH + '/hostile'
    put_files(lab, 'db-primary', base, {'0001_ok.sql': 'CREATE TABLE hostile_ok (a int);\n',
                                        '0002_a\nb.sql': 'CREATE TABLE hostile_newline (a int);\n',
                                        '0003_x..sql': 'CREATE TABLE hostile_dots (a int);\n'},
              links={'0004_link.sql': '/etc/shadow'})
    args = dict(db=DB, path=base, table='dbfleet.hostile_migrations')
    result = host_results(run_module(lab, 'db-primary', 'dbfleet.postgresql.pg_migrate', args))['db-primary']
    assert result['failed'] and not result['changed']
    assert "'0002_a\\nb.sql' contains the control character" in result['msg']
    assert "'0003_x..sql' does not follow the naming" in result['msg']
    assert base + '/0004_link.sql is a symlink: refused' in result['msg'] and 'Nothing was changed' in result['msg']
    assert len(result['problems']) == 3
    # A directory reached through a symlink that the OS user postgres could have planted is refused too.
    put_files(lab, 'db-primary', SCRATCH + '/owned-by-postgres', {}, links={'m': base}, owner='postgres')
    args['path'] = SCRATCH + '/owned-by-postgres/m'
    result = host_results(run_module(lab, 'db-primary', 'dbfleet.postgresql.pg_migrate', args))['db-primary']
    assert result['failed'] and 'is a symlink in %s/owned-by-postgres, which postgres' % SCRATCH in result['msg']
    assert psql(lab, 'db-primary', "SELECT to_regclass('dbfleet.hostile_migrations') IS NULL, "
                                   "to_regclass('hostile_ok') IS NULL") == 't|t'


# --- lockstep from git ----------------------------------------------------------------------------------------

def test_lockstep_from_git_a_conflict_fails_one_host_the_other_completes_then_reruns_are_noops(fleet):
    lab = fleet['lab']
    psql(lab, 'db-pgdg', 'CREATE TABLE gadgets (conflicting text)')
    run = migrate(fleet, 'main', hosts='primary:pgdg:' + REPLICA)
    assert run.failed_hosts() == ['db-pgdg'], run.stats
    assert run.ok_hosts() == ['db-primary', REPLICA]

    applied = run.results(APPLY)
    primary, pgdg, replica = applied['db-primary'], applied['db-pgdg'], applied[REPLICA]
    assert primary['changed'] and primary['version_before'] == 0 and primary['current_version'] == 3
    assert [(a['file'], a['non_transactional']) for a in primary['applied']] == [
        ('0001_widgets.sql', False), ('0002_gadgets.sql', False), ('0003_gadgets_widget_index.sql', True)]
    assert all(a['seconds'] >= 0 for a in primary['applied']) and primary['pending'] == []
    assert pgdg['failed'] and pgdg['failed_migration']['file'] == '0002_gadgets.sql'
    assert pgdg['failed_migration']['sqlstate'] == '42P07' and pgdg['current_version'] == 1
    assert '0002_gadgets.sql' in pgdg['msg'] and 'relation "gadgets" already exists' in pgdg['msg']
    assert replica['read_only'] and not replica.get('failed') and not replica['changed']

    rows = table(run)
    assert 'migrated' in rows['db-primary'] and '0 -> 3' in rows['db-primary']
    assert 'failed' in rows['db-pgdg'] and '0 -> 1' in rows['db-pgdg']
    assert '0002_gadgets.sql: relation "gadgets" already exists' in rows['db-pgdg']
    assert 'read-only' in rows[REPLICA]
    sentences = run.results('Say what happened on this host')
    assert 'streaming replica' in sentences[REPLICA]['msg'] and 'commit' in sentences['db-primary']['msg']

    expected = ','.join('%d:%s:%s' % (v, sha256(MAIN['db/migrations/' + f]), nt) for v, f, nt in (
        (1, '0001_widgets.sql', 'false'), (2, '0002_gadgets.sql', 'false'), (3, '0003_gadgets_widget_index.sql', 'true')))
    assert psql(lab, 'db-primary', VERSIONS) == expected
    assert psql(lab, 'db-primary', "SELECT indisvalid FROM pg_index WHERE indexrelid = 'gadgets_widget'::regclass") == 't'
    assert psql(lab, 'db-pgdg', VERSIONS) == expected.split(',', maxsplit=1)[0]
    assert scratch(lab) == {h: '' for h in PRIMARIES + [REPLICA]}

    # Fixed on db-pgdg, the same run catches it up; db-primary has nothing to do.
    psql(lab, 'db-pgdg', 'DROP TABLE gadgets')
    again = migrate(fleet, 'main')
    assert again.rc == 0, again.stdout[-4000:]
    caught_up = [a['file'] for a in again.results(APPLY)['db-pgdg']['applied']]
    assert caught_up == ['0002_gadgets.sql', '0003_gadgets_widget_index.sql']
    assert not again.results(APPLY)['db-primary']['changed'] and again.changed('db-primary') == 0
    assert 'nothing to apply' in again.results(APPLY)['db-primary']['summary']
    assert psql(lab, 'db-pgdg', VERSIONS) == expected


# --- the dry run ---------------------------------------------------------------------------------------------

def test_check_mode_on_a_failing_and_on_a_succeeding_migration_leaves_the_schema_as_it_was(fleet):
    lab = fleet['lab']
    before = schema_state(lab)

    bad = migrate(fleet, 'next-bad', '--check')
    assert bad.failed_hosts() == sorted(PRIMARIES), bad.stats
    for host, result in bad.results(APPLY).items():
        assert result['dry_run']['would_succeed'] is False
        assert result['failed_migration']['file'] == '0004_bad.sql'
        assert 'relation "parts_that_do_not_exist" does not exist' in result['msg'] and 'Nothing was changed' in result['msg']
        assert 'dry run fails' in table(bad)[host]
    assert schema_state(lab) == before

    good = migrate(fleet, 'next-ok', '--check', '--diff')
    assert good.rc == 0, good.stdout[-4000:]
    for host, result in good.results(APPLY).items():
        assert result['changed'] and [m['file'] for m in result['would_apply']] == ['0004_parts.sql',
                                                                                    '0005_parts_gadget_index.sql']
        assert result['dry_run']['would_succeed'] is True
        assert [m['file'] for m in result['dry_run']['tried']] == ['0004_parts.sql']
        assert [m['file'] for m in result['dry_run']['not_dry_runnable']] == ['0005_parts_gadget_index.sql']
        assert result['current_version'] == 3 and '4 0004_parts.sql\n' in result['diff']['after']
        assert 'would change' in table(good)[host]
    assert schema_state(lab) == before
    assert scratch(lab) == {h: '' for h in PRIMARIES + [REPLICA]}


def test_a_host_whose_inventory_says_plan_dry_runs_while_the_other_applies(fleet, tmp_path):
    lab = fleet['lab']
    inventory = tmp_path / 'inventory'
    (inventory / 'host_vars').mkdir(parents=True)
    (inventory / 'hosts.yml').write_text(open(str(lab.inventory)).read())
    (inventory / 'host_vars' / 'db-pgdg.yml').write_text('dbfleet_mode: plan\n')
    pgdg_before = psql(lab, 'db-pgdg', FINGERPRINT)
    run = migrate(fleet, 'next-ok', inventory=str(inventory / 'hosts.yml'), dbfleet_mode='edit')
    assert run.rc == 0, run.stdout[-4000:]
    applied = run.results(APPLY)
    assert [a['file'] for a in applied['db-primary']['applied']] == ['0004_parts.sql', '0005_parts_gadget_index.sql']
    assert applied['db-primary']['current_version'] == 5
    assert applied['db-pgdg']['dbfleet_mode'] == 'plan' and applied['db-pgdg']['dry_run']['would_succeed']
    assert psql(lab, 'db-pgdg', FINGERPRINT) == pgdg_before


# --- down ---------------------------------------------------------------------------------------------------

def test_down_to_a_target_reverts_newest_first(fleet):
    lab = fleet['lab']
    run = migrate(fleet, 'next-ok', migrate_state='down', migrate_target=1)
    assert run.rc == 0, run.stdout[-4000:]
    applied = run.results(APPLY)
    assert [a['file'] for a in applied['db-primary']['applied']] == [
        '0005_parts_gadget_index.down.sql', '0004_parts.down.sql', '0003_gadgets_widget_index.down.sql',
        '0002_gadgets.down.sql']
    assert [a['file'] for a in applied['db-pgdg']['applied']] == ['0003_gadgets_widget_index.down.sql',
                                                                  '0002_gadgets.down.sql']
    for host in PRIMARIES:
        assert applied[host]['current_version'] == 1
        assert psql(lab, host, "SELECT to_regclass('widgets') IS NOT NULL, to_regclass('gadgets') IS NULL, "
                               "to_regclass('parts') IS NULL") == 't|t|t'
        assert psql(lab, host, VERSIONS) == '1:%s:false' % sha256(MAIN['db/migrations/0001_widgets.sql'])
    assert 'reverted' in table(run)['db-primary'] and '5 -> 1' in table(run)['db-primary']


# --- drift, and batches --------------------------------------------------------------------------------------

def test_an_edited_applied_file_is_refused_with_both_checksums_and_a_batch_failure_stops_the_rest(fleet):
    lab = fleet['lab']
    before = schema_state(lab)
    run = migrate(fleet, 'edited', hosts='pgdg:primary', migrate_serial=1)
    assert run.failed_hosts() == sorted(PRIMARIES), run.stats
    refused = run.results(APPLY)['db-pgdg']
    recorded = sha256(MAIN['db/migrations/0001_widgets.sql'])
    now = sha256(EDITED['db/migrations/0001_widgets.sql'])
    assert '0001_widgets.sql was edited after it was applied' in refused['msg']
    assert recorded in refused['msg'] and now in refused['msg']
    assert 'db-primary' not in run.results(APPLY)  # never attempted: db-pgdg's batch failed
    rows = table(run)
    assert 'not attempted' in rows['db-primary'] and 'db-pgdg' in rows['db-primary']
    assert schema_state(lab) == before


# --- two at once ---------------------------------------------------------------------------------------------

# The first run's migration waits at a gate the test opens, so the second run is sure to meet the first's lock.
GATE = ("-- dbfleet:lock-timeout=60s\n"
        "DO $$ BEGIN FOR i IN 1..600 LOOP EXIT WHEN EXISTS (SELECT 1 FROM migrate_gate WHERE opened = %d); "
        "PERFORM pg_sleep(0.1); END LOOP; END $$;\n")


def _pg_migrate_backends(lab, gate=False):
    """Backends of pg_migrate runs on migrate_a (only the one waiting at the gate, with ``gate``)."""
    pids = lab.psql('db-primary', "SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND application_name = "
                                  "'dbfleet pg_migrate'%s" % (DB, " AND query LIKE '%%migrate_gate%%'" if gate else ''))
    return [int(pid) for pid in pids.split()]


def _wait_for(condition, what):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError('timed out waiting for ' + what)


def _concurrently(lab, gate, first_args, second_args, second_waits):
    """Run pg_migrate twice at once; the first holds the lock at the gate until the second waits (or gave up)."""
    results = {}

    def run(which, args):
        results[which] = host_results(run_module(lab, 'db-primary', 'dbfleet.postgresql.pg_migrate', args))['db-primary']

    threads = [threading.Thread(target=run, args=('first', first_args))]
    threads[0].start()
    try:
        holder = _wait_for(lambda: _pg_migrate_backends(lab, gate=True), 'the first run to reach the gate')[0]
        if second_waits:
            threads.append(threading.Thread(target=run, args=('second', second_args)))
            threads[1].start()
            _wait_for(lambda: len(_pg_migrate_backends(lab)) > 1, 'the second run to wait for the lock')
            time.sleep(1)
        else:
            run('second', second_args)
    finally:
        psql(lab, 'db-primary', 'INSERT INTO migrate_gate VALUES (%d)' % gate)
        for thread in threads:
            thread.join(120)
    return holder, results['first'], results['second']


def test_two_runs_at_once_apply_a_migration_exactly_once(fleet):
    lab = fleet['lab']
    base = SCRATCH + '/concurrent'
    psql(lab, 'db-primary', 'CREATE TABLE migrate_gate (opened int)')
    first_file = {'0001_once.sql': GATE % 1 + 'CREATE TABLE once_marker (n int);\nINSERT INTO once_marker VALUES (1);\n'}
    put_files(lab, 'db-primary', base, first_file)
    args = dict(db=DB, path=base, table='dbfleet.concurrent_migrations')

    # The second run waits for the lock, then finds the migration applied: nothing to do.
    _pid, first, second = _concurrently(lab, 1, args, dict(args, lock_wait='90s'), second_waits=True)
    assert first['changed'] and [a['file'] for a in first['applied']] == ['0001_once.sql']
    assert not second.get('failed') and not second['changed'] and second['lock']['waited_seconds'] > 0.5
    assert 'nothing to apply' in second['summary']

    # With a short lock_wait it gives up, naming the session that holds the lock.
    put_files(lab, 'db-primary', base, dict(first_file, **{
        '0002_once_more.sql': GATE % 2 + 'INSERT INTO once_marker VALUES (2);\n'}))
    pid, first, second = _concurrently(lab, 2, args, dict(args, lock_wait='1s'), second_waits=False)
    assert first['changed'] and [a['file'] for a in first['applied']] == ['0002_once_more.sql']
    assert second['failed'] and not second['changed']
    assert 'another run is migrating database %s' % DB in second['msg']
    assert 'pid %d (application_name \'dbfleet pg_migrate\'' % pid in second['msg']
    assert 'connected since' in second['msg'] and 'pg_terminate_backend(%d)' % pid in second['msg']
    assert psql(lab, 'db-primary', 'SELECT string_agg(n::text, \',\' ORDER BY n) FROM once_marker') == '1,2'
    assert psql(lab, 'db-primary', 'SELECT count(*) FROM dbfleet.concurrent_migrations') == '2'

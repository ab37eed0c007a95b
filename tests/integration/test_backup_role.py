# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nightly_backup.yml on hosts as users have them: a PGDG-layout cluster made by hand with password-only local
auth (db-pgdg), a server that already archives WAL its own way, row-level security, and a host whose
inventory says plan whatever the extra vars say."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.ansible_cli import run_playbook

PLAYBOOK = 'playbooks/nightly_backup.yml'
PGDG = 'db-pgdg'
PGDG_RESET = ('rm -rf /etc/cron.d/dbfleet-pg-dump-* /etc/dbfleet/* /opt/dbfleet/* /var/lib/dbfleet/* /var/log/dbfleet/* '
              '/srv/backups /srv/basebackups /srv/wal-archive')
SNAPSHOT = ('find /etc/cron.d /etc/dbfleet /opt/dbfleet /srv /var/lib/dbfleet /var/log/dbfleet -printf "%p %s %m %u\\n" '
            '2>/dev/null | sort; cat {data}/postgresql.auto.conf')


def _pgdg_run(lab, *args, extra_vars=None):
    extra = {'nightly_backup_hosts': 'pgdg'}
    extra.update(extra_vars or {})
    return run_playbook(lab, PLAYBOOK, *args, extra_vars=extra)


def _reset_pgdg(lab):
    lab.exec(PGDG, 'sh', '-c', PGDG_RESET)
    lab.psql(PGDG, 'ALTER SYSTEM RESET archive_mode; ALTER SYSTEM RESET archive_command; DROP ROLE IF EXISTS dbfleet_backup')
    lab.stop_pg(PGDG)
    lab.start_pg(PGDG)


@pytest.fixture()
def pgdg(fleet_lab):
    _reset_pgdg(fleet_lab)
    yield fleet_lab
    _reset_pgdg(fleet_lab)


def _snapshot(lab):
    return lab.exec(PGDG, 'sh', '-c', SNAPSHOT.format(data=lab.pg_data(PGDG)), check=False).stdout


def test_password_only_host_fails_fast_in_words_and_the_others_finish(pgdg):
    started = time.monotonic()
    look = run_playbook(pgdg, 'playbooks/plan_look.yml', '-l', 'db,pgdg', extra_vars={'dbfleet_pg_admin_password': ''})
    look_seconds = time.monotonic() - started
    run = run_playbook(pgdg, PLAYBOOK, extra_vars={'nightly_backup_hosts': 'db:pgdg', 'dbfleet_pg_admin_password': ''},
                       timeout=300)
    run_seconds = time.monotonic() - started - look_seconds
    assert look_seconds < 60 and run_seconds < 60, (look_seconds, run_seconds)  # each ends in under a minute
    for result in (look, run):
        assert result.failed_hosts() == [PGDG], result.stats
        assert set(result.ok_hosts()) == {'db-primary', 'db-replica-1', 'db-replica-2'}
    failure = run.results('Ask PostgreSQL what it is')[PGDG]
    assert 'asks for a password' in failure['msg'] and 'backup_admin_password' in failure['msg'], failure['msg']
    assert 'asks for a password' in look.results('Ask PostgreSQL about itself')[PGDG]['msg']


def test_pgdg_layout_end_to_end_with_restart_and_a_dump_that_restores(pgdg):
    plan = _pgdg_run(pgdg, '--check', '--diff')
    assert plan.rc == 0, plan.stdout[-4000:]
    archiving = plan.results("Archive every WAL segment")[PGDG]
    assert archiving['changed'] and archiving['restart_required']
    assert archiving['before']['archive_mode'] == 'off' and archiving['after']['archive_mode'] == 'on'
    before = _snapshot(pgdg)

    run = _pgdg_run(pgdg, extra_vars={'backup_run_now': True})
    assert run.rc == 0, run.stdout[-6000:]
    server = run.results('Ask PostgreSQL what it is')[PGDG]
    assert server['layout'] == 'pgdg' and server['bin_dir'] == '/usr/pgsql-15/bin'
    assert server['settings']['data_directory'] == '/var/lib/pgsql/15/data' and server['restart']['method'] == 'pg_ctl'
    restart = run.results('Restart PostgreSQL for the settings')[PGDG]
    assert restart['changed'] and restart['cmd'][0] == '/usr/pgsql-15/bin/pg_ctl'
    assert pgdg.psql(PGDG, 'SHOW archive_mode') == 'on'
    assert _snapshot(pgdg) != before
    # The schedules use the server's own binaries (nothing on PATH on this host).
    nightly = run.results('Install the dump schedules')[PGDG]['results'][0]
    assert nightly['config']['pg_bin'] == '/usr/pgsql-15/bin'
    dump = [a for a in nightly['run']['artifacts'] if a['db'] == 'app_prod'][0]
    assert dump['status'] == 'ok'
    # WAL reaches the archive through the collection's archiver.
    pgdg.psql(PGDG, 'SELECT pg_switch_wal()')
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not pgdg.psql(PGDG, 'SELECT last_archived_wal FROM pg_stat_archiver'):
        time.sleep(1)
    segment = pgdg.psql(PGDG, 'SELECT last_archived_wal FROM pg_stat_archiver')
    assert segment and pgdg.exec(PGDG, 'test', '-f', '/srv/wal-archive/' + segment, check=False).returncode == 0
    # The dump restores: into a scratch database, with the same rows.
    bin_dir = '/usr/pgsql-15/bin'
    env = {'PGPASSWORD': pgdg.host_vars(PGDG)['dbfleet_pg_admin_password'], 'PGHOST': '127.0.0.16', 'PGUSER': 'postgres'}
    pgdg.psql(PGDG, 'DROP DATABASE IF EXISTS restore_check; CREATE DATABASE restore_check')
    try:
        pgdg.exec(PGDG, 'sh', '-c', 'zstd -dc {d} | {b}/pg_restore -d restore_check --no-owner'.format(d=dump['path'], b=bin_dir),
                  env=env)
        count = "SELECT count(*), md5(string_agg(o::text, ',' ORDER BY o)) FROM orders o"
        assert pgdg.psql(PGDG, count, db='restore_check') == pgdg.psql(PGDG, count, db='app_prod')
    finally:
        pgdg.psql(PGDG, 'DROP DATABASE IF EXISTS restore_check')

    again = _pgdg_run(pgdg)
    assert again.rc == 0 and again.changed(PGDG) == 0, again.stats


def test_a_server_archiving_its_own_way_keeps_its_archive_command(pgdg):
    # Read back exactly, through psycopg: a '|' in a value broke the old psql text parser.
    own = 'test ! -f /srv/their-archive/%f && gzip -c < %p | cat > /srv/their-archive/%f'
    pgdg.psql(PGDG, "ALTER SYSTEM SET archive_mode = on; ALTER SYSTEM SET archive_command = '%s'" % own.replace("'", "''"))
    pgdg.stop_pg(PGDG)
    pgdg.start_pg(PGDG)
    plan = _pgdg_run(pgdg, '--check', '--diff')
    refused = plan.results('Archive every WAL segment')[PGDG]
    assert refused['failed'] and own in refused['msg'] and 'takeover' in refused['msg'], refused['msg']
    run = _pgdg_run(pgdg)
    assert run.failed_hosts() == [PGDG]
    assert pgdg.psql(PGDG, 'SHOW archive_command') == own
    # Asked to take over, it shows before -> after in a plan, then replaces it.
    plan = _pgdg_run(pgdg, '--check', '--diff', extra_vars={'backup_wal_archive_takeover': True})
    shown = plan.results('Archive every WAL segment')[PGDG]
    assert shown['changed'] and shown['before']['archive_command'] == own
    assert 'dbfleet-wal-archive' in shown['after']['archive_command']
    assert pgdg.psql(PGDG, 'SHOW archive_command') == own
    taken = _pgdg_run(pgdg, extra_vars={'backup_wal_archive_takeover': True})
    assert taken.rc == 0, taken.stdout[-4000:]
    assert 'dbfleet-wal-archive' in pgdg.psql(PGDG, 'SHOW archive_command')


def test_row_level_security_does_not_break_the_dump(pgdg):
    pgdg.psql(PGDG, 'CREATE TABLE IF NOT EXISTS secrets (id int, owner text); ALTER TABLE secrets ENABLE ROW LEVEL SECURITY; '
                    'ALTER TABLE secrets FORCE ROW LEVEL SECURITY; TRUNCATE secrets; '
                    "INSERT INTO secrets SELECT g, 'u' || g FROM generate_series(1, 50) g", db='app_prod')
    try:
        run = _pgdg_run(pgdg, extra_vars={'backup_run_now': True, 'backup_basebackup_schedule': ''})
        assert run.rc == 0, run.stdout[-4000:]
        nightly = run.results('Install the dump schedules')[PGDG]['results'][0]
        dump = [a for a in nightly['run']['artifacts'] if a['db'] == 'app_prod'][0]
        assert dump['status'] == 'ok'
        listing = pgdg.exec(PGDG, 'sh', '-c', 'zstd -dc %s | /usr/pgsql-15/bin/pg_restore --list' % dump['path']).stdout
        assert 'TABLE DATA public secrets' in listing
        flags = pgdg.psql(PGDG, "SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = 'dbfleet_backup'")
        assert flags == 't|f'
    finally:
        pgdg.psql(PGDG, 'DROP TABLE IF EXISTS secrets', db='app_prod')


def test_inventory_plan_host_stays_untouched_whatever_the_extra_vars_say(pgdg, tmp_path):
    # The lab inventory plus a host_vars file saying plan for db-pgdg (an inventory source, like a user's).
    inventory = tmp_path / 'inventory'
    (inventory / 'host_vars').mkdir(parents=True)
    (inventory / 'hosts.yml').write_text(open(pgdg.inventory).read())
    (inventory / 'host_vars' / (PGDG + '.yml')).write_text(json.dumps({'dbfleet_mode': 'plan'}))
    before = _snapshot(pgdg)
    roles_before = pgdg.psql(PGDG, 'SELECT string_agg(rolname, \',\' ORDER BY rolname) FROM pg_roles')
    run = run_playbook(pgdg, PLAYBOOK, extra_vars={'nightly_backup_hosts': 'pgdg', 'dbfleet_mode': 'bypass',
                                                   'backup_run_now': True}, inventory=str(inventory))
    assert run.rc == 0, run.stdout[-4000:]
    assert run.results('Install the dump schedules')[PGDG]['results'][0]['dbfleet_mode'] == 'plan'
    assert _snapshot(pgdg) == before
    assert pgdg.psql(PGDG, 'SELECT string_agg(rolname, \',\' ORDER BY rolname) FROM pg_roles') == roles_before

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""replication_lag and wal_archive_status against the fleet lab's real streaming replicas and WAL archive.

Each test that changes the lab (paused replay, a slot, a broken archive_command, a stopped replica)
puts it back in ``finally`` and waits until replication or archiving works again. Opt-in:
DBFLEET_LAB_DISRUPTIVE=1 (a replica stopped and started again). The idle primary watched for two minutes
is test_verify's, through replication_health.yml and this module.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.integration.ansible_cli import host_results, run_module

LAG = 'dbfleet.postgresql.replication_lag'
ARCHIVE = 'dbfleet.postgresql.wal_archive_status'
PRIMARY, R1, R2 = 'db-primary', 'db-replica-1', 'db-replica-2'
REPLICAS = [R1, R2]
DB_HOSTS = [PRIMARY, R1, R2]
BURST_TABLE = 'dbfleet_lag_burst'
SLOT = 'dbfleet_test_slot'

slow = pytest.mark.skipif(not os.environ.get('DBFLEET_LAB_SLOW'),
                          reason='set DBFLEET_LAB_SLOW=1 (watches an idle primary for two minutes)')
disruptive = pytest.mark.skipif(not os.environ.get('DBFLEET_LAB_DISRUPTIVE'),
                                reason='set DBFLEET_LAB_DISRUPTIVE=1 (stops a replica)')


def wait_for(what, check, timeout=60.0, interval=0.5):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail('timed out after %ds waiting for %s' % (timeout, what))
        time.sleep(interval)


def current_lsn(lab):
    return lab.psql(PRIMARY, 'SELECT pg_current_wal_lsn()')


def replayed(lab, host, lsn):
    """True once ``host`` has replayed up to ``lsn``."""
    return lab.psql(host, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn) == 't'


def wait_caught_up(lab, hosts=None, timeout=90):
    lsn = current_lsn(lab)
    for host in hosts or REPLICAS:
        wait_for('%s to replay up to %s' % (host, lsn), lambda h=host: replayed(lab, h, lsn), timeout=timeout)


def streaming_names(lab):
    return lab.psql(PRIMARY, "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM "
                             "pg_stat_replication WHERE state = 'streaming'").split(',')


def archiver(lab):
    cols = ('archived_count', 'last_archived_wal', 'failed_count', 'last_failed_wal', 'failing')
    row = lab.psql(PRIMARY, "SELECT archived_count, coalesce(last_archived_wal, ''), failed_count, "
                            "coalesce(last_failed_wal, ''), (last_failed_time IS NOT NULL AND (last_archived_time IS NULL "
                            "OR last_failed_time > last_archived_time)) FROM pg_stat_archiver")
    values = row.split('|')
    return dict(zip(cols, [int(values[0]), values[1], int(values[2]), values[3], values[4] == 't']))


def switch_wal(lab):
    """Write a commit, end the segment; the name of the segment just completed."""
    return lab.psql(PRIMARY, 'SELECT txid_current(); SELECT pg_walfile_name(pg_switch_wal())').splitlines()[-1]


def ready_count(lab):
    data = lab.psql(PRIMARY, 'SHOW data_directory')
    out = lab.exec(PRIMARY, 'sh', '-c', 'ls %s/pg_wal/archive_status | grep -c "\\.ready$" || true' % data).stdout
    return int(out.strip() or 0)


# --- replication_lag ----------------------------------------------------------------------------------------

def test_both_replicas_streaming_primary_lists_both_and_everyone_is_healthy(fleet_lab):
    wait_caught_up(fleet_lab)
    args = dict(expected_replicas=REPLICAS, max_lag_bytes='64MB', max_lag_seconds='5m', fail_on_violation=True)
    run = run_module(fleet_lab, 'db', LAG, args, '--check')
    assert run.rc == 0, run.stdout + run.stderr
    results = host_results(run)
    assert sorted(results) == DB_HOSTS
    primary = results[PRIMARY]
    assert primary['role'] == 'primary' and primary['healthy'] and primary['violations'] == []
    assert primary['changed'] is False
    by_name = dict((s['application_name'], s) for s in primary['standbys'])
    assert sorted(by_name) == REPLICAS
    for name, entry in by_name.items():
        assert entry['state'] == 'streaming' and entry['is_replica'] and entry['lag_basis'] == 'replay', entry
        assert isinstance(entry['lag_bytes'], int) and 0 <= entry['lag_bytes'] < 64 * 1000 ** 2, entry
        assert isinstance(entry['lag_seconds'], float) and entry['lag_seconds'] >= 0, entry
        assert entry['replay_lsn'] and entry['client_addr'], entry
    for host in REPLICAS:
        own = results[host]
        assert own['role'] == 'replica' and own['healthy'], own
        assert own['replica']['name'] == host
        assert own['replica']['wal_receiver']['status'] == 'streaming'
        assert own['replica']['wal_receiver']['sender_host'] == fleet_lab.host_addr(PRIMARY)
        assert isinstance(own['replica']['lag_bytes'], int) and own['replica']['lag_seconds'] is not None
        assert 'conninfo' not in own['replica']['wal_receiver']  # it names the replication passfile


def test_role_mismatch_fails_that_host_in_words(fleet_lab):
    run = run_module(fleet_lab, 'db', LAG, dict(role='replica'))
    assert run.failed_hosts() == [PRIMARY] and run.ok_hosts() == REPLICAS
    msg = host_results(run)[PRIMARY]['msg']
    assert 'not a replica where one was expected' in msg and 'pg_is_in_recovery() is false' in msg
    run = run_module(fleet_lab, R1, LAG, dict(role='primary'))
    assert 'role=primary expected the primary' in host_results(run)[R1]['msg']


def test_bad_threshold_is_refused_before_connecting(fleet_lab):
    for value, words in (('nan', 'not a size'), ('inf', 'not a size'), ('-1MB', 'must not be negative')):
        result = host_results(run_module(fleet_lab, PRIMARY, LAG, dict(max_lag_bytes=value)))[PRIMARY]
        assert result['failed'] and words in result['msg'] and 'max_lag_bytes' in result['msg'], result


def test_paused_replay_flags_only_that_replica(fleet_lab):
    fleet_lab.psql(PRIMARY, 'SELECT txid_current()')  # a replayed commit, so replay lag in seconds can be told
    wait_caught_up(fleet_lab)
    try:
        fleet_lab.psql(R1, 'SELECT pg_wal_replay_pause()')
        wait_for('replay to pause on %s' % R1,
                 lambda: fleet_lab.psql(R1, 'SELECT pg_get_wal_replay_pause_state()') == 'paused', timeout=30)
        fleet_lab.psql(PRIMARY, 'DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id int, pad text); '
                                "INSERT INTO {t} SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g"
                       .format(t=BURST_TABLE))
        after = current_lsn(fleet_lab)
        wait_for('%s to replay the burst' % R2, lambda: replayed(fleet_lab, R2, after), timeout=60)
        wait_for('%s to receive the burst' % R1, lambda: fleet_lab.psql(
            R1, "SELECT pg_last_wal_receive_lsn() >= '%s'::pg_lsn" % after) == 't', timeout=60)

        run = run_module(fleet_lab, 'db', LAG, dict(max_lag_bytes='1MB', fail_on_violation=True))
        results = host_results(run)
        assert run.failed_hosts() == [PRIMARY, R1] and run.ok_hosts() == [R2], run.stdout
        primary = results[PRIMARY]
        by_name = dict((s['application_name'], s) for s in primary['standbys'])
        assert by_name[R1]['lag_bytes'] > 15 * 1000 ** 2 and by_name[R1]['caught_up'] is False
        assert by_name[R2]['lag_bytes'] < 1000 ** 2
        assert len(primary['violations']) == 1, primary['violations']
        assert primary['violations'][0].startswith(R1 + ' is ') and 'max_lag_bytes 976.6 KiB' in primary['violations'][0]
        assert str(by_name[R1]['lag_bytes']) in primary['violations'][0]
        own = results[R1]
        assert own['replica']['replay_paused'] is True and own['replica']['lag_bytes'] > 15 * 1000 ** 2
        assert own['replica']['caught_up'] is False and own['replica']['lag_seconds'] is not None
        assert 'pg_wal_replay_resume()' in own['msg'] and own['msg'].startswith(R1 + ' has received')
        assert results[R2]['healthy'] and results[R2]['replica']['caught_up'] is True
    finally:
        fleet_lab.psql(R1, 'SELECT pg_wal_replay_resume()')
        fleet_lab.psql(PRIMARY, 'DROP TABLE IF EXISTS %s' % BURST_TABLE)
    wait_caught_up(fleet_lab)
    run = run_module(fleet_lab, 'db', LAG, dict(max_lag_bytes='1MB', expected_replicas=2, fail_on_violation=True))
    assert run.rc == 0 and run.ok_hosts() == DB_HOSTS, run.stdout
    assert host_results(run)[R1]['replica']['replay_paused'] is False


@disruptive
def test_stopped_replica_missing_on_primary_and_unreachable_itself_while_the_other_stays_green(fleet_lab):
    try:
        fleet_lab.stop_pg(R2)
        wait_for('the primary to drop %s' % R2, lambda: R2 not in streaming_names(fleet_lab), timeout=60)
        run = run_module(fleet_lab, 'db', LAG, dict(expected_replicas=REPLICAS, max_lag_bytes='64MB',
                                                    fail_on_violation=True), '-l', 'db')
        results = host_results(run)
        assert sorted(results) == DB_HOSTS  # one failing host never sinks the batch
        assert run.failed_hosts() == [PRIMARY, R2] and run.ok_hosts() == [R1], run.stdout
        primary = results[PRIMARY]
        assert primary['violations'] == [v for v in primary['violations'] if v.startswith(R2 + ' is expected')]
        assert len(primary['violations']) == 1 and 'not connected to this primary' in primary['msg']
        assert [s['application_name'] for s in primary['standbys']] == [R1]
        words = results[R2]['msg']
        assert results[R2]['stage'] == 'connect'
        assert 'could not connect to PostgreSQL as postgres@' in words and 'Is PostgreSQL running' in words, words
        assert results[R1]['healthy'] and results[R1]['replica']['wal_receiver']['status'] == 'streaming'
    finally:
        fleet_lab.start_pg(R2)
    wait_for('%s to stream again' % R2, lambda: R2 in streaming_names(fleet_lab), timeout=90)
    wait_caught_up(fleet_lab)
    run = run_module(fleet_lab, 'db', LAG, dict(expected_replicas=REPLICAS, fail_on_violation=True))
    assert run.rc == 0, run.stdout


def test_inactive_slot_holding_wal_is_flagged(fleet_lab):
    try:
        fleet_lab.psql(PRIMARY, "SELECT pg_create_physical_replication_slot('%s', true)" % SLOT)
        for _round in range(3):
            switch_wal(fleet_lab)
        run = run_module(fleet_lab, PRIMARY, LAG, dict(max_slot_retained_bytes='20MB', fail_on_violation=True))
        result = host_results(run)[PRIMARY]
        assert run.failed_hosts() == [PRIMARY]
        slot = [s for s in result['slots'] if s['name'] == SLOT]
        assert len(slot) == 1 and slot[0]['type'] == 'physical' and slot[0]['active'] is False, result['slots']
        assert slot[0]['retained_bytes'] >= 2 * 16 * 1024 ** 2 and slot[0]['restart_lsn']
        words = [v for v in result['violations'] if SLOT in v]
        assert len(words) == 1 and 'inactive' in words[0] and str(slot[0]['retained_bytes']) in words[0]
        assert 'max_slot_retained_bytes 19.1 MiB' in words[0] and 'pg_drop_replication_slot' in words[0]
        # Without the threshold the slot is reported, not judged.
        quiet = host_results(run_module(fleet_lab, PRIMARY, LAG, dict(role='auto')))[PRIMARY]
        assert quiet['healthy'] and any(s['name'] == SLOT for s in quiet['slots'])
    finally:
        fleet_lab.psql(PRIMARY, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                                "WHERE slot_name = '%s'" % SLOT)


def test_password_only_primary_without_replicas(fleet_lab):
    pgdg = fleet_lab.pgdg
    login = dict(login_host=fleet_lab.host_addr(pgdg), login_user='{{ dbfleet_pg_admin_user }}',
                 login_password='{{ dbfleet_pg_admin_password }}')
    result = host_results(run_module(fleet_lab, pgdg, LAG, dict(login, expected_replicas=1)))[pgdg]
    assert result['role'] == 'primary' and result['standbys'] == [] and result['healthy'] is False, result
    assert result['violations'] == ['0 standby(s) stream from this primary (none), 1 expected (expected_replicas)']
    archive = host_results(run_module(fleet_lab, pgdg, ARCHIVE, login))[pgdg]
    mode = fleet_lab.psql(pgdg, 'SHOW archive_mode')  # the lab makes it off; pg_wal_archiving tests may turn it on
    assert archive['role'] == 'primary' and archive['archive_mode'] == mode, archive
    if mode == 'off':
        assert archive['archiving_here'] is False and not archive['healthy']
        assert 'archive_mode=off' in archive['violations'][0]
    else:
        assert archive['archiving_here'] is True and archive['archive_command'] == fleet_lab.psql(pgdg, 'SHOW archive_command')
    # Without the password: fails at once, in words, naming what to set.
    started = time.monotonic()
    failed = host_results(run_module(fleet_lab, pgdg, LAG, dict(role='auto')))[pgdg]
    assert failed['failed'] and failed['stage'] == 'connect' and 'login_password' in failed['msg'], failed
    assert time.monotonic() - started < 30


# --- wal_archive_status -------------------------------------------------------------------------------------

def wait_archived(lab, segment, timeout=60):
    directory = lab.vars['dbfleet_wal_archive']
    wait_for('%s to be archived' % segment, lambda: lab.exec(PRIMARY, 'test', '-f', '%s/%s' % (directory, segment),
                                                             check=False).returncode == 0 and ready_count(lab) == 0,
             timeout=timeout)


def test_archiving_healthy_on_the_primary_and_idle_safe(fleet_lab):
    directory = fleet_lab.vars['dbfleet_wal_archive']
    command = fleet_lab.psql(PRIMARY, 'SHOW archive_command')
    segment = switch_wal(fleet_lab)
    wait_archived(fleet_lab, segment)
    time.sleep(3)  # the last archive is now older than max_archive_age, and nothing waits
    args = dict(archive_dir=directory, max_archive_age='2s', max_ready_segments=2, fail_on_violation=True)
    run = run_module(fleet_lab, 'db', ARCHIVE, args, '--check')
    results = host_results(run)
    assert run.rc == 0 and run.ok_hosts() == DB_HOSTS, run.stdout
    primary = results[PRIMARY]
    assert primary['archiving_here'] and primary['healthy'] and primary['caught_up'] is True, primary
    assert primary['archive_command'] == command and primary['archive_mode'] == 'on'
    assert primary['ready_segments'] == 0 and primary['failing'] is False
    assert primary['last_archived_age_seconds'] > 2  # older than max_archive_age: idle, not stale
    newest = primary['archive_dir']['newest']
    assert newest['name'] >= segment and primary['archive_dir']['segments'] >= 1, primary['archive_dir']
    assert primary['current_segment'] > segment
    for host in REPLICAS:
        assert results[host]['archiving_here'] is False and results[host]['healthy']
        assert 'archiving happens on the primary' in results[host]['note']


def _restore_archive_command(lab, previous, source_file):
    if source_file.endswith('postgresql.auto.conf'):
        lab.psql(PRIMARY, "ALTER SYSTEM SET archive_command = '%s'" % previous.replace("'", "''"))
    else:
        lab.psql(PRIMARY, 'ALTER SYSTEM RESET archive_command')
    lab.psql(PRIMARY, 'SELECT pg_reload_conf()')
    wait_for('archive_command to be back', lambda: lab.psql(PRIMARY, 'SHOW archive_command') == previous, timeout=30)


def test_broken_archive_command_turns_only_the_primary_red_naming_the_segment(fleet_lab):
    directory = fleet_lab.vars['dbfleet_wal_archive']
    previous = fleet_lab.psql(PRIMARY, 'SHOW archive_command')
    source_file = fleet_lab.psql(PRIMARY, "SELECT coalesce(sourcefile, '') FROM pg_settings WHERE name = 'archive_command'")
    assert previous not in ('', '(disabled)', 'false')
    wait_archived(fleet_lab, switch_wal(fleet_lab))
    switched = []
    try:
        fleet_lab.psql(PRIMARY, "ALTER SYSTEM SET archive_command = 'false'")
        fleet_lab.psql(PRIMARY, 'SELECT pg_reload_conf()')
        wait_for('archive_command to be false', lambda: fleet_lab.psql(PRIMARY, 'SHOW archive_command') == 'false')
        time.sleep(1)  # the archiver reloads its configuration on the same signal

        def failing():
            state = archiver(fleet_lab)
            if state['failing'] and state['last_failed_wal'] in switched:
                return state
            if not switched or len(switched) < 1 + int(time.monotonic() - started) // 5:
                switched.append(switch_wal(fleet_lab))
            return None
        started = time.monotonic()
        state = wait_for('the archiver to count a failure', failing, timeout=40)

        args = dict(archive_dir=directory, max_archive_age='10m', fail_on_violation=True)
        run = run_module(fleet_lab, 'db', ARCHIVE, args)
        results = host_results(run)
        assert run.failed_hosts() == [PRIMARY] and run.ok_hosts() == REPLICAS, run.stdout
        primary = results[PRIMARY]
        assert primary['failing'] is True and primary['last_failed_wal'] == state['last_failed_wal']
        assert primary['archive_command'] == 'false' and primary['ready_segments'] >= 1
        assert primary['msg'].startswith('WAL archiving is failing: %s could not be archived' % state['last_failed_wal'])
        assert "archive_command is 'false'" in primary['msg']
        assert fleet_lab.exec(PRIMARY, 'test', '-f', '%s/%s' % (directory, state['last_failed_wal']),
                              check=False).returncode != 0
    finally:
        _restore_archive_command(fleet_lab, previous, source_file)
    if switched:
        wait_archived(fleet_lab, switched[-1], timeout=120)
    wait_for('pg_stat_archiver to report a success after the failure', lambda: not archiver(fleet_lab)['failing'],
             timeout=120)
    run = run_module(fleet_lab, PRIMARY, ARCHIVE, dict(archive_dir=directory, fail_on_violation=True))
    assert run.rc == 0 and host_results(run)[PRIMARY]['archive_command'] == previous, run.stdout

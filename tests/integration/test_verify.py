# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""verify_backups.yml and replication_health.yml on the fleet lab: all green after a fresh nightly backup, then
each failure the issue names turns exactly the right host red, in words, while the others stay green and the run
completes. Every test puts the lab back in ``finally``.

Opt-in: DBFLEET_LAB_DISRUPTIVE=1 (a replica stopped; archive_command broken on the shared primary),
DBFLEET_LAB_SLOW=1 (an idle primary watched for two minutes).
"""

from __future__ import annotations

import time

import pytest

from tests.integration.test_replication_health import (
    _restore_archive_command,
    archiver,
    current_lsn,
    disruptive,
    replayed,
    slow,
    streaming_names,
    switch_wal,
    wait_archived,
    wait_caught_up,
    wait_for,
)
from tests.integration.verify_lab import (
    DB_HOSTS,
    HEALTH,
    PRIMARY,
    R1,
    R2,
    REPLICAS,
    changed_newest_dump,
    fresh_backups,
    run_verify,
    verdicts,
    words,
)

SLOT = 'dbfleet_verify_slot'
BURST = 'dbfleet_verify_burst'


@pytest.fixture(scope='module')
def lab(fleet_lab):
    fresh_backups(fleet_lab)
    wait_caught_up(fleet_lab)
    return fleet_lab


def assert_only_red(run, red, must_say):
    """``red`` hosts failed (their verdict names every phrase of ``must_say``), every other db host is green."""
    results = verdicts(run)
    assert sorted(results) == DB_HOSTS, run.stdout[-3000:]  # the run completed on every host
    assert run.failed_hosts() == sorted(red), dict((h, v['violations']) for h, v in results.items())
    for host in DB_HOSTS:
        if host in red:
            said = words(results[host])
            for phrase in must_say:
                assert phrase in said, (host, phrase, said)
        else:
            assert results[host]['healthy'] and results[host]['violations'] == [], (host, results[host])
    return results


def test_all_green_after_a_fresh_nightly_backup(lab):
    run = run_verify(lab, '--check')  # plan mode: every check only reads, so --check runs the same checks
    assert run.rc == 0, run.stdout[-4000:]
    results = assert_only_red(run, [], [])
    assert results[PRIMARY]['role'] == 'primary' and results[R1]['role'] == results[R2]['role'] == 'replica'
    backups = run.results("Gather this host's backup facts")[PRIMARY]
    names = dict((s['name'], s) for s in backups['schedules'])
    assert names['nightly']['last_run']['status'] == 'ok' and names['nightly']['died'] is None
    app = [d for d in names['nightly']['databases'] if d['db'] == 'app_prod'][0]
    newest = app['newest']
    assert newest['path'].startswith('/srv/backups/app_prod-') and newest['checksum'] == 'ok' and newest['valid'] is True
    on_disk = lab.exec(PRIMARY, 'sha256sum', newest['path'], check=False).stdout.split()
    assert not on_disk or newest['sha256'] == on_disk[0]  # (another test's clean-up may have removed it since)
    assert newest['archive']['dbname'] == 'app_prod' and newest['offsite']['status'] == 'ok'
    assert len(app['history']) >= 2 and abs(newest['size_change_pct']) < 5, app['history'][:3]
    assert backups['basebackup']['path'].startswith('/srv/basebackups/base-')
    archive = run.results('Look at WAL archiving')[PRIMARY]
    assert archive['healthy'] and archive['archiving_here']
    assert 'skipped' in run.results('Look at WAL archiving')[R1]  # replicas leave archiving to the primary
    for task in run.tasks:
        for host, result in task['hosts'].items():
            assert not result.get('changed'), (task['task']['name'], host)


def test_newest_dump_replaced_by_a_200k_file_turns_only_the_primary_red(lab):
    with changed_newest_dump(lab, 'head -c 200000 /dev/urandom > $f') as newest:
        run = run_verify(lab)
        assert_only_red(run, [PRIMARY], ['%s is 200000 bytes but its manifest says' % newest,
                                         'smaller than the median', 'backups: '])
        said = words(verdicts(run)[PRIMARY])
        assert 'not a complete dump' in said  # not a pg_dump archive either


def test_corrupted_dump_bytes_turn_only_the_primary_red(lab):
    with changed_newest_dump(lab, 'dd if=/dev/urandom of=$f bs=1 count=64 seek=$(( $(stat -c %s $f) / 2 )) '
                                  'conv=notrunc status=none') as newest:
        run = run_verify(lab)
        results = assert_only_red(run, [PRIMARY], ['%s has SHA-256' % newest, 'but its manifest says'])
        said = words(results[PRIMARY])
        assert 'bytes but its manifest says' not in said  # same size: only the checksum can tell
        assert 'stream is damaged' in said or 'pg_restore --list cannot read' in said, said


def test_inactive_slot_holding_wal_turns_only_the_primary_red(lab):
    try:
        lab.psql(PRIMARY, "SELECT pg_create_physical_replication_slot('%s', true)" % SLOT)
        for _round in range(3):
            switch_wal(lab)
        run = run_verify(lab, extra_vars={'verify_max_slot_retained_bytes': '20MB'})
        assert_only_red(run, [PRIMARY], ['replication: replication slot %s (physical, inactive) holds back' % SLOT,
                                         'pg_drop_replication_slot'])
    finally:
        lab.psql(PRIMARY, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '%s'" % SLOT)


@disruptive
def test_broken_archive_command_and_a_wal_switch_turn_only_the_primary_red(lab):
    previous = lab.psql(PRIMARY, 'SHOW archive_command')
    source_file = lab.psql(PRIMARY, "SELECT coalesce(sourcefile, '') FROM pg_settings WHERE name = 'archive_command'")
    switched = []
    try:
        lab.psql(PRIMARY, "ALTER SYSTEM SET archive_command = 'false'; SELECT pg_reload_conf()")
        wait_for('archive_command to be false', lambda: lab.psql(PRIMARY, 'SHOW archive_command') == 'false')
        time.sleep(1)
        started = time.monotonic()

        def failing():
            if archiver(lab)['failing']:  # whichever segment waited first: nothing is archived since the break
                return True
            if len(switched) < 1 + int(time.monotonic() - started) // 5:
                switched.append(switch_wal(lab))
            return False
        wait_for('the archiver to count a failure', failing, timeout=60)
        run = run_verify(lab)
        assert_only_red(run, [PRIMARY], ['archiving: WAL archiving is failing: %s could not be archived'
                                         % archiver(lab)['last_failed_wal'], "archive_command is 'false'"])
    finally:
        _restore_archive_command(lab, previous, source_file)
        # Leave no backlog behind for the next test: every waiting segment archived, the archiver healthy again.
        segment = switch_wal(lab)
        wait_archived(lab, segment, timeout=180)
        wait_for('archiving to succeed again', lambda: not archiver(lab)['failing'], timeout=120)


@disruptive
def test_stopped_replica_turns_only_that_replica_red(lab):
    try:
        lab.stop_pg(R2)
        wait_for('the primary to drop %s' % R2, lambda: R2 not in streaming_names(lab), timeout=60)
        started = time.monotonic()
        run = run_verify(lab)
        assert time.monotonic() - started < 90  # a stopped server fails in seconds, never hangs the run
        results = assert_only_red(run, [R2], ['replication: the check could not run: could not connect to PostgreSQL',
                                              'as %s sees it: %s is expected (expected_replicas) but is not connected'
                                              % (PRIMARY, R2)])
        assert results[PRIMARY]['role'] == 'primary'
    finally:
        lab.start_pg(R2)
    wait_for('%s to stream again' % R2, lambda: R2 in streaming_names(lab), timeout=90)


# --- replication_health.yml --------------------------------------------------------------------------------------

def lag_results(run):
    return run.results('Look at streaming replication')


def test_replication_health_reports_lag_in_bytes_and_seconds_and_is_green(lab):
    run = run_verify(lab, playbook=HEALTH)
    assert run.rc == 0 and run.ok_hosts() == DB_HOSTS, run.stdout[-3000:]
    results = lag_results(run)
    standbys = dict((s['application_name'], s) for s in results[PRIMARY]['standbys'])
    assert sorted(standbys) == REPLICAS
    for name, entry in standbys.items():
        assert entry['state'] == 'streaming', entry
        assert isinstance(entry['lag_bytes'], int) and isinstance(entry['lag_seconds'], float), entry
    for host in REPLICAS:
        own = results[host]['replica']
        assert isinstance(own['lag_bytes'], int) and isinstance(own['lag_seconds'], float), own
    assert 'skipped' in run.results("Gather this host's backup facts")[PRIMARY]  # no backup check in this playbook


def test_paused_replica_after_a_burst_is_flagged_alone_and_green_again_after_resume(lab):
    lab.psql(PRIMARY, 'SELECT txid_current()')
    wait_caught_up(lab)
    thresholds = {'verify_max_lag_bytes': '1MB'}
    try:
        lab.psql(R1, 'SELECT pg_wal_replay_pause()')
        wait_for('replay to pause on %s' % R1,
                 lambda: lab.psql(R1, 'SELECT pg_get_wal_replay_pause_state()') == 'paused', timeout=30)
        lab.psql(PRIMARY, 'DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id int, pad text); '
                          "INSERT INTO {t} SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g".format(t=BURST))
        after = current_lsn(lab)
        wait_for('%s to replay the burst' % R2, lambda: replayed(lab, R2, after), timeout=60)
        wait_for('%s to receive the burst' % R1,
                 lambda: lab.psql(R1, "SELECT pg_last_wal_receive_lsn() >= '%s'::pg_lsn" % after) == 't', timeout=60)
        run = run_verify(lab, playbook=HEALTH, extra_vars=thresholds)
        results = assert_only_red(run, [R1], ['%s has received' % R1, 'over max_lag_bytes',
                                              'pg_wal_replay_resume()', 'as %s sees it: %s is ' % (PRIMARY, R1)])
        assert lag_results(run)[R1]['replica']['replay_paused'] is True
        assert results[PRIMARY]['healthy']  # the primary's view of R1 is R1's problem
    finally:
        lab.psql(R1, 'SELECT pg_wal_replay_resume()')
        lab.psql(PRIMARY, 'DROP TABLE IF EXISTS %s' % BURST)
    wait_caught_up(lab)
    run = run_verify(lab, playbook=HEALTH, extra_vars=thresholds)
    assert run.rc == 0 and run.ok_hosts() == DB_HOSTS, run.stdout[-3000:]
    assert_only_red(run, [], [])


@slow
def test_idle_primary_for_two_minutes_never_turns_a_replica_red(lab):
    lab.psql(PRIMARY, 'SELECT txid_current()')
    wait_caught_up(lab)
    thresholds = {'verify_max_lag_seconds': '60s', 'verify_max_lag_bytes': '16MB'}
    deadline = time.monotonic() + 240  # two minutes of idleness and some slack; others' writes make it skip
    while True:
        run = run_verify(lab, playbook=HEALTH, extra_vars=thresholds)
        assert run.rc == 0 and run.ok_hosts() == DB_HOSTS, run.stdout[-3000:]  # never red, at any moment
        ages = dict((h, lag_results(run)[h]['replica']['last_xact_replay_age_seconds']) for h in REPLICAS)
        if all(age is not None and age >= 120 for age in ages.values()):
            break
        if time.monotonic() > deadline:
            pytest.skip('the primary was not idle for two minutes (other writers committed): ages %s' % ages)
        time.sleep(30)
    results = lag_results(run)
    for host in REPLICAS:
        own = results[host]['replica']
        # The naive "now() - last replay" would say two minutes of lag, over max_lag_seconds 60.
        assert own['last_xact_replay_age_seconds'] > 60 and own['caught_up'] is True and own['lag_seconds'] == 0, own
    for entry in results[PRIMARY]['standbys']:
        assert entry['lag_seconds'] == 0 and entry['caught_up'] is True, entry

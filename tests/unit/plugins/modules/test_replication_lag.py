# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""replication_lag's verdicts from given rows, without a server."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.postgresql.plugins.modules import replication_lag as rl

MB = 1000 ** 2


def standby(name, lag_bytes=0, replay_lag=None, state='streaming', replay_lsn='0/6000000', flush_lsn='0/6000000',
            client_addr='127.0.0.1'):
    return rl.standby_view(dict(
        application_name=name, client_addr=client_addr, state=state, sync_state='async', sent_lsn='0/6000000',
        write_lsn='0/6000000', flush_lsn=flush_lsn, replay_lsn=replay_lsn, lag_bytes=lag_bytes,
        write_lag_seconds=replay_lag, flush_lag_seconds=replay_lag, replay_lag_seconds=replay_lag,
        backend_start='2026-12-01T21:46:54+00:00', reply_age_seconds=1.0))


def thresholds(**kwargs):
    return rl.parse_thresholds(kwargs)


# --- thresholds ---------------------------------------------------------------------------------------------

def test_thresholds_accept_units():
    t = thresholds(max_lag_bytes='16MB', max_lag_seconds='5m', max_slot_retained_bytes='1GiB', expected_replicas=2)
    assert t == dict(max_lag_bytes=16 * MB, max_lag_seconds=300, max_slot_retained_bytes=1024 ** 3, expected_replicas=2)


def test_thresholds_absent_are_none():
    assert thresholds() == dict(max_lag_bytes=None, max_lag_seconds=None, max_slot_retained_bytes=None,
                                expected_replicas=None)


@pytest.mark.parametrize('option,value,words', [
    ('max_lag_bytes', 'nan', 'not a size'),
    ('max_lag_bytes', 'inf', 'not a size'),
    ('max_lag_bytes', '-1', 'must not be negative'),
    ('max_lag_bytes', '16 parsecs', 'not a size'),
    ('max_lag_bytes', '1' + '0' * 400, 'too large'),
    ('max_lag_seconds', 'nan', 'not a duration'),
    ('max_lag_seconds', 'inf', 'not a duration'),
    ('max_lag_seconds', '0', 'greater than zero'),
    ('max_lag_seconds', '-5s', 'must not be negative'),
    ('max_slot_retained_bytes', 'lots', 'not a size'),
])
def test_bad_thresholds_name_the_option(option, value, words):
    with pytest.raises(ValueError, match=words) as info:
        thresholds(**{option: value})
    assert option in str(info.value)


@pytest.mark.parametrize('value,expected', [
    (None, None), (2, 2), ('3', 3), (0, 0), (2.0, 2), (['db-replica-1', 'db-replica-2'], ['db-replica-1', 'db-replica-2']),
    ('db-replica-1, db-replica-2', ['db-replica-1', 'db-replica-2']), (['a', 'a'], ['a']), ([], None), ([7], ['7']),
])
def test_expected_replicas(value, expected):
    assert rl.parse_expected_replicas(value) == expected


@pytest.mark.parametrize('value,words', [
    (True, 'neither'), (-1, 'negative'), ('-2', 'negative'), (float('nan'), 'whole number'), (2.5, 'whole number'),
    ([''], 'empty name'), ([['nested']], 'application names'), ({'a': 1}, 'neither'),
])
def test_bad_expected_replicas(value, words):
    with pytest.raises(ValueError, match=words):
        rl.parse_expected_replicas(value)


# --- role -------------------------------------------------------------------------------------------------------

def test_role_auto_follows_recovery():
    assert rl.resolve_role('auto', True) == 'replica'
    assert rl.resolve_role('auto', False) == 'primary'
    assert rl.resolve_role('replica', True) == 'replica'


def test_not_a_replica_where_one_was_expected():
    with pytest.raises(ValueError, match='not a replica where one was expected') as info:
        rl.resolve_role('replica', False, 'the server at postgres@127.0.0.12:5432')
    assert 'promoted' in str(info.value) and '127.0.0.12' in str(info.value)


def test_replica_where_primary_was_expected():
    with pytest.raises(ValueError, match='is a replica'):
        rl.resolve_role('primary', True)


# --- the primary's view -----------------------------------------------------------------------------------------

def test_caught_up_idle_standby_has_zero_lag_even_without_measured_lag():
    entry = standby('db-replica-1', lag_bytes=0, replay_lag=None)
    assert entry['caught_up'] is True and entry['lag_seconds'] == 0 and entry['is_replica']


def test_lagging_standby_named_with_bytes_and_seconds():
    standbys = [standby('db-replica-1', lag_bytes=22 * MB, replay_lag=75.5), standby('db-replica-2')]
    violations = rl.primary_violations(standbys, thresholds(max_lag_bytes='1MB', max_lag_seconds='60'))
    assert len(violations) == 2
    assert all(v.startswith('db-replica-1 ') for v in violations)
    assert '22000000 bytes' in violations[0] and 'max_lag_bytes' in violations[0]
    assert '75.5 s' in violations[1] and 'max_lag_seconds 1m' in violations[1]


def test_threshold_is_inclusive_of_equal_values():
    assert rl.primary_violations([standby('r', lag_bytes=MB)], thresholds(max_lag_bytes='1MB')) == []


def test_stale_replay_lag_of_a_caught_up_standby_is_ignored():
    # The server keeps the last measured lag for a while after the standby caught up.
    entry = standby('db-replica-1', lag_bytes=0, replay_lag=120.0)
    assert rl.primary_violations([entry], thresholds(max_lag_seconds='60')) == []


def test_expected_by_name_missing_or_not_streaming():
    standbys = [standby('db-replica-1'), standby('db-replica-3', state='catchup')]
    violations = rl.primary_violations(standbys, thresholds(expected_replicas=['db-replica-1', 'db-replica-2',
                                                                               'db-replica-3']))
    assert len(violations) == 2
    assert violations[0].startswith('db-replica-2 is expected') and 'not connected' in violations[0]
    assert violations[1] == 'db-replica-3 is connected but not streaming (state catchup)'


def test_expected_count_ignores_base_backups_and_wal_receivers():
    standbys = [standby('db-replica-1'), standby('pg_basebackup', state='backup', replay_lsn=None),
                standby('pg_receivewal', replay_lsn=None, lag_bytes=5 * MB)]
    assert [s['is_replica'] for s in standbys] == [True, False, False]
    assert standbys[2]['lag_basis'] == 'flush' and standbys[2]['lag_seconds'] is None
    violations = rl.primary_violations(standbys, thresholds(expected_replicas=2))
    assert violations == ['1 standby(s) stream from this primary (db-replica-1), 2 expected (expected_replicas)']


def test_base_backup_in_progress_is_never_judged():
    backup = standby('pg_basebackup', state='backup', replay_lsn=None, lag_bytes=500 * MB)
    assert rl.primary_violations([backup], thresholds(max_lag_bytes='1MB')) == []


def test_nothing_expected_and_no_standby_is_healthy():
    assert rl.primary_violations([], thresholds(max_lag_bytes='1MB')) == []
    assert rl.primary_violations([], thresholds(expected_replicas=0)) == []


def test_unnamed_standby_named_by_address():
    violations = rl.primary_violations([standby('', lag_bytes=9 * MB)], thresholds(max_lag_bytes='1MB'))
    assert violations[0].startswith('the standby at 127.0.0.1 ')


def test_rows_without_positions_mean_no_privilege():
    hidden = dict(application_name='db-replica-1', state=None, sent_lsn=None)
    assert 'pg_monitor' in rl.visibility_problem([hidden])
    assert rl.visibility_problem([dict(application_name='x', state='streaming', sent_lsn='0/1')]) is None


# --- slots ------------------------------------------------------------------------------------------------------

def test_inactive_slot_over_limit_says_how_to_drop_it():
    slots = [rl.slot_view(('dbfleet_test_slot', 'physical', False, None, '0/3000000', 'reserved', 48 * MB)),
             rl.slot_view(('small', 'physical', False, None, '0/6000000', 'reserved', 1000))]
    violations = rl.slot_violations(slots, thresholds(max_slot_retained_bytes='16MB'))
    assert len(violations) == 1
    assert 'dbfleet_test_slot (physical, inactive)' in violations[0] and '48000000 bytes' in violations[0]
    assert "pg_drop_replication_slot('dbfleet_test_slot')" in violations[0]


def test_slot_without_reserved_wal_and_lost_slot():
    unreserved = rl.slot_view(('fresh', 'physical', False, None, None, None, None))
    lost = rl.slot_view(("o'brien", 'logical', False, 'app_prod', '0/1000000', 'lost', 5))
    assert unreserved['retained_bytes'] is None
    violations = rl.slot_violations([unreserved, lost], thresholds(max_slot_retained_bytes='1GB'))
    assert len(violations) == 1 and 'has lost WAL' in violations[0]
    assert "pg_drop_replication_slot('o''brien')" in violations[0]


def test_no_slot_threshold_no_slot_verdict():
    slot = rl.slot_view(('big', 'physical', False, None, '0/1000000', 'reserved', 900 * MB))
    assert rl.slot_violations([slot], thresholds()) == []


# --- the replica's own view: idle-safety ------------------------------------------------------------------------

RECEIVER = dict(status='streaming', sender_host='127.0.0.11', sender_port=5432)
CONNINFO = "user=replicator passfile=/x dbname=replication host=127.0.0.11 application_name=db-replica-1 sslmode=prefer"


def replica(receive='0/6000000', replay='0/6000000', diff=0, ts='2026-12-01T10:00:00+00:00', age=7200.0,
            pause='not paused', receiver='default', conninfo=CONNINFO):
    receiver = dict(RECEIVER) if receiver == 'default' else receiver
    return rl.replica_view((receive, replay, diff, ts, age, pause), receiver, conninfo, 1.0, '15/main')


def test_idle_primary_caught_up_replica_is_not_lagging_however_old_the_last_commit():
    view = replica(age=7200.0)
    assert view['caught_up'] is True and view['lag_seconds'] == 0 and view['last_xact_replay_age_seconds'] == 7200
    assert rl.replica_violations(view, thresholds(max_lag_seconds='60', max_lag_bytes='1MB')) == []


def test_replay_behind_received_counts_the_age_of_the_last_replayed_commit():
    view = replica(receive='0/7400000', replay='0/6000000', diff=20 * MB, age=95.0, pause='paused')
    assert view['caught_up'] is False and view['lag_seconds'] == 95 and view['replay_paused']
    violations = rl.replica_violations(view, thresholds(max_lag_seconds='60', max_lag_bytes='1MB'))
    assert len(violations) == 2
    assert violations[0].startswith('db-replica-1 has received') and '20000000 bytes' in violations[0]
    assert 'pg_wal_replay_resume()' in violations[0]
    assert '1m 35s' in violations[1] and 'max_lag_seconds 1m' in violations[1]


def test_receive_behind_replay_after_restart_is_caught_up():
    view = replica(receive='0/6000000', replay='0/6000060', diff=-96)
    assert view['lag_bytes'] == 0 and view['caught_up'] is True


def test_paused_but_caught_up_is_reported_not_judged():
    view = replica(pause='paused')
    assert view['replay_paused'] and rl.replica_violations(view, thresholds(max_lag_bytes='1MB')) == []


def test_no_replayed_transaction_yet_means_unknown_seconds_not_zero():
    view = replica(receive='0/7000000', diff=16 * MB, ts=None, age=None)
    assert view['lag_seconds'] is None and view['caught_up'] is False
    assert rl.replica_violations(view, thresholds(max_lag_seconds='60')) == []


def test_no_wal_receiver_is_a_violation_and_lag_unknown():
    view = replica(receive=None, diff=None, receiver=None, conninfo=None)
    assert view['caught_up'] is None and view['lag_seconds'] is None and view['name'] == '15/main'
    violations = rl.replica_violations(view, thresholds())
    assert violations == [v for v in violations if 'no WAL receiver' in v] and len(violations) == 1


def test_receiver_not_streaming_is_a_violation():
    view = replica(receiver=dict(RECEIVER, status='waiting'))
    assert 'WAL receiver is waiting' in rl.replica_violations(view, thresholds())[0]


@pytest.mark.parametrize('conninfo,name', [
    ("host=a application_name=db-replica-2 port=5432", 'db-replica-2'),
    ("application_name='my replica' host=a", 'my replica'),
    ("application_name='it\\'s' host=a", "it's"),
    ("host=a fallback_application_name=15/main", None),
    (None, None),
])
def test_appname_from_conninfo(conninfo, name):
    assert rl.appname_from_conninfo(conninfo) == name


def test_slots_statement_reference_point():
    assert 'pg_current_wal_lsn()' in rl.slots_statement(False)[0]
    assert 'pg_last_wal_replay_lsn()' in rl.slots_statement(True)[0]


def test_pause_state_sql_by_version():
    assert 'pg_get_wal_replay_pause_state' in rl.replica_statements(150000)[0][0]
    assert 'pg_is_wal_replay_paused' in rl.replica_statements(130000)[0][0]

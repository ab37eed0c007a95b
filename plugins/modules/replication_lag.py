#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: replication_lag
short_description: Streaming replication state and lag in bytes and seconds, idle-safe, with a verdict
version_added: 0.2.0
description:
  - On a primary, lists every standby connected to it (C(pg_stat_replication)) with its state, its sent, written,
    flushed and replayed positions, how many bytes of WAL it has still to replay, and the write, flush and replay
    lag in seconds as the server measures them; and every replication slot (C(pg_replication_slots)) with the WAL
    it holds back.
  - On a replica, compares the WAL it has received with the WAL it has replayed, reports the WAL receiver
    (C(pg_stat_wal_receiver)), whether replay is paused, and the time of the last replayed transaction.
  - Idle-safe - a replica that has replayed everything it received is caught up (lag 0 seconds), however long ago
    the primary last committed anything. Only when replay is behind what was received does the age of the last
    replayed transaction (now minus C(pg_last_xact_replay_timestamp)) count as replay lag. An idle primary never
    turns its replicas red.
  - Thresholds (O(max_lag_bytes), O(max_lag_seconds), O(expected_replicas), O(max_slot_retained_bytes)) turn the
    numbers into a verdict - RV(healthy) and RV(violations), one sentence per problem naming the standby and the
    number. With O(fail_on_violation=true) any violation fails the host, so one lagging replica shows up red in the
    play recap while the other hosts still report.
  - O(role=auto) asks the server (C(pg_is_in_recovery)). O(role=primary) or O(role=replica) fails the host when
    the server is the other kind - for example a replica that was promoted.
  - Never prompts for a password and never waits longer than O(connect_timeout) seconds for a server. Changes
    nothing, in any mode.
extends_documentation_fragment:
  - dbfleet.postgresql.postgres
  - dbfleet.postgresql.connect_as
  - dbfleet.postgresql.safety
  - dbfleet.postgresql.read_only
options:
  role:
    description:
      - What the server is expected to be. V(auto) looks at C(pg_is_in_recovery).
      - V(primary) fails the host when the server is in recovery, V(replica) when it is not.
    type: str
    choices: [auto, primary, replica]
    default: auto
  max_lag_bytes:
    description:
      - Most WAL a standby may still have to replay, in bytes or with a unit (V(16MB), V(1GiB); k, M, G, T are powers
        of 1000, KiB, MiB, GiB, TiB of 1024).
      - On a primary it applies to every standby (current WAL position minus the standby's replay position); on a
        replica to the WAL received but not yet replayed.
    type: str
  max_lag_seconds:
    description:
      - Most replay lag a standby may have, in seconds or with a unit (V(90s), V(5m), V(1h)).
      - On a primary this is the server's C(replay_lag) for each standby; on a replica the age of the last replayed
        transaction, counted only while replay is behind what was received (a caught-up replica has lag 0).
    type: str
  expected_replicas:
    description:
      - The standbys that must be streaming from this primary - a list of their C(application_name)s (as set in
        their C(primary_conninfo), shown by C(pg_stat_replication)), or a number of standbys.
      - A standby expected by name but not connected, or connected but not streaming, is a violation; so is a
        number of streaming standbys below the one given. Checked on a primary only.
    type: raw
  max_slot_retained_bytes:
    description:
      - Most WAL a replication slot may hold back (bytes or a unit, as for O(max_lag_bytes)). An inactive slot
        keeps every WAL segment from its C(restart_lsn) on until the disk fills.
      - Retained WAL is measured from the current WAL position on a primary, from the last replayed position on a
        replica.
    type: str
  fail_on_violation:
    description: Fail the host when RV(violations) is not empty.
    type: bool
    default: false
requirements:
  - psycopg 3 on the host (Debian/Ubuntu python3-psycopg, RHEL-family python3-psycopg3)
notes:
  - The replication positions of other sessions are visible only to superusers and roles with C(pg_monitor) (or
    C(pg_read_all_stats)); with a role that cannot see them the module fails and says so.
  - A standby without C(application_name) in its C(primary_conninfo) shows up under its C(cluster_name) or as
    C(walreceiver); give each replica its own name to check it by name.
  - Clients that receive WAL but do not replay it (C(pg_receivewal), the WAL stream of C(pg_basebackup)) are listed
    with their lag measured from their flush position (RV(standbys[].lag_basis=flush)) and are not counted as
    replicas; base backups in progress (state C(backup)) are listed and never judged.
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Both replicas streaming, none more than 64 MB or a minute behind
  dbfleet.postgresql.replication_lag:
    expected_replicas: [db-replica-1, db-replica-2]
    max_lag_bytes: 64MB
    max_lag_seconds: 60s
    max_slot_retained_bytes: 1GB
    fail_on_violation: true
  when: inventory_hostname in groups['primary']

- name: Each replica judges itself (idle-safe; fails if it is not a replica any more)
  dbfleet.postgresql.replication_lag:
    role: replica
    max_lag_bytes: 64MB
    max_lag_seconds: 5m
  register: lag
  when: inventory_hostname in groups['replica']

- name: A primary whose local connections need a password
  dbfleet.postgresql.replication_lag:
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_admin_password }}"
    expected_replicas: 2
'''

RETURN = r'''
role:
  description: V(primary) or V(replica), as the server reports itself.
  returned: always
  type: str
  sample: primary
healthy:
  description: True when there are no violations.
  returned: always
  type: bool
violations:
  description: Every problem found, one sentence each, naming the standby or slot and the number. Empty when all is
    well.
  returned: always
  type: list
  elements: str
  sample: ["db-replica-1 is 21.0 MiB (22020096 bytes) of WAL behind the primary in replay, over max_lag_bytes 976.6 KiB (1000000 bytes)"]
thresholds:
  description: The thresholds as understood - bytes and seconds as numbers, expected_replicas as a list of names or a
    number, null where not given.
  returned: always
  type: dict
current_lsn:
  description: The primary's current WAL write position.
  returned: on a primary
  type: str
  sample: 0/6000060
standbys:
  description: One entry per connection in C(pg_stat_replication).
  returned: on a primary
  type: list
  elements: dict
  contains:
    application_name:
      description: The standby's name.
      type: str
    client_addr:
      description: The address it connects from (null over a unix socket).
      type: str
    state:
      description: V(streaming), V(catchup), V(startup), V(backup) or V(stopping).
      type: str
    sync_state:
      description: V(async), V(potential), V(sync) or V(quorum).
      type: str
    sent_lsn:
      description: Last WAL position sent to it.
      type: str
    write_lsn:
      description: Last position it wrote.
      type: str
    flush_lsn:
      description: Last position it flushed to disk.
      type: str
    replay_lsn:
      description: Last position it replayed (null for clients that do not replay).
      type: str
    lag_bytes:
      description: Bytes of WAL between the current position and the standby's replay position (its flush position
        when it does not replay).
      type: int
    lag_basis:
      description: V(replay), or V(flush) for clients that receive WAL without replaying it.
      type: str
    write_lag_seconds:
      description: The server's write_lag in seconds (null once an idle standby is caught up).
      type: float
    flush_lag_seconds:
      description: The server's flush_lag in seconds.
      type: float
    replay_lag_seconds:
      description: The server's replay_lag in seconds.
      type: float
    lag_seconds:
      description: The lag judged against O(max_lag_seconds) - 0 when the standby has replayed everything, else the
        server's replay_lag; null when unknown.
      type: float
    caught_up:
      description: True when it has replayed up to the current position.
      type: bool
    is_replica:
      description: True for a standby that replays (counted for O(expected_replicas)).
      type: bool
    backend_start:
      description: When it connected.
      type: str
    reply_age_seconds:
      description: Seconds since its last status message.
      type: float
slots:
  description: Every replication slot.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Slot name.
      type: str
    type:
      description: V(physical) or V(logical).
      type: str
    active:
      description: Whether a consumer is connected.
      type: bool
    database:
      description: Database of a logical slot.
      type: str
    restart_lsn:
      description: The oldest WAL position the slot keeps.
      type: str
    wal_status:
      description: V(reserved), V(extended), V(unreserved) or V(lost) (PostgreSQL 13 and later).
      type: str
    retained_bytes:
      description: WAL the slot holds back, in bytes (null when it reserves none).
      type: int
replica:
  description: The replica's own view.
  returned: on a replica
  type: dict
  contains:
    name:
      description: The application_name it streams as (from its WAL receiver), else its cluster_name.
      type: str
    receive_lsn:
      description: pg_last_wal_receive_lsn() - WAL received and flushed (null when not streaming).
      type: str
    replay_lsn:
      description: pg_last_wal_replay_lsn().
      type: str
    lag_bytes:
      description: WAL received but not yet replayed, in bytes.
      type: int
    caught_up:
      description: True when everything received has been replayed; null when nothing was received by streaming.
      type: bool
    lag_seconds:
      description: 0 when caught up; else the age of the last replayed transaction; null when unknown.
      type: float
    last_xact_replay_timestamp:
      description: Commit time of the last replayed transaction.
      type: str
    last_xact_replay_age_seconds:
      description: Seconds since that commit - on an idle primary this grows without any lag.
      type: float
    replay_pause_state:
      description: V(not paused), V(pause requested) or V(paused).
      type: str
    replay_paused:
      description: True when replay is paused or a pause is requested.
      type: bool
    wal_receiver:
      description: The WAL receiver (status, sender_host, sender_port, slot_name, flushed_lsn, latest_end_lsn,
        latest_end_time, last_msg_receipt_time, last_msg_receipt_age_seconds), null when none runs.
      type: dict
'''

import math
import re

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _look
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import describe_target
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import format_duration, format_size

ROLES = ('auto', 'primary', 'replica')
_APPNAME_RE = re.compile(r"(?:^|\s)application_name=('(?:[^'\\]|\\.)*'|\S+)")

STATEMENT_ROLE = ("SELECT pg_is_in_recovery(), current_setting('server_version_num')::int, "
                  "current_setting('cluster_name')", None)

STATEMENT_STANDBYS = (
    "SELECT application_name, host(client_addr) AS client_addr, state, sync_state, sent_lsn::text, write_lsn::text, "
    "flush_lsn::text, replay_lsn::text, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(replay_lsn, flush_lsn))::bigint AS lag_bytes, "
    "extract(epoch FROM write_lag)::float AS write_lag_seconds, "
    "extract(epoch FROM flush_lag)::float AS flush_lag_seconds, "
    "extract(epoch FROM replay_lag)::float AS replay_lag_seconds, "
    "to_json(backend_start) #>> '{}' AS backend_start, extract(epoch FROM now() - reply_time)::float AS reply_age_seconds "
    "FROM pg_stat_replication ORDER BY application_name, client_addr, pid", None)

STATEMENT_CURRENT = ("SELECT pg_current_wal_lsn()::text", None)

_SLOTS_SQL = (
    "SELECT slot_name, slot_type, active, database::text, restart_lsn::text, to_jsonb(s) ->> 'wal_status', "
    "pg_wal_lsn_diff(%s, restart_lsn)::bigint "
    "FROM pg_replication_slots s ORDER BY slot_name")


def slots_statement(in_recovery):
    reference = 'pg_last_wal_replay_lsn()' if in_recovery else 'pg_current_wal_lsn()'
    return (_SLOTS_SQL % reference, None)


def replica_statements(version_num):
    if version_num >= 140000:
        pause = 'pg_get_wal_replay_pause_state()'
    else:
        pause = "CASE WHEN pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END"
    return [
        ("SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, "
         "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint, "
         "to_json(pg_last_xact_replay_timestamp()) #>> '{}', extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float, "
         "%s" % pause, None),
        ("SELECT to_jsonb(w) - 'conninfo', w.conninfo, extract(epoch FROM now() - w.last_msg_receipt_time)::float "
         "FROM pg_stat_wal_receiver w", None),
    ]


# --- pure logic: thresholds ------------------------------------------------------------------------------------

def parse_expected_replicas(value):
    """``None``, a number of standbys (int) or a list of application names from the option's raw value."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError('expected_replicas=%r is neither a list of application names nor a number' % value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError('expected_replicas must not be negative (got %d)' % value)
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0 or value != int(value):
            raise ValueError('expected_replicas=%r is not a whole number of replicas' % value)
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.match(r'^\d+$', text):
            return int(text)
        if text.startswith('-') and re.match(r'^-\d+$', text):
            raise ValueError('expected_replicas must not be negative (got %s)' % text)
        value = [part.strip() for part in text.split(',')]
    if isinstance(value, (list, tuple)):
        names = []
        for item in value:
            if isinstance(item, (dict, list, tuple)) or item is None:
                raise ValueError('expected_replicas must list application names (strings), got %r' % (item,))
            name = str(item).strip()
            if not name:
                raise ValueError('expected_replicas contains an empty name')
            if name not in names:
                names.append(name)
        return names or None
    raise ValueError('expected_replicas=%r is neither a list of application names nor a number' % (value,))


def parse_thresholds(params):
    """The threshold options as numbers; ValueError with the option's name when one is not understood."""
    return _look.parse_thresholds(params, [
        ('max_lag_bytes', 'size'), ('max_lag_seconds', 'duration'), ('max_slot_retained_bytes', 'size'),
        ('expected_replicas', lambda value, _option: parse_expected_replicas(value))])


def resolve_role(requested, in_recovery, target='the server'):
    """``primary`` or ``replica``; ValueError in words when the server is not what was asked for."""
    actual = 'replica' if in_recovery else 'primary'
    if requested in (None, 'auto') or requested == actual:
        return actual
    if requested == 'replica':
        raise ValueError('%s is not a replica where one was expected (role=replica): pg_is_in_recovery() is false, so '
                         'it is a primary - it may have been promoted. Point the task at a replica, check which server '
                         'is the primary now, or use role=auto.' % target)
    raise ValueError('%s is a replica (pg_is_in_recovery() is true), but role=primary expected the primary: point the '
                     'task at the primary, or use role=auto.' % target)


# --- pure logic: the rows, judged --------------------------------------------------------------------------------

def _bytes(num):
    return '%s (%d bytes)' % (format_size(num), num)


def _seconds(num):
    return '%s (%.1f s)' % (format_duration(num), num) if num >= 60 else '%.1f s' % num


def standby_view(row):
    """One ``pg_stat_replication`` row (a dict) with the derived fields: lag basis, caught up, judged lag seconds."""
    entry = dict(row)
    replays = entry.get('replay_lsn') is not None
    entry['lag_basis'] = 'replay' if replays else ('flush' if entry.get('flush_lsn') is not None else None)
    lag = entry.get('lag_bytes')
    if lag is not None:
        lag = max(0, int(lag))
        entry['lag_bytes'] = lag
    entry['is_replica'] = bool(replays and entry.get('state') in ('streaming', 'catchup'))
    entry['caught_up'] = None if lag is None else lag == 0
    if lag == 0:
        entry['lag_seconds'] = 0.0
    else:
        entry['lag_seconds'] = entry.get('replay_lag_seconds') if replays else None
    return entry


def standby_name(entry):
    if entry.get('application_name'):
        return entry['application_name']
    if entry.get('client_addr'):
        return 'the standby at %s' % entry['client_addr']
    return 'a standby on the local socket'


def visibility_problem(rows):
    """Why the rows cannot be judged (the connecting role may not see replication details), or None."""
    hidden = [row for row in rows if row.get('state') is None and row.get('sent_lsn') is None]
    if hidden:
        return ('%d replication connection(s) are visible without their state or positions: the connecting role may '
                'not read replication details - connect as a superuser or a role granted pg_monitor' % len(hidden))
    return None


def primary_violations(standbys, thresholds):
    """Sentences for every standby over a threshold, and for every expected standby missing or not streaming."""
    violations = []
    max_bytes, max_seconds = thresholds.get('max_lag_bytes'), thresholds.get('max_lag_seconds')
    for entry in standbys:
        if entry.get('state') == 'backup':
            continue  # a base backup in progress, not a standby
        name = standby_name(entry)
        lag = entry.get('lag_bytes')
        what = 'in replay' if entry.get('lag_basis') == 'replay' else 'in flushing'
        if max_bytes is not None and lag is not None and lag > max_bytes:
            violations.append('%s is %s of WAL behind the primary %s, over max_lag_bytes %s'
                              % (name, _bytes(lag), what, _bytes(max_bytes)))
        seconds = entry.get('lag_seconds')
        if max_seconds is not None and seconds is not None and seconds > max_seconds:
            violations.append('%s replays %s behind the primary, over max_lag_seconds %s'
                              % (name, _seconds(seconds), format_duration(max_seconds)))
    expected = thresholds.get('expected_replicas')
    streaming = [e for e in standbys if e['is_replica'] and e.get('state') == 'streaming']
    if isinstance(expected, list):
        for name in expected:
            found = [e for e in standbys if e.get('application_name') == name and e.get('state') != 'backup']
            if not found:
                violations.append('%s is expected (expected_replicas) but is not connected to this primary: is its '
                                  'PostgreSQL running, and does its primary_conninfo point here with '
                                  'application_name=%s?' % (name, name))
            elif not any(e in streaming for e in found):
                violations.append('%s is connected but not streaming (state %s)'
                                  % (name, ', '.join(sorted(set(str(e.get('state')) for e in found)))))
    elif isinstance(expected, int) and len(streaming) < expected:
        violations.append('%d standby(s) stream from this primary (%s), %d expected (expected_replicas)'
                          % (len(streaming), ', '.join(standby_name(e) for e in streaming) or 'none', expected))
    return violations


def slot_view(row):
    name, slot_type, active, database, restart_lsn, wal_status, retained = row
    return dict(name=name, type=slot_type, active=bool(active), database=database, restart_lsn=restart_lsn,
                wal_status=wal_status, retained_bytes=None if retained is None else max(0, int(retained)))


def slot_violations(slots, thresholds):
    violations = []
    limit = thresholds.get('max_slot_retained_bytes')
    for slot in slots:
        drop = "SELECT pg_drop_replication_slot('%s')" % slot['name'].replace("'", "''")
        if slot.get('wal_status') == 'lost':
            violations.append('replication slot %s (%s) has lost WAL it needed: its consumer can no longer catch up '
                              'from it - rebuild the consumer, then drop the slot (%s)' % (slot['name'], slot['type'], drop))
        retained = slot.get('retained_bytes')
        if limit is None or retained is None or retained <= limit:
            continue
        if slot['active']:
            violations.append('replication slot %s (%s, active) holds back %s of WAL, over max_slot_retained_bytes %s: '
                              'its consumer is that far behind' % (slot['name'], slot['type'], _bytes(retained),
                                                                   _bytes(limit)))
        else:
            violations.append('replication slot %s (%s, inactive) holds back %s of WAL, over max_slot_retained_bytes %s: '
                              'nothing consumes it, so the server keeps that WAL until the disk fills - if its consumer '
                              'is gone for good, drop it (%s)' % (slot['name'], slot['type'], _bytes(retained),
                                                                  _bytes(limit), drop))
    return violations


def appname_from_conninfo(conninfo):
    match = _APPNAME_RE.search(conninfo or '')
    if not match:
        return None
    value = match.group(1)
    if value.startswith("'"):
        value = re.sub(r"\\(.)", r'\1', value[1:-1])
    return value or None


def replica_view(row, receiver=None, conninfo=None, receipt_age=None, cluster_name=None):
    """The replica's own view, idle-safe: caught up (lag 0) whenever replay has reached what was received."""
    receive_lsn, replay_lsn, diff, replay_ts, replay_age, pause_state = row
    view = dict(receive_lsn=receive_lsn, replay_lsn=replay_lsn, last_xact_replay_timestamp=replay_ts,
                last_xact_replay_age_seconds=replay_age, replay_pause_state=pause_state,
                replay_paused=pause_state in ('paused', 'pause requested'))
    if receive_lsn is None or replay_lsn is None or diff is None:
        # Nothing received by streaming (archive recovery, or the receiver never connected): the lag cannot be told.
        view.update(lag_bytes=None, caught_up=None, lag_seconds=None)
    else:
        lag = max(0, int(diff))
        view.update(lag_bytes=lag, caught_up=lag == 0)
        if lag == 0:
            view['lag_seconds'] = 0.0
        else:
            view['lag_seconds'] = None if replay_age is None else max(0.0, float(replay_age))
    if receiver is not None:
        receiver = dict((key, receiver.get(key)) for key in (
            'status', 'sender_host', 'sender_port', 'slot_name', 'flushed_lsn', 'written_lsn', 'latest_end_lsn',
            'latest_end_time', 'last_msg_receipt_time', 'received_tli'))
        receiver['last_msg_receipt_age_seconds'] = receipt_age
    view['wal_receiver'] = receiver
    view['name'] = appname_from_conninfo(conninfo) or cluster_name or None
    return view


def replica_violations(view, thresholds):
    violations = []
    name = view.get('name') or 'this replica'
    receiver = view.get('wal_receiver')
    if receiver is None:
        violations.append('%s has no WAL receiver: it is not streaming from a primary - is the primary up, and are '
                          'primary_conninfo and the replication password right? (the server log says why)' % name)
    elif receiver.get('status') != 'streaming':
        violations.append('%s is not streaming: its WAL receiver is %s (sender %s:%s) - the server log says why'
                          % (name, receiver.get('status'), receiver.get('sender_host'), receiver.get('sender_port')))
    paused = (' Replay is paused here; SELECT pg_wal_replay_resume() resumes it.' if view.get('replay_paused') else '')
    max_bytes, max_seconds = thresholds.get('max_lag_bytes'), thresholds.get('max_lag_seconds')
    lag = view.get('lag_bytes')
    if max_bytes is not None and lag is not None and lag > max_bytes:
        violations.append('%s has received %s of WAL it has not replayed yet, over max_lag_bytes %s.%s'
                          % (name, _bytes(lag), _bytes(max_bytes), paused))
    seconds = view.get('lag_seconds')
    if max_seconds is not None and seconds is not None and seconds > max_seconds:
        violations.append('%s replays %s behind (its last replayed transaction committed at %s, and it has more WAL '
                          'waiting), over max_lag_seconds %s.%s'
                          % (name, _seconds(seconds), view.get('last_xact_replay_timestamp'), format_duration(max_seconds),
                             paused))
    return violations


# --- the module ------------------------------------------------------------------------------------------------

def _rows(result):
    return [dict(zip(result['columns'], row)) for row in result['rows']]


def look(module, thresholds):
    """Everything this module reports, as a dict (``healthy`` and ``violations`` included)."""
    params, connection = module.params, module.connection
    first = module.query([STATEMENT_ROLE])[0]
    in_recovery, version_num, cluster_name = first['rows'][0]
    try:
        role = resolve_role(params['role'], in_recovery, 'the server at %s' % describe_target(connection, params['run_as']))
    except ValueError as exc:
        module.fail_json(msg=str(exc), role='replica' if in_recovery else 'primary', in_recovery=in_recovery)
    result = dict(changed=False, role=role, in_recovery=in_recovery, thresholds=thresholds)
    if role == 'primary':
        current, standbys, slots = module.query([STATEMENT_CURRENT, STATEMENT_STANDBYS, slots_statement(False)])
        rows = _rows(standbys)
        problem = visibility_problem(rows)
        if problem:
            target = describe_target(connection, params['run_as'])
            module.fail_json(msg='cannot judge replication on %s: %s.' % (target, problem), role=role)
        result['current_lsn'] = current['rows'][0][0]
        result['standbys'] = [standby_view(row) for row in rows]
        violations = primary_violations(result['standbys'], thresholds)
    else:
        own, receiver, slots = module.query(replica_statements(version_num) + [slots_statement(True)])
        wal_receiver = conninfo = receipt_age = None
        if receiver['rows']:
            wal_receiver, conninfo, receipt_age = receiver['rows'][0]
        result['replica'] = replica_view(own['rows'][0], wal_receiver, conninfo, receipt_age, cluster_name)
        violations = replica_violations(result['replica'], thresholds)
    result['slots'] = [slot_view(row) for row in slots['rows']]
    violations.extend(slot_violations(result['slots'], thresholds))
    result.update(violations=violations, healthy=not violations)
    return result


def main():
    module = _look.LookModule(supports_check_mode=True, argument_spec=dict(
        role=dict(type='str', choices=list(ROLES), default='auto'),
        max_lag_bytes=dict(type='str'),
        max_lag_seconds=dict(type='str'),
        expected_replicas=dict(type='raw'),
        max_slot_retained_bytes=dict(type='str'),
    ))
    try:
        thresholds = parse_thresholds(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    _look.exit_with_verdict(module, look(module, thresholds))


if __name__ == '__main__':
    main()

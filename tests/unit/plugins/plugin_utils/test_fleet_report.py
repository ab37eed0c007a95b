# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's rows, table and page from results like the verify modules return them."""

from __future__ import annotations

import re

from ansible_collections.dbfleet.postgresql.plugins.plugin_utils import _fleet_report as fr

BACKUPS = {'healthy': True, 'violations': [], 'thresholds': {'max_size_drop_pct': 50.0}, 'dbfleet_report': {
    'check': 'backups', 'healthy': True, 'violations': [], 'basebackup': None, 'schedules': [],
    'dumps': [
        {'schedule': 'nightly', 'db': 'postgres', 'kind': 'database', 'path': '/srv/backups/postgres-20261201T030000Z.dump',
         'stamp': '20261201T030000Z', 'age_seconds': 60, 'size': 500, 'size_change_pct': 0.0, 'checksum': 'ok',
         'valid': True, 'history': [['20261130T030000Z', 500, 'ok'], ['20261201T030000Z', 500, 'ok']]},
        {'schedule': 'nightly', 'db': 'app', 'kind': 'database', 'path': '/srv/backups/app-20261201T030000Z.dump',
         'stamp': '20261201T030000Z', 'age_seconds': 3700, 'size': 42 * 2 ** 20, 'size_change_pct': 1.5, 'checksum': 'ok',
         'valid': True, 'history': [['20261129T030000Z', 41 * 2 ** 20, 'ok'], ['20261130T030000Z', None, 'failed'],
                                    ['20261201T030000Z', 42 * 2 ** 20, 'ok']]}]}}
PRIMARY_LAG = {'role': 'primary', 'healthy': False, 'violations': ['db-r2 is expected (expected_replicas) but is not connected'],
               'standbys': [{'application_name': 'db-r1', 'state': 'streaming', 'lag_bytes': 128, 'lag_seconds': 0.5}]}
ARCHIVE = {'role': 'primary', 'healthy': True, 'violations': [], 'archiving_here': True, 'failing': False,
           'last_archived_wal': '00000001000000000000001B', 'last_archived_age_seconds': 65}


def record(name, *events):
    rec = fr.HostRecord(name)
    for action, data, status in events:
        rec.add(action, 'a task', data, status)
    return rec


def test_primary_row_takes_the_verdict_over_its_own_replication_view():
    verdict = {'ansible_facts': {'verify_verdict': {'dbfleet_report': {'check': 'verdict', 'role': 'primary', 'healthy': True,
                                                                       'violations': []}}}}
    rec = record('db-p', ('dbfleet.postgresql.replication_lag', PRIMARY_LAG, 'ok'),
                 ('dbfleet.postgresql.backup_status', BACKUPS, 'ok'), ('dbfleet.postgresql.wal_archive_status', ARCHIVE, 'ok'),
                 ('ansible.builtin.set_fact', verdict, 'ok'))
    row = fr.host_row(rec)
    assert row['verdict'] == 'healthy' and row['reasons'] == []
    cells = row['cells']
    assert cells['newest dump'] == 'app-20261201T030000Z.dump'  # the largest database
    assert (cells['age'], cells['size'], cells['change'], cells['checksum']) == ('1h 1m', '42.0 MiB', '+1.5%', 'ok')
    assert cells['archiving'] == 'ok, 00000001000000000000001B 1m 5s ago'
    assert cells['lag'] == '1 streaming; max 128 B / 0.5 s' and cells['verdict'] == 'OK'


def test_without_a_verdict_every_check_speaks_and_failures_count():
    rec = record('db-p', ('dbfleet.postgresql.replication_lag', PRIMARY_LAG, 'ok'),
                 ('dbfleet.postgresql.wal_archive_status', {'msg': 'could not connect', 'failed_when_result': False}, 'ok'),
                 ('ansible.builtin.command', {'msg': 'non-zero return code'}, 'failed'))
    row = fr.host_row(rec)
    assert row['verdict'] == 'unhealthy' and row['cells']['verdict'] == 'RED'
    assert row['reasons'] == ['a task: non-zero return code', 'replication: db-r2 is expected (expected_replicas) but is '
                              'not connected', 'archiving: the check could not run: could not connect']


def test_unreachable_host_is_a_red_row_with_the_reason_and_irrelevant_hosts_are_left_out():
    refused = {'msg': 'ssh: connect to host 127.0.0.99 port 22: Connection refused', 'unreachable': True}
    records = {'ghost': record('ghost', ('dbfleet.postgresql.replication_lag', refused, 'unreachable')),
               'localhost': record('localhost', ('ansible.builtin.debug', {'msg': 'hi'}, 'ok'))}
    rows = fr.rows_of(records)
    assert [r['host'] for r in rows] == ['ghost']
    assert rows[0]['verdict'] == 'unreachable' and 'Connection refused' in rows[0]['reasons'][0]
    table = fr.text_table(rows)
    assert table.splitlines()[0].split()[:3] == ['host', 'role', 'newest']
    assert 'UNREACHABLE' in table and table.endswith('fleet: 1 host(s), 0 healthy, 1 not')


def test_chart_marks_a_shrunk_or_failed_dump_red_and_the_page_is_self_contained():
    shrunk = dict(BACKUPS['dbfleet_report']['dumps'][1], history=[['s1', 1000, 'ok'], ['s2', 1010, 'ok'], ['s3', 990, 'ok'],
                                                                  ['s4', 200, 'ok']])
    red = 'fill="#d32f2f"><title>'  # a red point (its label may be red too)
    svg = fr.svg_chart(shrunk, 50.0)
    assert svg.count(red) == 1 and svg.count('<circle') == 4 and 's4: 200 B' in svg
    assert fr.svg_chart(dict(shrunk, history=shrunk['history'][:3]), 50.0).count('#d32f2f') == 0
    assert fr.svg_chart(BACKUPS['dbfleet_report']['dumps'][1]).count(red) == 1  # the failed night
    rec = record('db-p', ('dbfleet.postgresql.backup_status', BACKUPS, 'ok'))
    page = fr.html_page(fr.report_data(fr.rows_of({'db-p': rec}), dict(title='<fleet & co>', generated_at='now', playbook='p')))
    assert '&lt;fleet &amp; co&gt;' in page and '<svg' in page
    assert not re.search(r'https?://|src=|href=|url\(|@import|<script|<link|<img', page)

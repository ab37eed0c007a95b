# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: what is kept, what is pruned (``_runner.retention``)."""

from __future__ import annotations

import datetime
import json
import random

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import naming
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import retention


UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 18, 3, 0, 0, tzinfo=UTC)


def stamp_days_ago(days, hours=0):
    return naming.format_stamp(NOW - datetime.timedelta(days=days, hours=hours))


# --------------------------------------------------------------------------
# retention
# --------------------------------------------------------------------------

def entry(days, status='ok', db='app', hours=0):
    stamp = stamp_days_ago(days, hours)
    return {'db': db, 'stamp': stamp, 'status': status, 'dumps': ['/b/%s-%s.dump.zst' % (db, stamp)],
            'manifest': '/b/%s-%s.manifest.json' % (db, stamp)}


def stamps(entries):
    return sorted(item['stamp'] for item in entries)


def test_deletes_old_good_dumps_beyond_keep_min():
    entries = [entry(d) for d in (0, 1, 2, 20, 30, 40)]
    keep, delete = retention.plan_retention(entries, NOW, 14, 3)
    assert stamps(delete) == stamps([entry(20), entry(30), entry(40)])
    assert stamps(keep) == stamps([entry(0), entry(1), entry(2)])
    assert all('older than 14 days' in item['reason'] for item in delete)


def test_keep_min_protects_old_good_dumps():
    entries = [entry(d) for d in (20, 30, 40, 50, 60)]
    keep, delete = retention.plan_retention(entries, NOW, 14, 3)
    assert stamps(keep) == stamps([entry(20), entry(30), entry(40)])
    assert stamps(delete) == stamps([entry(50), entry(60)])


def test_failed_runs_never_count_as_good():
    entries = [entry(d, 'failed') for d in (0, 1, 2, 3, 20)] + [entry(30), entry(40)]
    keep, delete = retention.plan_retention(entries, NOW, 14, 2)
    assert stamps(keep) == stamps([entry(0), entry(1), entry(2), entry(3), entry(30), entry(40)])
    assert stamps(delete) == stamps([entry(20)])
    assert delete[0]['reason'].startswith('failed run')


@pytest.mark.parametrize('status', ['missing', 'unknown'])
def test_missing_or_unmanifested_dumps_are_not_good(status):
    entries = [entry(1, status), entry(20, status), entry(30)]
    keep, delete = retention.plan_retention(entries, NOW, 14, 1)
    assert stamps(keep) == stamps([entry(1), entry(30)])  # the only good dump survives, however old
    assert stamps(delete) == stamps([entry(20)])


def test_newest_good_survives_any_number_of_failures_even_with_keep_min_zero():
    entries = [entry(100)] + [entry(d, 'failed') for d in range(1, 100)]
    keep, delete = retention.plan_retention(entries, NOW, 0, 0)
    assert entry(100)['stamp'] in stamps(keep)
    assert len(delete) == 99  # failed manifests older than 0 days go


def test_young_entries_are_kept_whatever_their_status():
    entries = [entry(0, 'failed', hours=1), entry(0, 'unknown', hours=2), entry(0, hours=3), entry(0, hours=4)]
    keep, delete = retention.plan_retention(entries, NOW, 1, 1)
    assert delete == [] and len(keep) == 4


def test_boundary_is_strictly_older_than_retention():
    keep, delete = retention.plan_retention([entry(14), entry(14, hours=1), entry(0)], NOW, 14, 1)
    assert stamps(delete) == [stamp_days_ago(14, 1)]
    assert stamp_days_ago(14) in stamps(keep)


def test_future_stamps_are_kept():
    future = {'db': 'app', 'stamp': naming.format_stamp(NOW + datetime.timedelta(days=3)), 'status': 'failed'}
    keep, delete = retention.plan_retention([future, entry(0, hours=1)], NOW, 0, 1)
    assert future['stamp'] in stamps(keep)
    assert stamps(delete) == [] and len(keep) == 2  # the good one is the newest good: protected


def test_databases_are_independent():
    entries = [entry(30, db='a'), entry(40, db='a'), entry(1, db='b'), entry(2, db='b'), entry(50, db='b')]
    keep, delete = retention.plan_retention(entries, NOW, 14, 1)
    assert sorted((item['db'], item['stamp']) for item in delete) == [('a', stamp_days_ago(40)), ('b', stamp_days_ago(50))]
    assert {item['db'] for item in keep} == {'a', 'b'}


def test_plan_retention_is_pure_and_accepts_datetimes():
    entries = [entry(30), entry(40)]
    snapshot = json.dumps(entries, sort_keys=True)
    with_datetime = [dict(entries[0], stamp=naming.parse_stamp(entries[0]['stamp'])), entries[1]]
    keep, delete = retention.plan_retention(with_datetime, NOW, 14, 1)
    assert json.dumps(entries, sort_keys=True) == snapshot
    assert len(keep) == 1 and len(delete) == 1 and 'reason' not in entries[0]


def test_retention_invariants_random_histories():
    """Property check over random histories: never below keep_min good, nothing young deleted."""
    rng = random.Random(20260618)
    for _history in range(300):
        keep_min = rng.randint(1, 4)
        retention_days = rng.randint(0, 20)
        entries = []
        for offset in rng.sample(range(0, 60 * 24), rng.randint(0, 25)):  # hours ago, distinct
            status = rng.choice(['ok', 'ok', 'failed', 'failed', 'failed', 'missing', 'unknown'])
            entries.append({'db': 'app', 'stamp': naming.format_stamp(NOW - datetime.timedelta(hours=offset)), 'status': status})
        keep, delete = retention.plan_retention(entries, NOW, retention_days, keep_min)
        assert len(keep) + len(delete) == len(entries)
        good = sorted((item['stamp'] for item in entries if item['status'] == 'ok'), reverse=True)
        kept = set(item['stamp'] for item in keep)
        assert set(good[:keep_min]) <= kept
        horizon = NOW - datetime.timedelta(days=retention_days)
        for item in delete:
            assert naming.parse_stamp(item['stamp']) < horizon


# --------------------------------------------------------------------------
# what retention sees on disk
# --------------------------------------------------------------------------

def test_collect_entries_status(tmp_path):
    dest = tmp_path / 'b'
    dest.mkdir()

    def write(db, days, status=None, dump=True, manifest_path_ok=True):
        stamp = stamp_days_ago(days)
        name = naming.artifact_name(db, stamp, 'custom', 'zstd')
        if dump:
            (dest / name).write_bytes(b'x')
        if status is not None:
            path = str(dest / name) if manifest_path_ok else '/elsewhere/other.dump'
            (dest / naming.manifest_name(db, stamp)).write_text(json.dumps({'status': status, 'path': path}))
        return stamp

    ok = write('app', 1, 'ok')
    failed = write('app', 2, 'failed', dump=False)
    missing = write('app', 3, 'ok', dump=False)
    unknown = write('app', 4, None)
    mismatch = write('app', 5, 'ok', manifest_path_ok=False)
    write('other', 1, 'ok')
    (dest / 'notes.txt').write_text('x')
    (dest / ('.' + naming.artifact_name('app', stamp_days_ago(6), 'custom', 'zstd') + '.partial-1')).write_bytes(b'x')
    entries = {item['stamp']: item['status'] for item in retention.collect_entries(str(dest), {'app'})}
    assert entries == {ok: 'ok', failed: 'failed', missing: 'missing', unknown: 'unknown', mismatch: 'missing'}


# --------------------------------------------------------------------------
# what retention relies on: verified dumps, sane stamps, its own schedule
# --------------------------------------------------------------------------

def test_a_dump_stamped_in_the_future_is_kept_but_never_counted_as_one_of_the_newest_good():
    future = dict(entry(-3), stamp=naming.format_stamp(NOW + datetime.timedelta(days=3)))
    keep, delete = retention.plan_retention([future, entry(20), entry(30)], NOW, 14, 1)
    assert stamps(keep) == stamps([future, entry(20)])
    assert stamps(delete) == stamps([entry(30)])
    assert [item['reason'] for item in keep if item['stamp'] == future['stamp']] == ['stamped in the future']
    # a few minutes ahead is a clock's jitter, not the future
    soon = dict(entry(0), stamp=naming.format_stamp(NOW + datetime.timedelta(minutes=2)))
    keep, delete = retention.plan_retention([soon, entry(20)], NOW, 14, 1)
    assert stamps(delete) == stamps([entry(20)])


def test_only_the_keep_min_candidates_are_verified_and_a_failing_one_is_not_good():
    entries = [entry(d) for d in (0, 20, 30, 40, 50)]
    asked = []

    def verify(item):
        asked.append(item['stamp'])
        return item['stamp'] != entry(20)['stamp']  # the 20-day-old dump no longer matches its manifest

    keep, delete = retention.plan_retention(entries, NOW, 14, 2, verify=verify)
    assert stamps(keep) == stamps([entry(0), entry(30)])
    assert stamps(delete) == stamps([entry(20), entry(40), entry(50)])
    assert asked == [entry(0)['stamp'], entry(20)['stamp'], entry(30)['stamp']]  # newest first, only until keep_min are found
    assert [item['reason'] for item in delete if item['stamp'] == entry(20)['stamp']][0].startswith('dump that does not match')


def test_collect_entries_records_the_schedule_and_what_the_manifest_says(tmp_path):
    dest = tmp_path / 'b'
    dest.mkdir()
    stamp = stamp_days_ago(1)
    name = naming.artifact_name('app', stamp, 'custom', 'zstd')
    (dest / name).write_bytes(b'x')
    (dest / naming.manifest_name('app', stamp)).write_text(json.dumps(
        {'status': 'ok', 'path': str(dest / name), 'schedule': 'nightly', 'size': 1, 'sha256': 'ab' * 32}))
    orphan = stamp_days_ago(2)
    (dest / naming.artifact_name('app', orphan, 'custom', 'zstd')).write_bytes(b'y')
    entries = dict((item['stamp'], item) for item in retention.collect_entries(str(dest), {'app'}))
    assert entries[stamp]['schedule'] == 'nightly' and entries[stamp]['recorded'] == {
        'path': str(dest / name), 'size': 1, 'sha256': 'ab' * 32, 'files': None}
    assert entries[orphan]['schedule'] is None and entries[orphan]['recorded'] is None


@pytest.mark.parametrize('others,orphan_is_ours', [([], True), (['hourly'], False)])
def test_a_schedule_owns_what_its_manifests_name_and_orphans_only_alone(others, orphan_is_ours):
    mine = dict(entry(1), schedule='nightly')
    theirs = [dict(entry(2 + index), schedule=name) for index, name in enumerate(others)]
    orphan = dict(entry(9), schedule=None, status='unknown')
    owned = retention.own_entries([mine, orphan] + theirs, 'nightly')
    assert [item['stamp'] for item in owned] == [mine['stamp']] + ([orphan['stamp']] if orphan_is_ours else [])

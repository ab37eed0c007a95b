# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_status without a lab: a schedule's configs, state and artifacts in a temporary tree, judged in words -
the median of the previous dumps (not just the last one), manifests, runs that failed or died, future stamps,
FIFOs and secrets never opened."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import format_stamp
from ansible_collections.dbfleet.postgresql.plugins.modules import backup_status as bs

import datetime

SECRET = 'do-not-show-this-secret'


class FakeModule:
    def __init__(self, **params):
        self.params = dict(config_dir=None, schedules=[], databases=[], require_schedule=False, max_age=None, basebackup_max_age=None,
                           max_size_drop_pct=50.0, size_baseline=5, history=30, checksum=True, validate=False,
                           pg_restore=None, check_offsite=False, offsite_timeout=5, fail_on_violation=False)
        self.params.update(params)
        self.checked = []

    def require_allowed_path(self, path, option=None):
        self.checked.append(path)


def stamp(hours_ago):
    return format_stamp(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours_ago))


@pytest.fixture()
def tree(tmp_path):
    config_dir, dest, state = tmp_path / 'etc', tmp_path / 'dest', tmp_path / 'state'
    for directory in (config_dir, dest, state):
        directory.mkdir()
    config = dict(name='nightly', dest=str(dest), state_dir=str(state), lock_file=str(state / 'lock'),
                  log_file=str(tmp_path / 'nightly.log'),
                  s3=dict(bucket='b', credentials_file=str(config_dir / 'nightly.s3.json')))
    (config_dir / 'nightly.json').write_text(json.dumps(config))
    (config_dir / 'nightly.s3.json').write_text(json.dumps({'aws_access_key_id': 'k', 'aws_secret_access_key': SECRET}))
    (config_dir / 'nightly.pgpass').write_text('*:*:*:*:%s\n' % SECRET)
    return tmp_path


def dump(tree, db, hours_ago, size, status='ok', manifest_size=None, error=None):
    """A dump file and its manifest, as the runner writes them."""
    when = stamp(hours_ago)
    path = tree / 'dest' / ('%s-%s.dump' % (db, when))
    data = os.urandom(size)
    path.write_bytes(data)
    manifest = dict(schedule='nightly', kind='database', db=db, stamp=when, status=status, error=error, path=str(path),
                    size=size if manifest_size is None else manifest_size, sha256=hashlib.sha256(data).hexdigest())
    (tree / 'dest' / ('%s-%s.manifest.json' % (db, when))).write_text(json.dumps(manifest))
    return str(path)


def judge(tree, **params):
    module = FakeModule(config_dir=str(tree / 'etc'), **params)
    check = bs.Check(module, dict(max_age=params.get('max_age_s'), basebackup_max_age=None,
                                  max_size_drop_pct=module.params['max_size_drop_pct']))
    report = check.schedule('nightly', str(tree / 'etc' / 'nightly.json'))
    return check, report


def test_healthy_history_newest_first_and_checksum(tree):
    for hours in (72, 48, 24):
        dump(tree, 'app', hours, 1000)
    newest = dump(tree, 'app', 1, 990)
    check, report = judge(tree)
    assert check.violations == []
    database = report['databases'][0]
    assert [h['size'] for h in database['history']] == [990, 1000, 1000, 1000]
    assert database['newest']['path'] == newest and database['newest']['checksum'] == 'ok'
    assert database['newest']['baseline_size'] == 1000 and database['newest']['size_change_pct'] == -1.0


def test_size_is_judged_against_the_median_of_the_previous_dumps_not_the_last_one(tree):
    for hours, size in ((96, 1000), (72, 1000), (48, 1000), (24, 10)):  # one odd small night just before
        dump(tree, 'app', hours, size)
    newest = dump(tree, 'app', 1, 400)  # "grew" 40x against the last one, but 60% below the usual size
    check, report = judge(tree)
    assert report['databases'][0]['newest']['baseline_size'] == 1000
    assert len(check.violations) == 1 and check.violations[0].startswith(newest + ' is 400 B, 60.0% smaller than the median')


def test_manifest_disagreement_and_a_newer_failed_run_are_violations_in_words(tree):
    good = dump(tree, 'app', 24, 1000, manifest_size=999)
    dump(tree, 'app', 1, 0, status='failed', error='pg_dump: connection refused')
    check, _report = judge(tree)
    said = ' | '.join(check.violations)
    assert '%s is 1000 bytes but its manifest says 999' % good in said
    assert 'the newest dump of app, %s, FAILED: pg_dump: connection refused' % stamp(1) in said


def test_stale_dump_failed_last_run_and_a_run_that_died(tree):
    dump(tree, 'app', 30, 1000)
    (tree / 'state' / 'last-run.json').write_text(json.dumps(dict(status='failed', errors=['disk full'],
                                                                  finished_at='2026-01-01T03:00:00Z')))
    (tree / 'state' / 'running.json').write_text(json.dumps(dict(pid=2 ** 22 + 12345, started_at='2026-01-02T03:00:00Z')))
    check, report = judge(tree, max_age_s=26 * 3600)
    said = ' | '.join(check.violations)
    assert 'older than max_age 1d 2h' in said
    assert 'schedule nightly: the last run (finished 2026-01-01T03:00:00Z' in said and 'FAILED: disk full' in said
    assert 'died without finishing' in said and report['died'] and report['running']['alive'] is False


def test_future_stamps_fifos_and_secrets(tree):
    dump(tree, 'app', 2, 1000)
    dump(tree, 'app', -3, 1000)  # three hours ahead of the clock
    os.mkfifo(str(tree / 'dest' / ('app-%s.dump' % stamp(1))))  # a FIFO named like the newest dump: never opened
    started = time.monotonic()
    check, report = judge(tree)
    assert time.monotonic() - started < 10
    assert any('is in the future' in v for v in check.violations), check.violations
    assert report['databases'][0]['newest']['stamp'] == stamp(2)
    assert SECRET not in json.dumps(report) and SECRET not in json.dumps(check.violations)
    assert [name for name, _path in bs.sched.config_files(str(tree / 'etc'))] == ['nightly']


def test_no_good_dump_and_an_invalid_config(tree):
    check, _report = judge(tree)
    assert check.violations == ['schedule nightly has no dump in %s and no record of any run: it has never run (its '
                                'first run is at the next scheduled time; run it now with run_now)' % (tree / 'dest')]
    (tree / 'etc' / 'nightly.json').write_text(json.dumps(dict(name='nightly', dest='relative/dir')))
    check, report = judge(tree)
    assert report['kind'] is None and 'is not valid, so every run of it fails' in check.violations[0]

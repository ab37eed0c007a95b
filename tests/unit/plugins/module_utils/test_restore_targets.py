# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore targets, recovery settings and the choice of base backup (_restore.targets): pure, no server."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import targets

UTC = datetime.timezone.utc


@pytest.mark.parametrize('text, expected', [
    ('2026-06-12T09:10:00Z', datetime.datetime(2026, 6, 12, 9, 10, tzinfo=UTC)),
    ('2026-06-12 11:10:00+02:00', datetime.datetime(2026, 6, 12, 9, 10, tzinfo=UTC)),
    ('2026-06-12 04:10-0500', datetime.datetime(2026, 6, 12, 9, 10, tzinfo=UTC)),
    ('2026-06-12T09:10:00.25 UTC', datetime.datetime(2026, 6, 12, 9, 10, 0, 250000, tzinfo=UTC)),
])
def test_times_with_a_zone_become_utc(text, expected):
    assert targets.parse_time(text) == expected


@pytest.mark.parametrize('text', ['2026-06-12 09:10:00', '09:10', 'yesterday', '2026-13-40T09:10:00Z', ''])
def test_times_without_a_zone_or_nonsense_are_refused(text):
    with pytest.raises(targets.TargetError):
        targets.parse_time(text)


def test_parse_target_kinds():
    assert targets.parse_target({})['kind'] == 'latest'
    assert targets.parse_target({'time': None, 'lsn': ''})['kind'] == 'latest'
    when = targets.parse_target({'time': '2026-06-12 11:10:00+02:00'})
    assert when['value'] == '2026-06-12 09:10:00.000000+00' and when['kind'] == 'time'
    lsn = targets.parse_target({'lsn': '0/5000148'})
    assert (lsn['value'], lsn['lsn']) == ('0/5000148', 0x5000148)
    assert targets.parse_target({'xid': '1234'})['value'] == '1234'
    assert targets.parse_target({'name': 'before-migration'})['value'] == 'before-migration'
    assert targets.parse_target({'immediate': True})['value'] == 'immediate'


@pytest.mark.parametrize('target, words', [
    ({'time': '2026-06-12T09:10:00Z', 'lsn': '0/1'}, 'give one target'),
    ({'lsn': '5000148'}, 'not an LSN'),
    ({'xid': '-1'}, 'not a transaction id'),
    ({'xid': '2'}, 'not a transaction id'),
    ({'name': 'x' * 64}, 'restore point name'),
    ({'when': 'now'}, 'unknown target key'),
])
def test_bad_targets_say_why(target, words):
    with pytest.raises(targets.TargetError, match=words):
        targets.parse_target(target)


def test_recovery_settings_for_each_kind():
    command = '/usr/bin/python3 /opt/dbfleet/bin/dbfleet-wal-restore --config /x.json %f %p'
    latest = dict(targets.recovery_settings(targets.parse_target({}), 'promote', command))
    assert latest == {'restore_command': command, 'recovery_target_timeline': 'latest', 'recovery_target_action': 'promote'}
    timed = dict(targets.recovery_settings(targets.parse_target({'time': '2026-06-12T09:10:00Z'}), 'pause', command,
                                           inclusive=False, timeline='current'))
    assert timed['recovery_target_time'] == '2026-06-12 09:10:00.000000+00'
    assert (timed['recovery_target_inclusive'], timed['recovery_target_action'], timed['recovery_target_timeline']) == (
        'off', 'pause', 'current')
    immediate = dict(targets.recovery_settings(targets.parse_target({'immediate': True}), 'promote', command))
    assert immediate['recovery_target'] == 'immediate' and 'recovery_target_inclusive' not in immediate
    with pytest.raises(targets.TargetError):
        targets.recovery_settings(targets.parse_target({}), 'shutdown', command)


def test_conf_lines_quote_every_value():
    text = targets.conf_lines([('restore_command', "it's \\ here"), ('recovery_target_name', 'a')], 'written by a test')
    assert text == "# written by a test\nrestore_command = 'it''s \\\\ here'\nrecovery_target_name = 'a'\n"


def _backup(stamp, finished, end_lsn):
    return {'stamp': stamp, 'path': '/srv/basebackups/base-%s.dir' % stamp, 'finished_at': finished, 'end_lsn': end_lsn}


BACKUPS = [_backup('20260610T040000Z', '2026-06-10T04:00:05Z', '0/3000100'),
           _backup('20260611T040000Z', '2026-06-11T04:00:05Z', '0/7000100'),
           _backup('20260612T040000Z', '2026-06-12T04:00:05Z', '0/B000100')]


def test_the_newest_backup_that_ends_before_the_target_is_chosen():
    choose = targets.choose_backup
    assert choose(BACKUPS, targets.parse_target({}))[0]['stamp'] == '20260612T040000Z'
    assert choose(BACKUPS, targets.parse_target({'time': '2026-06-11T12:00:00Z'}))[0]['stamp'] == '20260611T040000Z'
    assert choose(BACKUPS, targets.parse_target({'time': '2026-06-11T04:00:05Z'}))[0]['stamp'] == '20260611T040000Z'
    assert choose(BACKUPS, targets.parse_target({'lsn': '0/7000000'}))[0]['stamp'] == '20260610T040000Z'
    assert choose(BACKUPS, targets.parse_target({}), 'base-20260610T040000Z.dir')[0]['stamp'] == '20260610T040000Z'


def test_no_fitting_backup_is_said_in_words():
    manifest, why = targets.choose_backup(BACKUPS, targets.parse_target({'time': '2026-06-09T00:00:00Z'}))
    assert manifest is None and 'every base backup ends after the target' in why and 'base-20260610T040000Z.dir' in why
    manifest, why = targets.choose_backup(BACKUPS, targets.parse_target({'time': '2026-06-10T12:00:00Z'}), '20260612T040000Z')
    assert manifest is None and 'ends after the target' in why
    assert 'no good base backup named nope' in targets.choose_backup(BACKUPS, targets.parse_target({}), 'nope')[1]
    assert targets.choose_backup([], targets.parse_target({}))[0] is None


def test_rpo():
    assert targets.rpo_seconds(targets.parse_target({'time': '2026-06-12T09:10:00Z'}), True, None, 0) == 0.0
    assert targets.rpo_seconds(targets.parse_target({'time': '2026-06-12T09:10:00Z'}), False, None, 0) is None
    assert targets.rpo_seconds(targets.parse_target({}), False, 1000.0, 1090.5) == 90.5
    assert targets.rpo_seconds(targets.parse_target({}), False, None, 1090.5) is None

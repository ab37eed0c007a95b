# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._cron import (
    ScheduleError,
    cron_command,
    next_runs,
    normalize_schedule,
    render_cron_file,
)


@pytest.mark.parametrize('spec,expected', [
    ('0 3 * * *', '0 3 * * *'),
    ('0 0 3 * * *', '0 3 * * *'),  # the seeds' 6-field form, seconds first
    ('  0   3 * *   * ', '0 3 * * *'),
    ('@daily', '@daily'),
    ('*/15 * * * 1-5', '*/15 * * * 1-5'),
])
def test_normalize(spec, expected):
    assert normalize_schedule(spec) == expected


@pytest.mark.parametrize('spec,words', [
    ('', 'empty'),
    ('30 0 3 * * *', 'seconds field'),
    ('0 3 * *', 'has 4 fields'),
    ('0 25 * * *', 'not a valid cron expression'),
    ('a b c d e', 'not a valid cron expression'),
])
def test_rejects(spec, words):
    with pytest.raises(ScheduleError, match=words):
        normalize_schedule(spec)


def test_next_runs_are_the_next_nights():
    now = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
    runs = next_runs('0 3 * * *', 3, now=now)
    assert runs == ['2026-11-23T03:00:00+00:00', '2026-11-24T03:00:00+00:00', '2026-11-25T03:00:00+00:00']


def test_cron_file_round_trips_the_command():
    argv = ['/usr/bin/python3', '/opt/dbfleet/bin/dbfleet-pg-dump', '--config', '/etc/dbfleet/pg_dump/a b%.json']
    content = render_cron_file('desc', '0 3 * * *', 'postgres', argv)
    job = [line for line in content.splitlines() if line.startswith('0 3')][0]
    assert job.startswith('0 3 * * * postgres /usr/bin/python3 ')
    assert r'\%' in job  # cron would turn a bare % into a newline
    assert cron_command(content) == "/usr/bin/python3 /opt/dbfleet/bin/dbfleet-pg-dump --config '/etc/dbfleet/pg_dump/a b%.json'"


@pytest.mark.parametrize('spec,words', [
    ('0 3 L * *', 'knows no L, W'),         # croniter takes these; cron cannot run them
    ('0 3 * * 5#3', 'knows no L, W'),
    ('0 3 15W * *', 'knows no L, W'),
    ('0 3 ? * *', 'knows no L, W'),
    ('0 3 31 2 *', 'never runs'),           # croniter crashed the module here
    ('0 3 31 2,4 *', 'never runs'),
    ('5/10 * * * *', 'a step needs a range'),
    ('*/0 * * * *', 'the step 0'),
    ('10-5 * * * *', 'runs backwards'),
    ('0 3 * foo *', 'not cron syntax'),
    ('@reboot', 'not a cron nickname'),
    ('0 3 * * *\n* * * * * root id', 'control character'),
])
def test_rejects_what_cron_cannot_run(spec, words):
    with pytest.raises(ScheduleError, match=words):
        normalize_schedule(spec)


@pytest.mark.parametrize('spec', ['0 3 * jan-mar *', '0 3 * * mon-fri', '0 3 * * MON,tue', '0 3 * * 7', '1-30/2 3 * * *',
                                  '0 3 29 2 *', '0 3 31 2,3 *', '0 0 3 * * sun'])
def test_accepts_what_cron_runs(spec):
    assert normalize_schedule(spec)


def test_cron_file_refuses_control_characters():
    with pytest.raises(ScheduleError, match='control character'):
        render_cron_file('dbfleet dump schedule "x": app\n* * * * * root id #', '0 3 * * *', 'postgres', ['/bin/true'])
    with pytest.raises(ScheduleError, match='control character'):
        render_cron_file('desc', '0 3 * * *', 'postgres', ['/bin/true', 'a\rb'])


@pytest.mark.parametrize('spec', ['0 \u00b2 * * *', '0 3 * * \u0661', '0 3 * * *\n'])
def test_only_ascii_digits_and_no_trailing_newline(spec):
    with pytest.raises(ScheduleError):
        normalize_schedule(spec)

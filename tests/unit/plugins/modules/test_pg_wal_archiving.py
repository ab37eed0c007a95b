# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_wal_archiving's own decisions without a server: whose archiving a server has, the settings it needs (never
lowered), what changes, what needs a restart, the statements and the files."""

from __future__ import annotations

import grp
import json
import os
import pwd

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _desired
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import program, walarchive
from ansible_collections.dbfleet.postgresql.plugins.modules import pg_wal_archiving as pwa

PY = '/usr/bin/python3'
OURS = walarchive.archive_command(PY, '/opt/dbfleet/bin/dbfleet-wal-archive', '/etc/dbfleet/wal-archive.json')


def settings(**kwargs):
    values = dict(wal_level='replica', archive_mode='on', archive_command='', archive_library='')
    values.update(kwargs)
    return values


def results(rows, superuser=True, file_setting=None):
    """The three statements' results as run_statements returns them."""
    return (dict(rows=rows), dict(rows=[[superuser]] if superuser is not None else []),
            dict(rows=[[file_setting]] if file_setting is not None else []))


# --- whose archiving is this ----------------------------------------------------------------------------------

@pytest.mark.parametrize('current', [
    settings(),
    settings(archive_command='   '),
    settings(archive_command=None, archive_library=None),
    {},
])
def test_no_archiving_is_nobody_elses(current):
    assert pwa.foreign_archiving(current, OURS) is None


def test_our_own_command_is_ours_whatever_its_paths():
    assert pwa.foreign_archiving(settings(archive_command=OURS), OURS) is None
    elsewhere = walarchive.archive_command('/usr/local/bin/python3.11', '/usr/local/dbfleet/dbfleet-wal-archive',
                                           '/srv/conf/wal archive.json')
    assert elsewhere != OURS
    assert pwa.foreign_archiving(settings(archive_command=elsewhere), OURS) is None


@pytest.mark.parametrize('command', [
    'pgbackrest --stanza=main archive-push %p',
    'wal-g wal-push %p',
    'test ! -f /srv/wal-archive/%f && cp %p /srv/wal-archive/%f',
    '/usr/bin/python3 /opt/dbfleet/bin/dbfleet-wal-archive --config /etc/dbfleet/wal-archive.json %p',  # not all of ours
    '/usr/bin/python3 /opt/other/dbfleet-wal-archive-not --config /etc/x.json %p %f',
    '"unbalanced quote %p',
])
def test_someone_elses_command_is_named(command):
    assert pwa.foreign_archiving(settings(archive_command=command), OURS) == 'archive_command = %r' % command


def test_an_archive_library_is_foreign_even_beside_our_command():
    assert pwa.foreign_archiving(settings(archive_library='basic_archive', archive_command=OURS), OURS) == \
        "archive_library = 'basic_archive'"


# --- the settings as the server has them ----------------------------------------------------------------------

def test_disabled_archive_command_is_read_from_the_configuration_files():
    rows = [['wal_level', 'replica', False], ['archive_mode', 'off', False], ['archive_command', '(disabled)', False],
            ['archive_library', '', False]]
    current, pending, superuser = pwa.settings_from_results(*results(rows, file_setting='wal-g wal-push %p'))
    assert current['archive_command'] == 'wal-g wal-push %p' and superuser and pending == []
    assert pwa.foreign_archiving(current, OURS) == "archive_command = 'wal-g wal-push %p'"
    current = pwa.settings_from_results(*results(rows))[0]
    assert current['archive_command'] == ''


def test_settings_before_postgresql_15_have_no_archive_library_and_pending_is_sorted():
    rows = [['wal_level', 'replica', True], ['archive_mode', 'on', True], ['archive_command', OURS, False]]
    current, pending, superuser = pwa.settings_from_results(*results(rows, superuser=False))
    assert current['archive_library'] == '' and pending == ['archive_mode', 'wal_level'] and superuser is False
    assert pwa.settings_from_results(*results(rows, superuser=None))[2] is False


# --- the settings archiving needs -----------------------------------------------------------------------------

@pytest.mark.parametrize('level,expected', [('minimal', 'replica'), ('replica', 'replica'), ('logical', 'logical'),
                                            (None, 'replica'), ('', 'replica')])
def test_wal_level_is_never_lowered(level, expected):
    assert pwa.desired_settings(settings(wal_level=level), OURS)['wal_level'] == expected


@pytest.mark.parametrize('mode,expected', [('off', 'on'), ('on', 'on'), ('always', 'always'), (None, 'on')])
def test_archive_mode_always_stays_always(mode, expected):
    assert pwa.desired_settings(settings(archive_mode=mode), OURS)['archive_mode'] == expected


def test_desired_settings_are_our_command_and_no_library():
    after = pwa.desired_settings(settings(archive_library='basic_archive', archive_command='x'), OURS)
    assert after == dict(wal_level='replica', archive_mode='on', archive_command=OURS, archive_library='')


def test_changes_in_settings_order_and_unset_counts_as_empty():
    before = settings(wal_level='minimal', archive_mode='off', archive_command=None, archive_library=None)
    after = pwa.desired_settings(before, OURS)
    assert pwa.settings_changes(before, after) == ['wal_level', 'archive_mode', 'archive_command']
    assert pwa.settings_changes(after, after) == []
    assert pwa.settings_changes(settings(archive_command=OURS, archive_library=None), after) == []


@pytest.mark.parametrize('changed,pending,needed', [
    (['wal_level'], [], True),
    (['archive_mode', 'archive_command'], [], True),
    (['archive_command'], [], False),
    (['archive_library'], [], False),
    ([], ['archive_mode'], True),
    ([], ['shared_buffers'], False),
    ([], [], False),
])
def test_restart_needed(changed, pending, needed):
    assert pwa.restart_needed(changed, pending) is needed


def test_statements_quote_the_command_reset_the_library_and_reload_last():
    after = pwa.desired_settings(settings(), "/usr/bin/python3 '/opt/it''s/dbfleet-wal-archive' --config /x %p %f")
    statements = pwa.alter_statements(after, ['archive_mode', 'archive_command', 'archive_library'])
    assert statements == [
        ("ALTER SYSTEM SET archive_mode = 'on'", None),
        ("ALTER SYSTEM SET archive_command = '/usr/bin/python3 ''/opt/it''''s/dbfleet-wal-archive'' --config /x %p %f'",
         None),
        ("ALTER SYSTEM RESET archive_library", None),
        ("SELECT pg_reload_conf()", None),
    ]
    assert pwa.alter_statements(after, []) == [("SELECT pg_reload_conf()", None)]


def test_the_settings_diff_shows_before_and_after_of_what_changes():
    before = settings(archive_mode='off', archive_command=None)
    after = pwa.desired_settings(before, OURS)
    diff = pwa.settings_diff(before, after, pwa.settings_changes(before, after))
    assert diff == dict(before_header='ALTER SYSTEM', after_header='ALTER SYSTEM',
                        before="archive_mode = 'off'\narchive_command = ''\n",
                        after="archive_mode = 'on'\narchive_command = %r\n" % OURS)


# --- the files --------------------------------------------------------------------------------------------------

def test_desired_state_owners_modes_and_content(tmp_path):
    user = pwd.getpwuid(os.getuid())
    params = dict(archive_dir=str(tmp_path / 'wal-archive'), run_as=user.pw_name,
                  program_path=str(tmp_path / 'bin' / 'dbfleet-wal-archive'), config_path=str(tmp_path / 'etc' / 'wal.json'))
    items = pwa.desired_state(params, PY)
    by_path = dict((item.path, item) for item in items)
    assert [type(item).__name__ for item in items] == ['DesiredDir'] * 3 + ['DesiredFile'] * 2
    assert (by_path[str(tmp_path / 'bin')].owner, by_path[str(tmp_path / 'bin')].mode) == ('root', 0o755)
    assert (by_path[str(tmp_path / 'etc')].owner, by_path[str(tmp_path / 'etc')].mode) == ('root', 0o755)
    archive = by_path[params['archive_dir']]
    assert (archive.owner, archive.mode) == (user.pw_name, 0o750)
    prog = by_path[params['program_path']]
    assert (prog.owner, prog.group, prog.mode, prog.shown) == ('root', None, 0o755, False)
    assert prog.content == program.build_program('dbfleet-wal-archive', PY)
    config = by_path[params['config_path']]
    assert (config.owner, config.group, config.mode, config.secret) == ('root', grp.getgrgid(user.pw_gid).gr_name, 0o640,
                                                                        False)
    assert json.loads(config.content.decode('utf-8')) == dict(archive_dir=params['archive_dir'])
    changed, diffs = _desired.plan(items)
    assert len(changed) == 5 and [d['after_header'] for d in diffs] == [
        str(tmp_path / 'bin'), str(tmp_path / 'etc'), params['archive_dir'], params['config_path']]

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_desired: what differs, what a diff shows (a secret only that it changed), what plan() lists and what apply()
writes, as the current user in tmp_path."""

from __future__ import annotations

import grp
import os
import pwd
import stat

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _desired
from ansible_collections.dbfleet.postgresql.plugins.module_utils._files import UnsafePath

USER = pwd.getpwuid(os.getuid())
GROUP = grp.getgrgid(USER.pw_gid).gr_name
SECRET = b'db.example:5432:*:backup:correct-horse-battery-staple\n'


class Recorder:
    """The part of a module apply() uses: edit-mode backups, recorded."""

    def __init__(self):
        self.backups = []

    def backup_before_overwrite(self, path, secret=False):
        self.backups.append((path, secret))


def write(path, data, mode=0o640):
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)


def mine(path, content, mode=0o640, **kwargs):
    """A DesiredFile owned by the current user, so tests need no root."""
    return _desired.DesiredFile(str(path), content, owner=USER.pw_name, group=GROUP, mode=mode, **kwargs)


def shown_values(diff):
    return ' '.join(str(value) for value in diff.values())


def test_ids():
    assert _desired.ids('root') == (0, 0)
    assert _desired.ids(USER.pw_name) == (USER.pw_uid, USER.pw_gid)
    assert _desired.ids(USER.pw_name, 'root') == (USER.pw_uid, 0)
    with pytest.raises(KeyError):
        _desired.ids('no-such-user-here')


# --- DesiredFile.diff: secrets ----------------------------------------------------------------------------------

def test_a_changed_secret_says_only_changed(tmp_path):
    write(tmp_path / 'p.pgpass', b'old-password-value\n')
    item = mine(tmp_path / 'p.pgpass', SECRET, secret=True)
    assert item.differs() == 'content'
    diff = item.diff()
    assert diff == dict(before_header=str(tmp_path / 'p.pgpass'), after_header=str(tmp_path / 'p.pgpass'),
                        before=_desired.SECRET_CHANGED, after=_desired.SECRET_CHANGED)
    text = shown_values(diff)
    for leak in ('correct-horse', 'old-password', str(len(SECRET)), str(len(b'old-password-value\n'))):
        assert leak not in text


def test_an_unchanged_secret_is_not_shown_and_not_listed(tmp_path):
    write(tmp_path / 'p.pgpass', SECRET)
    item = mine(tmp_path / 'p.pgpass', SECRET, secret=True)
    assert item.differs() is None
    assert item.diff()['before'] == item.diff()['after'] == _desired.SECRET_SAME
    assert _desired.plan([item]) == ([], [])


def test_an_unchanged_secret_with_a_wrong_mode_says_same_content(tmp_path):
    write(tmp_path / 'p.pgpass', SECRET, mode=0o644)
    item = mine(tmp_path / 'p.pgpass', SECRET, secret=True)
    changed, diffs = _desired.plan([item])
    assert changed == [item] and item.differs() == 'owner/mode'
    assert diffs[0]['before'] == diffs[0]['after'] == _desired.SECRET_SAME


def test_a_new_secret_shows_no_content(tmp_path):
    item = mine(tmp_path / 'new.pgpass', SECRET, secret=True)
    assert item.differs() == 'content'
    diff = item.diff()
    assert (diff['before'], diff['after']) == ('', _desired.SECRET_CHANGED)
    assert 'correct-horse' not in shown_values(diff) and str(len(SECRET)) not in shown_values(diff)


def test_a_plain_file_diff_shows_its_text(tmp_path):
    write(tmp_path / 'x.json', b'{"a": 1}\n')
    diff = mine(tmp_path / 'x.json', b'{"a": 2}\n').diff()
    assert (diff['before'], diff['after']) == ('{"a": 1}\n', '{"a": 2}\n')
    assert mine(tmp_path / 'new.json', b'\xff{}\n').diff()['before'] == ''
    assert mine(tmp_path / 'new.json', b'\xff{}\n').diff()['after'] == '\ufffd{}\n'


# --- plan -------------------------------------------------------------------------------------------------------

def test_plan_lists_only_what_differs_and_never_shows_a_program(tmp_path):
    write(tmp_path / 'same.json', b'same\n')
    write(tmp_path / 'other.json', b'before\n')
    (tmp_path / 'dir').mkdir(mode=0o750)
    os.chmod(tmp_path / 'dir', 0o750)
    items = [
        _desired.DesiredDir(str(tmp_path / 'dir'), owner=USER.pw_name, group=GROUP, mode=0o750),
        _desired.DesiredDir(str(tmp_path / 'newdir'), owner=USER.pw_name, group=GROUP, mode=0o750),
        mine(tmp_path / 'same.json', b'same\n'),
        mine(tmp_path / 'other.json', b'after\n'),
        mine(tmp_path / 'program', b'#!/usr/bin/python3\n...', mode=0o755, shown=False),
        _desired.ObsoleteFile(str(tmp_path / 'never-was'), secret=True),
    ]
    changed, diffs = _desired.plan(items)
    assert [item.path for item in changed] == [str(tmp_path / 'newdir'), str(tmp_path / 'other.json'),
                                               str(tmp_path / 'program')]
    assert [diff['after_header'] for diff in diffs] == [str(tmp_path / 'newdir'), str(tmp_path / 'other.json')]
    assert diffs[0]['after'] == '(directory %s:%s 0750)\n' % (USER.pw_name, GROUP)


def test_a_directory_with_the_wrong_mode_differs(tmp_path):
    (tmp_path / 'dir').mkdir()
    os.chmod(tmp_path / 'dir', 0o777)
    assert _desired.DesiredDir(str(tmp_path / 'dir'), owner=USER.pw_name, group=GROUP, mode=0o750).differs() == 'owner/mode'
    assert _desired.DesiredDir(str(tmp_path / 'no'), owner=USER.pw_name, mode=0o750).differs() == 'missing'


def test_obsolete_files_differ_while_they_exist_and_a_secret_one_shows_no_content(tmp_path):
    write(tmp_path / 'old.pgpass', SECRET)
    write(tmp_path / 'old.json', b'{}\n')
    changed, diffs = _desired.plan([_desired.ObsoleteFile(str(tmp_path / 'old.pgpass'), secret=True),
                                    _desired.ObsoleteFile(str(tmp_path / 'old.json'))])
    assert len(changed) == 2
    assert [(d['before'], d['after']) for d in diffs] == [(_desired.SECRET_SAME, ''), ('(file)\n', '')]


def test_a_planted_symlink_is_refused_not_followed(tmp_path):
    write(tmp_path / 'target', b'x\n')
    os.chmod(tmp_path, 0o755)
    os.symlink(str(tmp_path / 'target'), str(tmp_path / 'config.json'))
    with pytest.raises(UnsafePath, match='symlink'):
        _desired.plan([mine(tmp_path / 'config.json', b'y\n')])


# --- apply ------------------------------------------------------------------------------------------------------

def test_apply_writes_owner_mode_and_content_and_then_nothing_differs(tmp_path):
    os.chmod(tmp_path, 0o755)
    write(tmp_path / 'config.json', b'before\n', mode=0o666)
    items = [
        _desired.DesiredDir(str(tmp_path / 'state'), owner=USER.pw_name, group=GROUP, mode=0o750),
        mine(tmp_path / 'config.json', b'after\n'),
        mine(tmp_path / 'state' / 'p.pgpass', SECRET, mode=0o600, secret=True),
    ]
    recorder = Recorder()
    changed, _diffs = _desired.plan(items)
    _desired.apply(recorder, changed)
    assert recorder.backups == [(str(tmp_path / 'config.json'), False)], 'an overwrite is backed up, a new file not'
    for path, mode in ((tmp_path / 'state', 0o750), (tmp_path / 'config.json', 0o640), (tmp_path / 'state' / 'p.pgpass', 0o600)):
        info = os.lstat(path)
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (USER.pw_uid, USER.pw_gid, mode)
    assert (tmp_path / 'config.json').read_bytes() == b'after\n'
    assert (tmp_path / 'state' / 'p.pgpass').read_bytes() == SECRET
    fresh = [
        _desired.DesiredDir(str(tmp_path / 'state'), owner=USER.pw_name, group=GROUP, mode=0o750),
        mine(tmp_path / 'config.json', b'after\n'),
        mine(tmp_path / 'state' / 'p.pgpass', SECRET, mode=0o600, secret=True),
    ]
    assert _desired.plan(fresh) == ([], [])


def test_apply_tells_the_module_a_secret_is_one(tmp_path):
    """The module never backs up a secret; it can only do that when it is told which files are secrets."""
    write(tmp_path / 'p.pgpass', b'old\n', mode=0o600)
    write(tmp_path / 'gone.pgpass', b'old\n', mode=0o600)
    recorder = Recorder()
    changed, _diffs = _desired.plan([mine(tmp_path / 'p.pgpass', SECRET, mode=0o600, secret=True),
                                     _desired.ObsoleteFile(str(tmp_path / 'gone.pgpass'), secret=True)])
    _desired.apply(recorder, changed)
    assert recorder.backups == [(str(tmp_path / 'p.pgpass'), True), (str(tmp_path / 'gone.pgpass'), True)]
    assert not os.path.lexists(tmp_path / 'gone.pgpass')


def test_a_setuid_mode_is_never_written(tmp_path):
    with pytest.raises(UnsafePath, match='setuid'):
        mine(tmp_path / 'prog', b'x', mode=0o4755).apply(Recorder())
    assert not os.path.lexists(tmp_path / 'prog')


def test_group_of_is_the_primary_group():
    assert _desired.group_of('root') == grp.getgrgid(0).gr_name
    assert _desired.group_of(USER.pw_name) == GROUP
    with pytest.raises(KeyError):
        _desired.group_of('no-such-user-here')

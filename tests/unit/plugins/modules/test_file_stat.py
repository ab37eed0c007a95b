# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_stat's "newest" without a lab: a runner-named file is as old as its stamp (a copy or touch changes
nothing), any other file as its mtime, and a stamp in the future is never the newest backup."""

from __future__ import annotations

import datetime
import os
import time

import pytest

from ansible_collections.dbfleet.postgresql.plugins.modules import file_stat as fs

STAMP = '20261122T030000Z'
STAMP_TS = datetime.datetime(2026, 11, 22, 3, 0, 0, tzinfo=datetime.timezone.utc).timestamp()
NOW = datetime.datetime(2026, 11, 23, 12, 0, 0, tzinfo=datetime.timezone.utc).timestamp()


class Failed(Exception):
    pass


class FakeModule:
    """What _find needs of a module: fail_json, and the deny-list check (recorded, never refusing here)."""

    def __init__(self):
        self.checked = []

    def fail_json(self, **kwargs):
        raise Failed(kwargs['msg'])

    def require_allowed_path(self, path, option=None):
        self.checked.append((path, option))


def touch(path, mtime, data=b'x'):
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return str(path)


def stamp_of(when):
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')


# --- _when ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['app_prod-%s.dump.zst' % STAMP, 'app_prod-%s.dump' % STAMP, 'app_prod-%s.sql.gz' % STAMP])
def test_a_runner_named_file_is_as_old_as_its_stamp(tmp_path, name):
    path = touch(tmp_path / name, NOW)  # copied or touched later: the mtime says nothing
    assert fs._when(path, os.lstat(path)) == STAMP_TS


def test_a_runner_named_directory_dump_is_as_old_as_its_stamp(tmp_path):
    path = tmp_path / ('app_prod-%s.dir' % STAMP)
    path.mkdir()
    assert fs._when(str(path) + '/', os.lstat(path)) == STAMP_TS


@pytest.mark.parametrize('name', ['nightly.dump', 'app_prod-2026-11-22.dump.zst', 'app_prod-%s' % STAMP,
                                  'app_prod-20261399T030000Z.dump'])
def test_any_other_file_is_as_old_as_its_mtime(tmp_path, name):
    path = touch(tmp_path / name, NOW - 3600)
    assert fs._when(path, os.lstat(path)) == NOW - 3600


# --- the future-stamp rule ----------------------------------------------------------------------------------------

def test_newest_first_by_when_and_future_stamps_set_aside():
    candidates = [(NOW - 7200, '/srv/b/old'), (NOW + fs.FUTURE_SLACK + 1, '/srv/b/future'), (NOW - 60, '/srv/b/new'),
                  (NOW + fs.FUTURE_SLACK, '/srv/b/within-slack')]
    paths, violations = fs.newest_first(candidates, NOW)
    assert paths == ['/srv/b/within-slack', '/srv/b/new', '/srv/b/old']
    assert len(violations) == 1 and violations[0].startswith('/srv/b/future is stamped 2026-11-23T12:05:01+00:00, in '
                                                             'the future: not counted as the newest backup')
    assert fs.newest_first([], NOW) == ([], [])


def test_find_takes_the_stamp_over_the_mtime_and_sets_a_future_stamp_aside(tmp_path):
    now = time.time()
    older = touch(tmp_path / ('app_prod-%s.dump.zst' % stamp_of(now - 2 * 86400)), now)  # touched just now
    newer = touch(tmp_path / ('app_prod-%s.dump.zst' % stamp_of(now - 86400)), now - 5 * 86400)  # copied with an old mtime
    planted = touch(tmp_path / ('app_prod-%s.dump.zst' % stamp_of(now + 10 * 86400)), now)
    touch(tmp_path / ('app_prod-%s.manifest.json' % stamp_of(now - 60)), now, b'{}')
    os.symlink(older, str(tmp_path / ('app_prod-%s.dump.zst' % stamp_of(now - 30))))
    os.mkfifo(str(tmp_path / ('app_prod-%s.dump' % stamp_of(now - 20))))
    module, violations = FakeModule(), []
    assert fs._find(module, str(tmp_path / 'app_prod-*'), violations) == [newer, older]
    assert len(violations) == 1 and violations[0].startswith('%s is stamped ' % planted) and 'in the future' in violations[0]
    assert (str(tmp_path), 'pattern') in module.checked and (newer, 'pattern') in module.checked


def test_find_of_a_file_without_a_stamp_in_the_future_by_mtime(tmp_path):
    now = time.time()
    ahead = touch(tmp_path / 'manual.dump', now + 86400)
    behind = touch(tmp_path / 'other.dump', now - 60)
    violations = []
    assert fs._find(FakeModule(), str(tmp_path / '*.dump'), violations) == [behind]
    assert len(violations) == 1 and violations[0].startswith(ahead)


def test_find_wants_an_absolute_glob(tmp_path):
    with pytest.raises(Failed, match='must be an absolute path glob'):
        fs._find(FakeModule(), 'backups/*.dump', [])


def test_find_of_manifests_only_when_asked(tmp_path):
    manifest = touch(tmp_path / ('app_prod-%s.manifest.json' % STAMP), NOW, b'{}')
    assert fs._find(FakeModule(), str(tmp_path / '*'), []) == []
    assert fs._find(FakeModule(), str(tmp_path / '*.manifest.json'), []) == [manifest]

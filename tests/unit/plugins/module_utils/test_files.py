# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root-safe file operations: symlinks another user planted are never followed by root, copies never carry
privileged modes, and nothing root reads can hang it."""

from __future__ import annotations

import os
import pwd
import stat
import threading

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='root semantics (chown, other users) are the point')


@pytest.fixture()
def postgres():
    return pwd.getpwnam('postgres')


@pytest.fixture()
def tree(tmp_path, postgres):
    """tmp_path/root-owned/ (0755) holding user-owned/ (postgres, 0750) - the shape of /srv and /srv/backups."""
    os.chmod(tmp_path, 0o755)
    trusted = tmp_path / 'trusted'
    trusted.mkdir(mode=0o755)
    user = trusted / 'user'
    user.mkdir()
    os.chown(user, postgres.pw_uid, postgres.pw_gid)
    os.chmod(user, 0o750)
    return trusted, user


def test_planted_symlink_is_not_followed_for_chown(tree, postgres, tmp_path):
    trusted, user = tree
    victim = tmp_path / 'victim'
    victim.mkdir(mode=0o755)
    os.symlink(str(victim), str(user / 'dest'))  # what postgres can do in its own directory
    with pytest.raises(_files.UnsafePath, match='symlink'):
        _files.ensure_dir(str(user / 'dest'), postgres.pw_uid, postgres.pw_gid, 0o750)
    with pytest.raises(_files.UnsafePath, match='symlink'):
        _files.ensure_dir(str(user / 'dest' / 'sub'), postgres.pw_uid, postgres.pw_gid, 0o750)
    info = os.stat(victim)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)


def test_symlink_made_by_root_in_a_root_directory_is_followed(tree, postgres, tmp_path):
    trusted, _user = tree
    real = tmp_path / 'real'
    real.mkdir(mode=0o755)
    os.symlink(str(real), str(trusted / 'alias'))
    assert _files.ensure_dir(str(trusted / 'alias' / 'backups'), postgres.pw_uid, postgres.pw_gid, 0o750)
    info = os.lstat(real / 'backups')
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == postgres.pw_uid and stat.S_IMODE(info.st_mode) == 0o750


def test_existing_directory_is_fixed_through_its_fd(tree, postgres):
    trusted, user = tree
    os.chmod(user, 0o777)
    assert _files.ensure_dir(str(user), postgres.pw_uid, postgres.pw_gid, 0o750)
    assert stat.S_IMODE(os.stat(user).st_mode) == 0o750
    assert not _files.ensure_dir(str(user), postgres.pw_uid, postgres.pw_gid, 0o750)


def test_no_directory_made_inside_a_third_users_directory(tmp_path, postgres):
    os.chmod(tmp_path, 0o755)
    other = tmp_path / 'other'
    other.mkdir()
    os.chown(other, 65534, 65534)
    with pytest.raises(_files.UnsafePath, match='neither root nor'):
        _files.ensure_dir(str(other / 'x'), postgres.pw_uid, postgres.pw_gid, 0o750)


def test_open_regular_refuses_fifo_symlink_and_directory(tmp_path):
    os.mkfifo(tmp_path / 'app-20261201T030000Z.dump')
    os.symlink('/etc/shadow', tmp_path / 'link.dump')
    result = {}

    def probe():
        for name in ('app-20261201T030000Z.dump', 'link.dump', ''):
            try:
                _files.open_regular(str(tmp_path / name) if name else str(tmp_path) + '/')
            except (_files.UnsafePath, OSError) as exc:
                result[name] = str(exc)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), 'open_regular blocked on a FIFO'
    assert 'FIFO' in result['app-20261201T030000Z.dump']
    assert 'symlink' in result['link.dump']
    assert 'directory' in result['']


def test_backup_copy_never_carries_privileged_bits(tmp_path, postgres):
    source = tmp_path / 'nightly.json'
    source.write_text('{"x": 1}\n')
    os.chown(source, postgres.pw_uid, postgres.pw_gid)
    os.chmod(source, 0o6777)  # what a hostile owner can do to its own file
    backups = tmp_path / 'backups'
    copy = _files.backup_copy(str(source), backup_root=str(backups))
    info = os.lstat(copy)
    assert copy.startswith(str(backups) + '/') and open(copy).read() == '{"x": 1}\n'
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600)
    for directory in (backups, os.path.dirname(copy)):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700 and os.stat(directory).st_uid == 0


def test_backup_copy_skips_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / 'fifo')
    os.symlink('/etc/shadow', tmp_path / 'link')
    assert _files.backup_copy(str(tmp_path / 'fifo'), backup_root=str(tmp_path / 'b')) is None
    assert _files.backup_copy(str(tmp_path / 'link'), backup_root=str(tmp_path / 'b')) is None
    assert _files.backup_copy(str(tmp_path / 'missing'), backup_root=str(tmp_path / 'b')) is None


def test_write_file_sets_owner_and_mode_before_content(tmp_path, postgres):
    target = tmp_path / 'conf'
    planted = tmp_path / ('.conf.partial-%d' % os.getpid())  # the temporary name, planted as a link
    os.symlink('/etc/passwd', planted)
    passwd = open('/etc/passwd', 'rb').read()
    _files.write_file(str(target), b'secret', 0, postgres.pw_gid, 0o640)
    # The link was replaced, never written through.
    assert open('/etc/passwd', 'rb').read() == passwd and not os.path.lexists(planted)
    info = os.lstat(target)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, postgres.pw_gid, 0o640)
    with pytest.raises(_files.UnsafePath, match='setuid'):
        _files.write_file(str(target), b'x', 0, 0, 0o4755)

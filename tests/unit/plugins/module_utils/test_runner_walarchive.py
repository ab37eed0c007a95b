# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WAL archiver (``_runner.walarchive``, program ``dbfleet-wal-archive``): archive_command, copying, refusing."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import program, walarchive
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.fsutil import write_atomic

SEGMENT = bytes(range(256)) * 4096  # 1 MiB that is not all zeros


# --------------------------------------------------------------------------
# the archive_command string
# --------------------------------------------------------------------------

def test_archive_command_is_quoted_and_escapes_percent():
    command = walarchive.archive_command('/usr/bin/python3', '/opt/dbfleet/bin/dbfleet-wal-archive', '/etc/dbfleet/wal-archive.json')
    assert command == '/usr/bin/python3 /opt/dbfleet/bin/dbfleet-wal-archive --config /etc/dbfleet/wal-archive.json %p %f'
    odd = walarchive.archive_command('/usr/bin/python3', "/opt/db fleet/it's/dbfleet-wal-archive", '/etc/100%/$(reboot);x.json')
    # PostgreSQL turns %% into %, then sh splits: the paths arrive as single words, nothing is substituted
    argv = shlex.split(odd.replace('%%', '%').replace(' %p %f', ' PATH NAME'))
    assert argv == ['/usr/bin/python3', "/opt/db fleet/it's/dbfleet-wal-archive", '--config', '/etc/100%/$(reboot);x.json', 'PATH', 'NAME']
    assert '%/' not in odd.replace('%%', '')
    assert walarchive.is_our_command(command) and walarchive.is_our_command(odd)
    for other in ('test ! -f /a/%f && cp %p /a/%f', 'pgbackrest --stanza=x archive-push %p', '', "'unbalanced"):
        assert not walarchive.is_our_command(other)


@pytest.mark.parametrize('args', [
    ('python3', '/p', '/c'), ('/usr/bin/python3', 'relative', '/c'), ('/usr/bin/python3', '/p', 'c.json'),
    ('/usr/bin/python3', '/p\n', '/c'), ('/usr/bin/python3', '/p', '/c\x00'), ('/usr/bin/py\tthon', '/p', '/c'),
    ('/usr/bin/python3', '/p\x7f', '/c'), (None, '/p', '/c'),
])
def test_archive_command_refuses_what_could_break_it(args):
    with pytest.raises(ValueError, match='absolute path without control characters'):
        walarchive.archive_command(*args)


# --------------------------------------------------------------------------
# archiving one segment
# --------------------------------------------------------------------------

@pytest.fixture
def setup(tmp_path):
    data = tmp_path / 'data' / 'pg_wal'
    data.mkdir(parents=True)
    archive = tmp_path / 'archive'
    archive.mkdir()
    name = '000000010000000000000003'
    (data / name).write_bytes(SEGMENT)
    return str(data / name), name, str(archive)


def test_a_segment_is_copied_whole_with_its_mode(setup):
    source, name, archive = setup
    outcome, sentence = walarchive.archive_segment(source, name, archive)
    assert outcome == 'archived' and hashlib.sha256(SEGMENT).hexdigest() in sentence
    with open(os.path.join(archive, name), 'rb') as handle:
        assert handle.read() == SEGMENT
    assert os.stat(os.path.join(archive, name)).st_mode & 0o777 == 0o640
    assert os.listdir(archive) == [name]


def test_an_identical_segment_is_success_and_a_different_one_an_error_naming_both_checksums(setup):
    source, name, archive = setup
    walarchive.archive_segment(source, name, archive)
    assert walarchive.archive_segment(source, name, archive)[0] == 'identical'
    other = SEGMENT[:-1] + b'!'
    with open(os.path.join(archive, name), 'wb') as handle:
        handle.write(other)
    with pytest.raises(walarchive.ArchiveError) as caught:
        walarchive.archive_segment(source, name, archive)
    assert hashlib.sha256(other).hexdigest() in str(caught.value) and hashlib.sha256(SEGMENT).hexdigest() in str(caught.value)
    with open(os.path.join(archive, name), 'rb') as handle:
        assert handle.read() == other  # never overwritten


def test_a_truncated_leftover_temp_file_is_replaced(setup):
    source, name, archive = setup
    temp = os.path.join(archive, walarchive.temp_name(name))
    with open(temp, 'wb') as handle:
        handle.write(SEGMENT[:1000])
    assert walarchive.archive_segment(source, name, archive)[0] == 'archived'
    assert os.listdir(archive) == [name]
    with open(os.path.join(archive, name), 'rb') as handle:
        assert handle.read() == SEGMENT


def test_a_symlink_as_temp_file_is_not_followed(setup, tmp_path):
    source, name, archive = setup
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep me')
    os.symlink(str(victim), os.path.join(archive, walarchive.temp_name(name)))
    walarchive.archive_segment(source, name, archive)
    assert victim.read_bytes() == b'keep me'


@pytest.mark.parametrize('name', ['', '.', '..', '../000000010000000000000003', 'a/b', '.hidden', 'x\ny', 'x\ty', 'x\x7f', 'x\x1b[2J'])
def test_names_that_are_not_plain_file_names_are_refused(setup, name):
    source, _name, archive = setup
    with pytest.raises(walarchive.ArchiveError, match='plain file name'):
        walarchive.archive_segment(source, name, archive)
    assert os.listdir(archive) == []


# --------------------------------------------------------------------------
# the program
# --------------------------------------------------------------------------

def run_program(tmp_path, *args):
    path = str(tmp_path / 'dbfleet-wal-archive')
    if not os.path.exists(path):
        write_atomic(path, program.build_program('dbfleet-wal-archive', sys.executable), 0o755)
    return subprocess.run([sys.executable, path] + list(args), capture_output=True, text=True, check=False)


def test_the_program_exit_statuses_and_words(setup, tmp_path):
    source, name, archive = setup
    config = tmp_path / 'wal.json'
    config.write_text(json.dumps({'archive_dir': archive}))
    proc = run_program(tmp_path, '--config', str(config), source, name)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, '', '')  # silent on success
    proc = run_program(tmp_path, '--config', str(config), source, name)
    assert proc.returncode == 0 and 'already archived, identical' in proc.stderr
    with open(os.path.join(archive, name), 'ab') as handle:
        handle.write(b'x')
    proc = run_program(tmp_path, '--config', str(config), source, name)
    assert proc.returncode == 1 and 'different content' in proc.stderr and proc.stderr.count('sha256') == 2
    proc = run_program(tmp_path, '--config', str(config), source, 'a/b')
    assert proc.returncode == 1 and 'plain file name' in proc.stderr
    proc = run_program(tmp_path, '--config', str(config), str(tmp_path / 'missing'), '000000010000000000000009')
    assert proc.returncode == 1 and 'could not archive' in proc.stderr
    config.write_text(json.dumps({'archive_dir': 'relative', 'extra': 1}))
    proc = run_program(tmp_path, '--config', str(config), source, name)
    assert proc.returncode == 2 and 'archive_dir must be' in proc.stderr and "unknown config key 'extra'" in proc.stderr
    proc = run_program(tmp_path, '--version')
    assert proc.returncode == 0 and proc.stdout.startswith('dbfleet-wal-archive ')

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic writes (``_runner.fsutil.write_atomic``): the one way a file is replaced."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import fsutil


def test_write_atomic_sets_mode_before_content_and_leaves_no_temp_file(tmp_path):
    path = str(tmp_path / 'f')
    fsutil.write_atomic(path, b'one', 0o600)
    fsutil.write_atomic(path, b'two', 0o640)
    with open(path, 'rb') as handle:
        assert handle.read() == b'two'
    assert os.stat(path).st_mode & 0o7777 == 0o640
    assert os.listdir(str(tmp_path)) == ['f']


def test_write_atomic_in_an_open_directory(tmp_path):
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsutil.write_atomic('f', b'data', 0o644, dir_fd=fd)
    finally:
        os.close(fd)
    assert (tmp_path / 'f').read_bytes() == b'data' and os.listdir(str(tmp_path)) == ['f']


def test_write_atomic_streams_an_open_file_in_chunks(tmp_path):
    data = os.urandom((3 << 20) + 17)  # more than one chunk, and not a multiple of it
    source = tmp_path / 'source'
    source.write_bytes(data)
    with open(str(source), 'rb') as handle:
        fsutil.write_atomic(str(tmp_path / 'copy'), handle, 0o600)
    assert (tmp_path / 'copy').read_bytes() == data
    assert oct((tmp_path / 'copy').stat().st_mode & 0o7777) == oct(0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['copy', 'source']


def test_write_atomic_replaces_a_stale_temp_file_and_never_follows_a_symlink(tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    os.symlink(str(victim), str(tmp_path / fsutil.partial_name('f')))
    fsutil.write_atomic(str(tmp_path / 'f'), b'new')
    assert victim.read_bytes() == b'keep' and (tmp_path / 'f').read_bytes() == b'new'


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'old')
    with pytest.raises(TypeError):
        fsutil.write_atomic(str(path), 'not bytes')
    assert path.read_bytes() == b'old' and os.listdir(str(tmp_path)) == ['f']
    with pytest.raises(ValueError, match='setuid'):
        fsutil.write_atomic(str(path), b'x', 0o4755)


def test_json_reader_never_blocks_on_a_fifo_or_follows_a_link(tmp_path):
    import threading  # pylint: disable=import-outside-toplevel
    os.mkfifo(str(tmp_path / 'last-run.json'))
    os.symlink('/etc/passwd', str(tmp_path / 'manifest.json'))
    found = {}
    worker = threading.Thread(target=lambda: found.update(
        fifo=fsutil.read_json_object(str(tmp_path / 'last-run.json')),
        link=fsutil.read_json_object(str(tmp_path / 'manifest.json'))), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), 'read_json_object blocked on a FIFO'
    assert found['fifo'][0] is None and 'not a regular file' in found['fifo'][1]
    assert found['link'][0] is None and found['link'][1]

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pipeline: every exit status counts, hashing while streaming (``_runner.pipeline``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import cli
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import hashing
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import pipeline
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import run


# --------------------------------------------------------------------------
# the pipeline: every exit status counts, hashing while streaming
# --------------------------------------------------------------------------

def run_pipe(tmp_path, stages):
    out = tmp_path / 'out.bin'
    fd = os.open(str(out), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        digest = hashing.StreamDigest()
        result = pipeline.run_pipeline(stages, dict(os.environ), fd, digest)
    finally:
        os.close(fd)
    return result, digest, out.read_bytes()


def test_pipeline_streams_and_hashes(tmp_path):
    result, digest, data = run_pipe(tmp_path, [('gen', ['sh', '-c', 'seq 1 200000']), ('gzip', ['gzip', '-c', '-1'])])
    assert result['exit_status'] == {'gen': 0, 'gzip': 0} and result['write_error'] is None
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert subprocess.run(['gzip', '-dc'], input=data, capture_output=True, check=True).stdout.startswith(b'1\n2\n')


def test_pipeline_reports_a_failed_first_stage_even_if_the_compressor_succeeds(tmp_path):
    result, _digest, _data = run_pipe(tmp_path, [('pg_dump', ['sh', '-c', 'echo partial; echo boom >&2; exit 3']),
                                                 ('gzip', ['gzip', '-c'])])
    assert result['exit_status'] == {'pg_dump': 3, 'gzip': 0}
    assert 'boom' in result['stderr']['pg_dump']


def test_pipeline_reports_a_failed_compressor(tmp_path):
    result, _digest, _data = run_pipe(tmp_path, [('pg_dump', ['sh', '-c', 'seq 1 100000']),
                                                 ('zstd', ['sh', '-c', 'head -c 10 >/dev/null; echo broken >&2; exit 1'])])
    assert result['exit_status']['zstd'] == 1
    assert result['exit_status']['pg_dump'] != 0  # SIGPIPE or EPIPE: it could not finish either


def test_main_bad_config_exits_2(tmp_path, capsys):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'name': 'bad name', 'dest': 'rel'}))
    assert cli.dump_main(['--config', str(path), '--json']) == run.EXIT_BAD_CONFIG
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary['status'] == 'failed' and summary['exit_code'] == 2
    assert any('dest must be' in e for e in summary['errors'])
    assert 'bad config' in err
    assert os.listdir(str(tmp_path)) == ['c.json']


def test_exit_codes():
    assert (run.EXIT_OK, run.EXIT_FAILED, run.EXIT_BAD_CONFIG, run.EXIT_SKIPPED) == (0, 1, 2, 75)

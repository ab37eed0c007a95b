# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-side programs: one file each, built from the ``_runner`` package's own sources (``_runner.program``)."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import manifest, program, run
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.fsutil import write_atomic

PACKAGE_DIR = os.path.dirname(os.path.abspath(program.__file__))
SOURCES = sorted(name for name in os.listdir(PACKAGE_DIR) if name.endswith('.py') and name != '__init__.py')
DEBIAN_PY = '/usr/bin/python3'
PYTHONS = [sys.executable] + ([DEBIAN_PY] if os.path.exists(DEBIAN_PY) else [])


def install(tmp_path, interpreter=sys.executable, name='dbfleet-pg-dump'):
    path = str(tmp_path / name)
    write_atomic(path, program.build_program(name, interpreter), 0o755)
    return path


# --------------------------------------------------------------------------
# the sources
# --------------------------------------------------------------------------

def test_package_init_is_empty():
    """ansible-test's empty-init sanity test: the package's __init__.py holds nothing."""
    with open(os.path.join(PACKAGE_DIR, '__init__.py'), 'rb') as handle:
        assert handle.read() == b''


@pytest.mark.parametrize('name', SOURCES)
def test_sources_are_module_utils_for_python38_with_relative_imports_only(name):
    with open(os.path.join(PACKAGE_DIR, name), encoding='utf-8') as handle:
        source = handle.read()
    lines = source.splitlines()
    assert not source.startswith('#!'), 'the builder adds the shebang; sanity forbids one in module_utils'
    assert '# Copyright: (c) 2026, dbfleet maintainers' in lines[1]
    assert 'from __future__ import absolute_import, division, print_function' in source and '__metaclass__ = type' in source
    assert len(lines) <= 500, '%s has %d lines: split it by concern' % (name, len(lines))
    tree = ast.parse(source, feature_version=(3, 8))  # ansible-test compiles module_utils for 3.8 and later
    assert ast.get_docstring(tree), '%s needs a module docstring' % name
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            assert not node.module.startswith(('ansible', 'dbfleet')), '%s: only relative imports inside the package' % name
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith(('ansible', 'dbfleet')) for alias in node.names), name
            # only the standard library at import time; boto3 inside the function that uploads
            assert node in tree.body or not any(alias.name.startswith('boto') for alias in node.names) or name == 's3.py'
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith(('boto3', 'botocore')) for alias in node.names), '%s: boto3 at import time' % name


def test_the_builder_packs_every_module_and_imports_each_statically():
    """AnsiballZ bundles what module_utils import with static imports: the builder names every module it packs."""
    packed = sorted(module.__name__.rsplit('.', 1)[-1] + '.py' for module in program._MODULES)
    assert packed == [name for name in SOURCES if name != 'program.py']
    with open(os.path.join(PACKAGE_DIR, 'program.py'), encoding='utf-8') as handle:
        tree = ast.parse(handle.read())
    imported = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None:
            imported.update(alias.name for alias in node.names)
    assert sorted(name + '.py' for name in imported) == packed


# --------------------------------------------------------------------------
# the built file
# --------------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(program.PROGRAMS))
def test_two_builds_are_byte_identical(name):
    first = program.build_program(name, '/usr/bin/python3')
    assert program.build_program(name, '/usr/bin/python3') == first
    assert first.startswith(b'#!/usr/bin/python3\n')
    assert program.build_program(name, '/opt/py/bin/python3') != first  # the shebang is part of it
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert 'sys.exit(cli.%s())' % program.PROGRAMS[name] in archive.read('__main__.py').decode()
    others = [program.build_program(other, '/usr/bin/python3') for other in program.PROGRAMS if other != name]
    assert first not in others


def test_the_zip_is_stored_with_fixed_dates_modes_and_order():
    data = program.build_program('dbfleet-pg-dump', '/usr/bin/python3')
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == [name for name, _data in program.program_files('dbfleet-pg-dump')]
        assert names[0] == 'dbfleet_host/__init__.py' and names[-1] == '__main__.py'
        assert sorted(names[1:-1]) == names[1:-1]
        for info in infos:
            assert info.compress_type == zipfile.ZIP_STORED and info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr == 0o100644 << 16
        assert archive.read('dbfleet_host/__init__.py') == b''
        with open(os.path.join(PACKAGE_DIR, 'naming.py'), 'rb') as handle:
            assert archive.read('dbfleet_host/naming.py') == handle.read()
        assert 'sys.exit(cli.dump_main())' in archive.read('__main__.py').decode()


def test_unknown_programs_and_unusable_interpreters_are_refused():
    with pytest.raises(ValueError, match='unknown host-side program'):
        program.build_program('dbfleet-nope', '/usr/bin/python3')
    for interpreter in ('python3', '/usr/bin/python3\n-c evil', '/usr/bin/py\x00'):
        with pytest.raises(ValueError, match='interpreter'):
            program.build_program('dbfleet-pg-dump', interpreter)


@pytest.mark.parametrize('python', PYTHONS)
@pytest.mark.parametrize('name', sorted(program.PROGRAMS))
def test_the_built_program_runs(tmp_path, python, name):
    path = install(tmp_path, python, name)
    for argv in ([python, path, '--version'], [path, '--version']):  # by the interpreter, as cron does, and by its shebang
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == '%s %s' % (name, manifest.RUNNER_VERSION)
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'name': 'bad name', 'dest': 'relative', 'archive_dir': 'relative'}))
    extra = ['--json'] if name == 'dbfleet-pg-dump' else ['pg_wal/000000010000000000000001', '000000010000000000000001']
    proc = subprocess.run([python, path, '--config', str(bad)] + extra, capture_output=True, text=True, check=False)
    assert proc.returncode == run.EXIT_BAD_CONFIG == 2
    assert 'bad config' in proc.stderr and ('dest must be' in proc.stderr or 'archive_dir must be' in proc.stderr)
    if name == 'dbfleet-pg-dump':
        assert json.loads(proc.stdout)['exit_code'] == 2
    assert sorted(os.listdir(str(tmp_path))) == ['bad.json', name]


def test_importing_the_package_has_no_side_effects_and_needs_no_boto3(tmp_path):
    """Importing every module of the built program prints nothing, writes nothing, and works without boto3."""
    path = install(tmp_path)
    os.mkdir(str(tmp_path / 'cwd'))
    code = (
        'import sys, builtins\n'
        'real_import = builtins.__import__\n'
        'def guard(name, *a, **k):\n'
        '    if name.split(".")[0] in ("boto3", "botocore"):\n'
        '        raise ImportError("boto3 must be imported lazily")\n'
        '    return real_import(name, *a, **k)\n'
        'builtins.__import__ = guard\n'
        'sys.path.insert(0, %r)\n'
        'import dbfleet_host.cli, dbfleet_host.s3, dbfleet_host.manifest\n'
        'print(dbfleet_host.manifest.RUNNER_VERSION)\n' % path
    )
    proc = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path / 'cwd'), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == manifest.RUNNER_VERSION and proc.stderr == ''
    assert os.listdir(str(tmp_path / 'cwd')) == []


# --------------------------------------------------------------------------
# the dry run shows exactly the pipeline the real run executes
# --------------------------------------------------------------------------

FAKE_PG_DUMP = r'''#!/bin/sh
case "$1" in --version) echo "pg_dump (PostgreSQL) 15.5"; exit 0;; esac
for arg in "$@"; do
  case "$arg" in --file=*) dir="${arg#--file=}";; esac
done
if [ -n "$dir" ]; then mkdir -p "$dir" && echo toc > "$dir/toc.dat" && echo data > "$dir/1234.dat"; else echo "PGDMP fake archive"; fi
'''
FAKE_PSQL = '#!/bin/sh\necho "t|16777216|1234|15.5 (fake)"\n'
FAKE_PG_DUMPALL = '#!/bin/sh\necho "-- fake globals"\n'


def fake_pg_bin(tmp_path):
    directory = tmp_path / 'pgbin'
    directory.mkdir()
    for name, text in (('pg_dump', FAKE_PG_DUMP), ('psql', FAKE_PSQL), ('pg_dumpall', FAKE_PG_DUMPALL)):
        (directory / name).write_text(text)
        os.chmod(str(directory / name), 0o755)
    return str(directory)


def _normalized(text):
    return re.sub(r'\.partial-\d+', '.partial-PID', re.sub(r'\d{8}T\d{6}Z', 'STAMP', text))


@pytest.mark.parametrize('fmt,compression,jobs', [('directory', 'none', 3), ('custom', 'gzip', 1), ('plain', 'gzip', 1)])
def test_dry_run_pipeline_is_the_real_runs(tmp_path, fmt, compression, jobs):
    cfg = {'name': 'same', 'dest': str(tmp_path / 'dest'), 'databases': ['app'], 'format': fmt, 'jobs': jobs,
           'compression': compression, 'globals': True, 'pg_bin': fake_pg_bin(tmp_path),
           'lock_file': str(tmp_path / 'state' / 'lock'), 'state_dir': str(tmp_path / 'state'), 'log_file': str(tmp_path / 'log')}
    config = tmp_path / 'same.json'
    config.write_text(json.dumps(cfg))
    path = install(tmp_path)
    dry = subprocess.run([sys.executable, path, '--config', str(config), '--dry-run', '--json'], capture_output=True, text=True,
                         check=False)
    assert dry.returncode == 0, dry.stderr
    real = subprocess.run([sys.executable, path, '--config', str(config), '--json', '--quiet'], capture_output=True, text=True,
                          check=False)
    assert real.returncode == 0, real.stderr
    would = dict((item['db'], _normalized(item['pipeline'])) for item in json.loads(dry.stdout)['would_dump'])
    ran = dict((item['db'], _normalized(item['pipeline'])) for item in json.loads(real.stdout)['artifacts'])
    assert would == ran and set(ran) == {'app', 'globals'}
    if fmt == 'directory':
        assert '--file=%s/.app-STAMP.dir.partial-PID' % cfg['dest'] in ran['app'] and '--jobs=3' in ran['app']

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dump runner's default against the seed's one-liner and against bare pg_dump, in one run.

On the fleet lab's primary, with a database of at least 1 GB (pgbench tables), three dumps of the
same database are timed back to back:

* seed:   ``pg_dump -Fc DB | gzip > out.dump.gz`` (the recipe users try first; compresses twice)
* runner: the dump runner with its defaults (custom format, compressed once with zstd, SHA-256
          while streaming, manifest, atomic rename)
* bare:   pg_dump with exactly the runner's settings (``pg_dump -Fc -Z0 DB | zstd -q -T0 -2 -c > out``
          on PostgreSQL 15), without anything the runner adds

Reported: seconds, output size and throughput of each, and the ratios seed/runner (target >= 2)
and runner/bare (target <= 1.05). Usage (as root, from the repository root):

    .venv/bin/python benchmarks/bench_dump_runner.py [--scale 70] [--rounds 1]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'build', 'collections'))

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _dump_runner  # noqa: E402
from tests.lab.pytest_fleetlab import FleetLab, fleetlab  # noqa: E402

HOST = 'db-primary'
DB = 'bench'
OUT = '/srv/bench-out'
RUNNER = '/opt/dbfleet/bench/dbfleet-pg-dump'
CONFIG = '/opt/dbfleet/bench/bench.json'


def ensure_database(lab, scale, min_bytes):
    size = lab.psql(HOST, "SELECT coalesce((SELECT pg_database_size('%s')), 0)" % DB)
    if int(size or 0) >= min_bytes:
        return int(size)
    print('creating database %s with pgbench -i -s %d (about %d MB)...' % (DB, scale, scale * 15), flush=True)
    lab.psql(HOST, 'DROP DATABASE IF EXISTS %s' % DB)
    lab.psql(HOST, 'CREATE DATABASE %s' % DB)
    lab.exec(HOST, '%s/pgbench' % fleetlab.PG_BIN, '-i', '-q', '-s', str(scale), '--unlogged-tables', DB,
             user='postgres', timeout=1800)
    lab.psql(HOST, 'CHECKPOINT')
    return int(lab.psql(HOST, "SELECT pg_database_size('%s')" % DB))


def install_runner(lab):
    source = '#!/usr/bin/python3\n' + inspect.getsource(_dump_runner)
    config = _dump_runner.build_config(
        'bench', OUT, databases=[DB], globals=False, keep_min=1, retention_days=1,
        lock_file='/opt/dbfleet/bench/lock', state_dir='/opt/dbfleet/bench/state', log_file='/opt/dbfleet/bench/log')
    errors = _dump_runner.validate_config(config)
    if errors:
        raise SystemExit('bad benchmark config: %s' % errors)
    lab.exec(HOST, 'sh', '-c', 'mkdir -p /opt/dbfleet/bench %s && chown postgres: /opt/dbfleet/bench %s' % (OUT, OUT))
    lab.exec(HOST, 'sh', '-c', 'cat > %s && chmod 755 %s' % (RUNNER, RUNNER), input=source)
    lab.exec(HOST, 'sh', '-c', 'cat > %s && chown postgres: %s' % (CONFIG, CONFIG), input=json.dumps(config))
    return config


def timed(lab, label, command):
    lab.exec(HOST, 'sh', '-c', 'rm -rf %s/* %s/.[!.]*' % (OUT, OUT), check=False)
    start = time.monotonic()
    lab.exec(HOST, 'bash', '-o', 'pipefail', '-c', command, user='postgres', timeout=3600)
    seconds = time.monotonic() - start
    size = int(lab.exec(HOST, 'sh', '-c', "find %s -type f ! -name '*.json' -printf '%%s\\n' | awk '{s+=$1} END {print s+0}'"
                        % OUT).stdout)
    print('  %-7s %7.2f s  %8.1f MiB' % (label, seconds, size / 2 ** 20), flush=True)
    return dict(seconds=seconds, output_bytes=size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--scale', type=int, default=70, help='pgbench scale of the benchmark database (70 is about 1 GB)')
    parser.add_argument('--min-bytes', type=int, default=10 ** 9, help='smallest database size accepted')
    parser.add_argument('--rounds', type=int, default=1, help='repeat each measurement and keep the fastest')
    args = parser.parse_args()

    lab = FleetLab()
    db_bytes = ensure_database(lab, args.scale, args.min_bytes)
    config = install_runner(lab)
    plan = _dump_runner.compression_plan(config['format'], config['compression'], config['compression_level'], 15)
    pg = fleetlab.PG_BIN
    bare = '%s/pg_dump -Fc %s %s' % (pg, ' '.join(plan['pg_dump_args']), DB)
    if plan['external']:
        bare += ' | ' + ' '.join(plan['external'])
    commands = {
        'seed': '%s/pg_dump -Fc %s | gzip > %s/%s.dump.gz' % (pg, DB, OUT, DB),
        'runner': '/usr/bin/python3 %s --config %s --quiet' % (RUNNER, CONFIG),
        'bare': '%s > %s/%s%s' % (bare, OUT, DB, plan['extension']),
    }
    print('database %s: %.2f GiB; runner compression plan: %s' % (DB, db_bytes / 2 ** 30, plan), flush=True)
    results = {}
    for _round in range(args.rounds):
        for label, command in commands.items():
            measured = timed(lab, label, command)
            if label not in results or measured['seconds'] < results[label]['seconds']:
                results[label] = measured
    for measured in results.values():
        measured['mb_per_s'] = round(db_bytes / measured['seconds'] / 1e6, 1)
    report = dict(
        database_bytes=db_bytes, commands=commands, results=results,
        speedup_vs_seed=round(results['seed']['seconds'] / results['runner']['seconds'], 2),
        overhead_vs_bare=round(results['runner']['seconds'] / results['bare']['seconds'], 3),
    )
    os.makedirs(os.path.join(REPO, 'benchmarks', 'results'), exist_ok=True)
    with open(os.path.join(REPO, 'benchmarks', 'results', 'dump_runner.json'), 'w') as handle:
        json.dump(report, handle, indent=2)
    print('runner is %.2fx faster than the seed (target >= 2); runner/bare = %.3f (target <= 1.05)'
          % (report['speedup_vs_seed'], report['overhead_vs_bare']))
    lab.exec(HOST, 'sh', '-c', 'rm -rf %s /opt/dbfleet/bench' % OUT, check=False)
    return 0 if report['speedup_vs_seed'] >= 2 and report['overhead_vs_bare'] <= 1.05 else 1


if __name__ == '__main__':
    sys.exit(main())

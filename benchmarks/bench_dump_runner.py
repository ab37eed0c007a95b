# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dump runner's default against the seed's one-liner and against bare pg_dump, in one run.

On the fleet lab's primary, with a database of at least 1 GB (order-like rows), three dumps of the
same database are timed back to back:

* seed:   ``pg_dump -Fc DB | gzip > out.dump.gz`` (the recipe users try first; compresses twice)
* runner: the dump runner with its defaults (custom format, compressed once with zstd, SHA-256
          while streaming, manifest, atomic rename)
* bare:   pg_dump with exactly the runner's settings (``pg_dump -Fc -Z0 DB | zstd -q -T0 -2 -c > out``
          on PostgreSQL 15), without anything the runner adds

Reported: seconds, output size and throughput of each, and the ratios seed/runner (target >= 2)
and runner/bare (target <= 1.05; the bare baseline is measured with and without an fsync of its
output, since the runner fsyncs before it calls a dump good). Usage (as root, from the repository root):

    .venv/bin/python benchmarks/bench_dump_runner.py [--rows 5500000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'build', 'collections'))

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config as runner_config  # noqa: E402
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.compression import compression_plan  # noqa: E402
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.program import build_program  # noqa: E402
from tests.lab.pytest_fleetlab import FleetLab  # noqa: E402

HOST = 'db-primary'
DB = 'bench'
OUT = '/srv/bench-out'
RUNNER = '/opt/dbfleet/bench/dbfleet-pg-dump'
CONFIG = '/opt/dbfleet/bench/bench.json'


# Order-like rows: numbers, timestamps, a few enums, hex tokens and free text. Compresses about as
# well as typical application data (pgbench's blank-padded filler would flatter every compressor).
DATASET_SQL = """
CREATE UNLOGGED TABLE orders AS
SELECT g AS id,
       (random() * 100000)::int AS customer_id,
       now() - random() * interval '730 days' AS created_at,
       round((random() * 1000)::numeric, 2) AS amount,
       (ARRAY['new', 'paid', 'shipped', 'returned', 'cancelled'])[1 + (random() * 4)::int] AS status,
       md5(random()::text) AS token,
       'order ' || g || ' for customer ' || (random() * 100000)::int || ' via '
         || (ARRAY['web', 'app', 'phone', 'partner'])[1 + (random() * 3)::int] || ', ref ' || md5(g::text) AS note
FROM generate_series(1, %d) AS g;
ALTER TABLE orders ADD PRIMARY KEY (id);
"""


def running_lab():
    """A handle on the fleet lab when it runs (its primary answers), else None."""
    try:
        lab = FleetLab()
        lab.exec(HOST, 'true', timeout=30)
    except Exception:  # pylint: disable=broad-except  # a lab that is down fails in many ways, each means "not running"
        return None
    return lab


def ensure_database(lab, rows, min_bytes):
    size = lab.psql(HOST, "SELECT coalesce(sum(pg_database_size(datname)), 0) FROM pg_database WHERE datname = '%s'" % DB)
    if int(size or 0) >= min_bytes:
        return int(size)
    print('creating database %s with %d order rows...' % (DB, rows), flush=True)
    lab.psql(HOST, 'DROP DATABASE IF EXISTS %s' % DB)
    lab.psql(HOST, 'CREATE DATABASE %s' % DB)
    lab.psql(HOST, DATASET_SQL % rows, db=DB)
    lab.psql(HOST, 'CHECKPOINT')
    size = int(lab.psql(HOST, "SELECT pg_database_size('%s')" % DB))
    if size < min_bytes:
        raise SystemExit('database %s is only %d bytes; raise --rows' % (DB, size))
    return size


def install_runner(lab):
    """The runner as pg_dump_schedule installs it: the one file the builder makes for the host's /usr/bin/python3."""
    program = build_program('dbfleet-pg-dump', '/usr/bin/python3')
    config = runner_config.build_config(
        'bench', OUT, databases=[DB], globals=False, keep_min=1, retention_days=1, pg_bin=lab.pg_bin(HOST),
        lock_file='/opt/dbfleet/bench/lock', state_dir='/opt/dbfleet/bench/state', log_file='/opt/dbfleet/bench/log')
    errors = runner_config.validate_config(config)
    if errors:
        raise SystemExit('bad benchmark config: %s' % errors)
    lab.exec(HOST, 'sh', '-c', 'mkdir -p /opt/dbfleet/bench %s && chown postgres: /opt/dbfleet/bench %s' % (OUT, OUT))
    # a zip is not text: it travels base64-encoded through the host's stdin
    lab.exec(HOST, 'sh', '-c', 'base64 -d > %s && chmod 755 %s' % (RUNNER, RUNNER), input=base64.b64encode(program).decode('ascii'))
    lab.exec(HOST, 'sh', '-c', 'cat > %s && chown postgres: %s' % (CONFIG, CONFIG), input=json.dumps(config))
    return config


def timed(lab, label, command):
    lab.exec(HOST, 'sh', '-c', 'rm -rf %s/* %s/.[!.]*' % (OUT, OUT), check=False)
    start = time.monotonic()
    lab.exec(HOST, 'bash', '-o', 'pipefail', '-c', command, user='postgres', timeout=3600)
    seconds = time.monotonic() - start
    size = int(lab.exec(HOST, 'sh', '-c', "find %s -type f ! -name '*.json' -printf '%%s\\n' | awk '{s+=$1} END {print s+0}'"
                        % OUT).stdout)
    print('  %-10s %7.2f s  %8.1f MiB' % (label, seconds, size / 2 ** 20), flush=True)
    return dict(seconds=seconds, output_bytes=size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--rows', type=int, default=5500000, help='rows in the benchmark table (5.5 million is about 1.1 GB)')
    parser.add_argument('--min-bytes', type=int, default=10 ** 9, help='smallest database size accepted')
    parser.add_argument('--rounds', type=int, default=1, help='repeat each measurement and keep the fastest')
    parser.add_argument('--keep-database', action='store_true',
                        help='leave the benchmark database on the primary for the next run (else it is dropped: the '
                             'lab\'s nightly schedule dumps every database)')
    args = parser.parse_args()

    lab = running_lab()
    if lab is None:
        print('the fleet lab is not running: start it with `make lab-up`')
        return 2
    db_bytes = ensure_database(lab, args.rows, args.min_bytes)
    config = install_runner(lab)
    plan = compression_plan(config['format'], config['compression'], config['compression_level'], 15)
    pg = lab.pg_bin(HOST)
    bare = '%s/pg_dump -Fc %s %s' % (pg, ' '.join(plan['pg_dump_args']), DB)
    if plan['external']:
        bare += ' | ' + ' '.join(plan['external'])
    commands = {
        'seed': '%s/pg_dump -Fc %s | gzip > %s/%s.dump.gz' % (pg, DB, OUT, DB),
        'runner': '/usr/bin/python3 %s --config %s --quiet' % (RUNNER, CONFIG),
        'bare': '%s > %s/%s%s' % (bare, OUT, DB, plan['extension']),
        # The runner fsyncs what it wrote before it calls a dump good; so does this baseline.
        'bare+fsync': '{0} > {1}/{2}{3} && sync {1}/{2}{3}'.format(bare, OUT, DB, plan['extension']),
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
        overhead_vs_bare_fsync=round(results['runner']['seconds'] / results['bare+fsync']['seconds'], 3),
    )
    os.makedirs(os.path.join(REPO, 'benchmarks', 'results'), exist_ok=True)
    with open(os.path.join(REPO, 'benchmarks', 'results', 'dump_runner.json'), 'w') as handle:
        json.dump(report, handle, indent=2)
    print('runner is %.2fx faster than the seed (target >= 2); runner/bare+fsync = %.3f (target <= 1.05); '
          'runner/bare without fsync = %.3f' % (report['speedup_vs_seed'], report['overhead_vs_bare_fsync'], report['overhead_vs_bare']))
    lab.exec(HOST, 'sh', '-c', 'rm -rf %s /opt/dbfleet/bench' % OUT, check=False)
    if not args.keep_database:
        lab.psql(HOST, 'DROP DATABASE IF EXISTS %s' % DB)
    return 0 if report['speedup_vs_seed'] >= 2 and report['overhead_vs_bare_fsync'] <= 1.05 else 1


if __name__ == '__main__':
    sys.exit(main())

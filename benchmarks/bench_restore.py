# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore paths against the same work done by hand, in one run, on a database of at least 1 GB.

On the fleet lab's primary, with a database of order-like rows (logged, so it is in WAL and in base backups):

* logical, drill: ``dump_restore`` of the runner's dump (``pg_dump -Fc -Z0 | zstd``) into a throwaway instance --
  SHA-256 against the manifest while zstd decompresses it to a file, initdb, start, ``pg_restore -j2``;
* logical, bare: a native custom dump (``pg_dump -Fc``) restored with ``pg_restore -j2`` into a fresh cluster
  (initdb, start, createdb), with the same throwaway settings (fsync off, socket only);
* PITR, drill: ``pitr_restore`` of a base backup taken with the runner plus the WAL of an update of a tenth of the
  rows made after it -- unpack hashing every byte, pg_verifybackup, start with dbfleet-wal-restore, wait for the end
  of the archive and the promotion;
* PITR, by hand: the same steps as a shell script -- ``zstd -d | tar -x``, ``tar -x`` of pg_wal.tar,
  pg_verifybackup, recovery.signal, ``restore_command = 'cp /srv/wal-archive/%f %p'``, ``pg_ctl start -w``, a poll
  until promoted.

Reported: seconds of each (the drills' own measured RTO, verification excluded), the ratios drill/bare (target
<= 1.1), and the drills' verification (checksums of every table, amcheck) apart. Usage (as root, from the
repository root):

    .venv/bin/python benchmarks/bench_restore.py [--rows 5500000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the dump benchmark's module puts build/collections on sys.path too
from benchmarks.bench_dump_runner import DATASET_SQL, REPO, running_lab, timed  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config as runner_config  # noqa: E402
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.program import build_program  # noqa: E402
from tests.integration.ansible_cli import host_results, run_module  # noqa: E402

HOST = 'db-primary'
DB = 'bench_restore'
WORK = '/srv/bench-restore'
TOOLS = '/opt/dbfleet/bench-restore'
SETTINGS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c listen_addresses='' -c archive_mode=off"
BARE = """set -e
P={pg}; D={work}/bare; rm -rf $D/*
$P/initdb -D $D/data -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
$P/pg_ctl -D $D/data -l $D/log -w -o "-p 55990 -k $D {settings}" start >/dev/null
$P/createdb -h $D -p 55990 {db}
$P/pg_restore -h $D -p 55990 -d {db} -j2 {work}/native/native.dump
$P/pg_ctl -D $D/data -m immediate stop >/dev/null
rm -rf $D/*
"""
BY_HAND = """set -e
P={pg}; D={work}/hand; B={base}; rm -rf $D/*; mkdir $D/data; chmod 700 $D/data; echo 'local all all trust' > $D/hba
zstd -d -q -c $B/base.tar.zst | tar -x -C $D/data
tar -x -C $D/data/pg_wal -f $B/pg_wal.tar
$P/pg_verifybackup -m $B/backup_manifest $D/data >/dev/null
touch $D/data/recovery.signal
$P/pg_ctl -D $D/data -l $D/log -w -t 3600 -o "-p 55991 -k $D -c config_file=/dev/null {settings} -c hot_standby=on \
  -c restore_command='cp /srv/wal-archive/%f %p' -c max_wal_size=256MB -c hba_file=$D/hba -c ident_file=/dev/null" start >/dev/null || true
until [ "$($P/psql -X -At -h $D -p 55991 -U postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.3; done
$P/pg_ctl -D $D/data -m immediate stop >/dev/null
rm -rf $D/*
"""


def ensure_database(lab, rows, min_bytes):
    """A logged copy of the dump benchmark's order rows (the dump benchmark's own table is unlogged); its size."""
    found = lab.psql(HOST, "SELECT pg_database_size(datname) FROM pg_database WHERE datname = '%s'" % DB)
    if found and int(found) >= min_bytes:
        return int(found)
    print('creating database %s with %d order rows...' % (DB, rows), flush=True)
    for sql, db in (('DROP DATABASE IF EXISTS %s' % DB, 'postgres'), ('CREATE DATABASE %s' % DB, 'postgres'),
                    ((DATASET_SQL % rows).replace('CREATE UNLOGGED TABLE', 'CREATE TABLE'), DB), ('CHECKPOINT', DB)):
        lab.psql(HOST, sql, db=db)
    return int(lab.psql(HOST, "SELECT pg_database_size('%s')" % DB))


def runner_config_file(lab, name, kind, dest, connection):
    config = runner_config.build_config(name, dest, kind=kind, databases=[DB] if kind == 'dump' else None, globals=False,
                                        keep_min=1, retention_days=1, pg_bin=lab.pg_bin(HOST), connection=connection,
                                        lock_file='%s/%s.lock' % (TOOLS, name), state_dir='%s/%s-state' % (TOOLS, name),
                                        log_file='%s/%s.log' % (TOOLS, name))
    errors = runner_config.validate_config(config)
    if errors:
        raise SystemExit('bad benchmark config: %s' % errors)
    path = '%s/%s.json' % (TOOLS, name)
    lab.exec(HOST, 'sh', '-c', 'cat > %s && chown postgres: %s' % (path, path), input=json.dumps(config))
    return path


def prepare(lab):
    """The runner, its dump and base backup of DB, a native dump, and WAL written after the base backup."""
    # WORK stays root's (the modules make their throwaway instances only in directories root or their owner controls)
    lab.exec(HOST, 'sh', '-c', 'rm -rf {w} {t}; mkdir -p {w}/dumps {w}/base {w}/native {w}/bare {w}/hand {t} && chown -R '
                               'postgres: {w}/dumps {w}/base {w}/native {w}/bare {w}/hand {t}'.format(w=WORK, t=TOOLS))
    runner = '%s/dbfleet-pg-dump' % TOOLS
    # a zip is not text: it travels base64-encoded through the host's stdin
    lab.exec(HOST, 'sh', '-c', 'base64 -d > %s && chmod 755 %s' % (runner, runner),
             input=base64.b64encode(build_program('dbfleet-pg-dump', '/usr/bin/python3')).decode('ascii'))
    passfile = '%s/pgpass' % TOOLS
    lab.exec(HOST, 'sh', '-c', 'cat > %s && chown postgres: %s && chmod 600 %s' % (passfile, passfile, passfile),
             input='%s:5432:*:replicator:%s\n' % (lab.host_addr(HOST), lab.vars['dbfleet_lab_replication_password']))
    dump_cfg = runner_config_file(lab, 'bench-dump', 'dump', WORK + '/dumps', None)
    base_cfg = runner_config_file(lab, 'bench-base', 'basebackup', WORK + '/base',
                                  dict(host=lab.host_addr(HOST), port=5432, user='replicator', passfile=passfile))
    pg = lab.pg_bin(HOST)
    for label, command in (('runner dump', '/usr/bin/python3 %s --config %s --quiet' % (runner, dump_cfg)),
                           ('native dump', '%s/pg_dump -Fc -f %s/native/native.dump %s' % (pg, WORK, DB)),
                           ('base backup', '/usr/bin/python3 %s --config %s --quiet' % (runner, base_cfg))):
        print('  preparing: %s' % label, flush=True)
        lab.exec(HOST, 'bash', '-o', 'pipefail', '-c', command, user='postgres', timeout=3600)
    lab.psql(HOST, 'UPDATE orders SET amount = amount + 1 WHERE id % 10 = 0', db=DB)
    segment = lab.psql(HOST, 'SELECT pg_walfile_name(pg_switch_wal())')
    while lab.psql(HOST, "SELECT coalesce(last_archived_wal, '') >= '%s' FROM pg_stat_archiver" % segment) != 't':
        time.sleep(0.5)
    base = lab.exec(HOST, 'sh', '-c', 'ls -d %s/base/base-*.dir' % WORK).stdout.split()[-1]
    return base


def drill(lab, module, args):
    started = time.monotonic()
    result = host_results(run_module(lab, HOST, 'dbfleet.postgresql.%s' % module, args, timeout=7200))[HOST]
    wall = time.monotonic() - started
    if result.get('failed'):
        raise SystemExit('%s failed: %s' % (module, result.get('msg')))
    verification = result.get('verification') or {}
    print('  %-14s %7.2f s RTO (module %6.1f s wall; verification %.1f s: %s) %s' % (
        module, result['rto_seconds'], wall, verification.get('seconds', 0), verification.get('verdict'),
        json.dumps(result.get('timings') or {}, sort_keys=True)), flush=True)
    return dict(seconds=result['rto_seconds'], wall_seconds=round(wall, 2), verification_seconds=verification.get('seconds'),
                verification=verification.get('verdict'), timings=result.get('timings'))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--rows', type=int, default=5500000, help='rows in the benchmark table (5.5 million is about 1.1 GB)')
    parser.add_argument('--min-bytes', type=int, default=10 ** 9, help='smallest database size accepted')
    parser.add_argument('--keep-database', action='store_true',
                        help='keep %s afterwards (by default it is dropped: it would be in every base backup of the lab)' % DB)
    args = parser.parse_args()

    lab = running_lab()
    db_bytes = ensure_database(lab, args.rows, args.min_bytes) if lab is not None else None
    if db_bytes is None:
        print('the fleet lab is not running: start it with `make lab-up`')
        return 2
    print('database %s: %.2f GiB' % (DB, db_bytes / 2 ** 30), flush=True)
    try:
        report = measure(lab, db_bytes)
    finally:  # the lab's disk is shared: nothing of this stays
        lab.exec(HOST, 'sh', '-c', 'rm -rf %s %s' % (WORK, TOOLS), check=False)
        if not args.keep_database:
            lab.psql(HOST, 'DROP DATABASE IF EXISTS %s' % DB)
    return 0 if report['logical_ratio'] <= 1.1 and report['pitr_ratio'] <= 1.1 else 1


def measure(lab, db_bytes):
    """Both paths, drill and baseline, one after the other (each cleans up before the next); the report."""
    base = prepare(lab)
    pg = lab.pg_bin(HOST)
    verify = {'databases': [DB], 'amcheck': True}
    results = {
        'logical_drill': drill(lab, 'dump_restore', {'database': DB, 'dump_dir': WORK + '/dumps', 'jobs': 2,
                                                     'restore_root': WORK + '/restore', 'verify': verify}),
        'logical_bare': timed(lab, 'bare', BARE.format(pg=pg, work=WORK, db=DB, settings=SETTINGS)),
    }
    lab.exec(HOST, 'rm', '-rf', WORK + '/native', WORK + '/dumps')
    results['pitr_drill'] = drill(lab, 'pitr_restore', {'basebackup_dir': WORK + '/base', 'restore_root': WORK + '/restore',
                                                        'verify': verify})
    results['pitr_by_hand'] = timed(lab, 'by hand', BY_HAND.format(pg=pg, work=WORK, base=base, settings=SETTINGS))
    report = dict(database_bytes=db_bytes, results=results,
                  logical_ratio=round(results['logical_drill']['seconds'] / results['logical_bare']['seconds'], 3),
                  pitr_ratio=round(results['pitr_drill']['seconds'] / results['pitr_by_hand']['seconds'], 3))
    results_dir = os.path.join(REPO, 'benchmarks', 'results')
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, 'restore.json'), 'w') as handle:
        handle.write(json.dumps(report, indent=2) + '\n')
    print('logical drill/bare = %.3f, PITR drill/by hand = %.3f (target <= 1.1 both); verification apart: logical %.1f s, '
          'PITR %.1f s' % (report['logical_ratio'], report['pitr_ratio'], results['logical_drill']['verification_seconds'] or 0,
                           results['pitr_drill']['verification_seconds'] or 0))
    return report


if __name__ == '__main__':
    sys.exit(main())

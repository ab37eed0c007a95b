# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""send_file against scp and rsync, and relay against direct, in one run: same 1 GiB file, same two hosts.

On the fleet lab, db-primary's ``/srv/sendfile-big/big-20260101T000000Z.dump`` (1 GiB of random bytes, the file the
tests use, made for the run and removed afterwards) goes to backup-box, each way once, to a file that is not there yet:

* scp:    ``scp FILE root@backup-box:DEST`` run on db-primary (OpenSSH's defaults; no hash, no fsync)
* rsync:  ``rsync -e ssh FILE root@backup-box:DEST`` run on db-primary (whole file; its own checksums)
* direct: ``send_file method=direct`` (one-time TLS port, SHA-256 on both ends, fsync, rename)
* relay:  ``send_file method=relay`` (through the controller)

send_file's time is the one it reports (``seconds``: both programs started, the copy verified on both hosts and
published); the whole Ansible task, with its module checks on both hosts, is reported beside it. scp and rsync use
a copy of the lab's SSH key on db-primary (removed afterwards), as an operator would. Reported: seconds and MiB/s of
each, and the ratios direct/scp (target >= 1.5), direct/rsync and relay/direct (target >= 0.5), with the load average
of the machine at the start and the end (other work on the machine makes every number noisier). Usage (as root,
from the repository root):

    .venv/bin/python benchmarks/bench_send_file.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'build', 'collections'))

from tests.integration.ansible_cli import BIN, _env, _parse, host_results  # noqa: E402
from tests.integration.sendfile_helpers import BIG, BIG_DIR, BIG_SIZE, DEST, SOURCE, make_random, sha256_on  # noqa: E402
from tests.lab.pytest_fleetlab import FleetLab  # noqa: E402

OUT = '/srv/sendfile-bench'
MIB = 1 << 20


def running_lab():
    """A handle on the fleet lab when it runs (both hosts answer), else None."""
    try:
        lab = FleetLab()
        lab.exec(SOURCE, 'true', timeout=30)
        lab.exec(DEST, 'true', timeout=30)
    except Exception:  # pylint: disable=broad-except  # a lab that is down fails in many ways, each means "not running"
        return None
    return lab


def fresh(lab):
    lab.exec(DEST, 'sh', '-c', 'rm -rf %s && mkdir -p %s' % (OUT, OUT))


def timed_shell(lab, label, command):
    fresh(lab)
    start = time.monotonic()
    lab.exec(SOURCE, 'sh', '-c', command, timeout=1800)
    seconds = time.monotonic() - start
    print('  %-7s %7.2f s  %7.1f MiB/s' % (label, seconds, BIG_SIZE / MIB / seconds), flush=True)
    return dict(seconds=round(seconds, 3), command=command)


def timed_send_file(lab, method, digest):
    fresh(lab)
    args = dict(path=BIG, to=DEST, dest='%s/%s.dump' % (OUT, method), method=method)
    argv = [os.path.join(BIN, 'ansible'), SOURCE, '-i', str(lab.inventory), '-m', 'dbfleet.postgresql.send_file', '-a',
            json.dumps(args)]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=_env(REPO), capture_output=True, text=True, timeout=1800, check=False)
    task = time.monotonic() - start
    result = host_results(_parse(proc)).get(SOURCE) or {}
    if result.get('failed') or result.get('sha256') != digest or result.get('method') != method:
        raise SystemExit('send_file %s failed: %s' % (method, result.get('msg') or proc.stdout[-2000:] + proc.stderr[-2000:]))
    print('  %-7s %7.2f s  %7.1f MiB/s  (whole task %.2f s; SHA-256 verified on both hosts)'
          % (method, result['seconds'], BIG_SIZE / MIB / result['seconds'], task), flush=True)
    return dict(seconds=result['seconds'], task_seconds=round(task, 3), throughput=result['throughput'])


def main():
    lab = running_lab()
    if lab is None:
        print('the fleet lab is not running: start it with `make lab-up`')
        return 2
    digest = make_random(lab, SOURCE, BIG, BIG_SIZE)
    keydir = tempfile.mkdtemp(prefix='dbfleet-bench-', dir='/tmp')     # /tmp is shared with the lab's hosts
    key = os.path.join(keydir, 'id_ed25519')
    shutil.copyfile(str(lab.ssh_key), key)
    os.chmod(key, 0o600)
    ssh = 'ssh -i %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes' % key
    target = 'root@%s' % lab.host_addr(DEST)
    load_before = os.getloadavg()
    print('1 GiB from %s to %s, one run each (load average %.2f %.2f %.2f on %d CPUs)'
          % (SOURCE, DEST, load_before[0], load_before[1], load_before[2], os.cpu_count()), flush=True)
    try:
        results = dict(
            scp=timed_shell(lab, 'scp', '%s %s %s:%s/scp.dump' % (ssh.replace('ssh ', 'scp ', 1), BIG, target, OUT)),
            rsync=timed_shell(lab, 'rsync', 'rsync -e "%s" %s %s:%s/rsync.dump' % (ssh, BIG, target, OUT)),
            direct=timed_send_file(lab, 'direct', digest),
            relay=timed_send_file(lab, 'relay', digest),
        )
        arrived = sha256_on(lab, DEST, '%s/relay.dump' % OUT)
    finally:
        shutil.rmtree(keydir, ignore_errors=True)
        lab.exec(DEST, 'rm', '-rf', OUT, check=False)
        lab.exec(SOURCE, 'rm', '-rf', BIG_DIR, check=False)
    load_after = os.getloadavg()
    for measured in results.values():
        measured['mib_per_s'] = round(BIG_SIZE / MIB / measured['seconds'], 1)
    report = dict(
        bytes=BIG_SIZE, load_average_before=load_before, load_average_after=load_after, cpus=os.cpu_count(), results=results,
        direct_vs_scp=round(results['scp']['seconds'] / results['direct']['seconds'], 2),
        direct_vs_rsync=round(results['rsync']['seconds'] / results['direct']['seconds'], 2),
        relay_vs_direct=round(results['direct']['seconds'] / results['relay']['seconds'], 2),
        relay_arrived_intact=arrived == digest,
    )
    os.makedirs(os.path.join(REPO, 'benchmarks', 'results'), exist_ok=True)
    with open(os.path.join(REPO, 'benchmarks', 'results', 'send_file.json'), 'w') as handle:
        json.dump(report, handle, indent=2)
    print('direct is %.2fx scp (target >= 1.5) and %.2fx rsync; relay is %.2fx direct (target >= 0.5); load average '
          'at the end %.2f' % (report['direct_vs_scp'], report['direct_vs_rsync'], report['relay_vs_direct'], load_after[0]))
    return 0 if report['direct_vs_scp'] >= 1.5 and report['relay_vs_direct'] >= 0.5 else 1


if __name__ == '__main__':
    sys.exit(main())

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""verify_backups.yml against the seeds' way of checking backups, over a 40-host fleet, in one run.

The fleet is the lab's db hosts under 40 names (aliases: db-v00 ... db-v39, each pointing at db-primary,
db-replica-1 or db-replica-2 in turn), in an inventory generated into a temporary directory. Timed back to back,
with the same ansible.cfg (forks, pipelining) and the same inventory:

* seed:    the recipe "Verify freshness" done the usual way - per host a ``shell: find ...`` task listing the dumps
           (size, mtime), the newest of each database picked, a ``stat`` task with its SHA-256 for each of them, then
           the age and size judged
* verify:  playbooks/verify_backups.yml with the same checks (the backup check only: newest dump of every
           database, its age, size against the previous ones and the manifest, SHA-256 against the manifest;
           replication and archiving off, as the seed does neither) - backup_status in one round trip per host
* full:    playbooks/verify_backups.yml as shipped (also replication_lag everywhere and wal_archive_status on the
           primaries, archive validity and the S3 copies), for information

Reported: seconds of each and the ratio verify/seed (target <= 0.6); full/seed is printed too. Usage (as root, from
the repository root, the fleet lab up and backups made, e.g. by ``playbooks/nightly_backup.yml -e backup_run_now=true``):

    .venv/bin/python benchmarks/bench_verify.py [--hosts 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.bench_dump_runner import running_lab  # noqa: E402  # the same "is the lab up" as the other benchmark

BIN = os.path.dirname(sys.executable)
CONNECTION_VARS = ('ansible_user', 'ansible_ssh_private_key_file', 'ansible_ssh_common_args', 'ansible_python_interpreter')

SEED_PLAYBOOK = """---
- name: Verify freshness, the seeds' way
  hosts: db
  gather_facts: false
  tasks:
    - name: Find every dump with its size and modification time
      ansible.builtin.shell: >-
        find /srv/backups -maxdepth 1 -type f -name '*-*T*Z.*' ! -name '*.manifest.json' -printf '%f %T@ %s\\n' 2>/dev/null
        || true
      register: seed_find
      changed_when: false

    - name: Pick the newest dump of each database
      ansible.builtin.set_fact:
        seed_newest: >-
          {%- set newest = {} -%}
          {%- for line in seed_find.stdout_lines -%}
            {%- set name = line.split(' ')[0] -%}
            {%- set db = name | regex_replace('-[0-9]{8}T[0-9]{6}Z[.].*$', '') -%}
            {%- if db not in newest or name > newest[db] -%}{%- set _ = newest.update({db: name}) -%}{%- endif -%}
          {%- endfor -%}
          {{ newest.values() | list }}

    - name: Stat each database's newest dump with its SHA-256
      ansible.builtin.stat:
        path: "/srv/backups/{{ item }}"
        checksum_algorithm: sha256
      loop: "{{ seed_newest }}"
      register: seed_stat

    - name: Judge their age and size
      ansible.builtin.assert:
        that:
          - seed_stat.results | rejectattr('stat.exists') | list | length == 0
          - seed_stat.results | selectattr('stat.size', 'equalto', 0) | list | length == 0
          - seed_stat.results | map(attribute='stat.mtime') | select('lt', now(utc=true).timestamp() - 26 * 3600) | list | length == 0
        quiet: true
"""


def fleet_inventory(lab, count, directory):
    """``count`` aliases of the lab's db hosts (db-v00 ...), in groups db, primary and replica."""
    hostvars = dict((name, lab.host_vars(name)) for name in lab.db_hosts)
    real = [lab.primary] + list(lab.replicas)
    hosts, primary, replica = {}, {}, {}
    for index in range(count):
        target = real[index % len(real)]
        alias = 'db-v%02d' % index
        entry = dict((key, hostvars[target][key]) for key in CONNECTION_VARS if key in hostvars[target])
        entry.update(ansible_host=lab.host_addr(target), dbfleet_pg_host=lab.host_addr(target), dbfleet_replica_name=target)
        hosts[alias] = entry
        (primary if target == lab.primary else replica)[alias] = None
    inventory = {'all': {'vars': lab.vars, 'children': {'db': {'hosts': hosts}, 'primary': {'hosts': primary},
                                                        'replica': {'hosts': replica}}}}
    path = os.path.join(directory, 'hosts.yml')
    with open(path, 'w') as handle:
        json.dump(inventory, handle)
    return path


def timed(label, argv):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.monotonic() - start
    recap = proc.stdout[proc.stdout.rfind('PLAY RECAP'):]
    hosts = len([line for line in recap.splitlines()[1:] if ' : ok=' in line])
    print('  %-7s %7.2f s  (%d hosts, exit %d)' % (label, seconds, hosts, proc.returncode), flush=True)
    if hosts == 0:
        raise SystemExit('%s ran on no host:\n%s%s' % (label, proc.stdout[-3000:], proc.stderr[-3000:]))
    return dict(seconds=round(seconds, 3), hosts=hosts, rc=proc.returncode)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--hosts', type=int, default=40, help='aliases of the lab\'s db hosts in the fleet')
    args = parser.parse_args()
    lab = running_lab()
    if lab is None:
        print('the fleet lab is not running: start it with `make lab-up`')
        return 2
    with tempfile.TemporaryDirectory(prefix='dbfleet-bench-verify-') as tmp:
        inventory = fleet_inventory(lab, args.hosts, tmp)
        seed = os.path.join(tmp, 'seed.yml')
        with open(seed, 'w') as handle:
            handle.write(SEED_PLAYBOOK)
        playbook = os.path.join(REPO, 'playbooks', 'verify_backups.yml')
        # The real standbys' names (the aliases stream under them), and the schedules nightly_backup.yml installs.
        common = {'verify_expected_replicas': list(lab.replicas), 'verify_schedules': ['nightly', 'basebackup']}
        same = dict(common, verify_replication=False, verify_wal_archive=False, verify_validate=False,
                    verify_offsite=False, verify_require_schedule_on_primary=False)
        base = [os.path.join(BIN, 'ansible-playbook'), '-i', inventory]
        print('%d hosts (aliases of %s)' % (args.hosts, ', '.join(lab.db_hosts)), flush=True)
        results = {
            'seed': timed('seed', base + [seed]),
            'verify': timed('verify', base + [playbook, '-e', json.dumps(same)]),
            'full': timed('full', base + [playbook, '-e', json.dumps(common)]),
        }
    report = dict(hosts=args.hosts, results=results,
                  verify_vs_seed=round(results['verify']['seconds'] / results['seed']['seconds'], 3),
                  full_vs_seed=round(results['full']['seconds'] / results['seed']['seconds'], 3))
    os.makedirs(os.path.join(REPO, 'benchmarks', 'results'), exist_ok=True)
    with open(os.path.join(REPO, 'benchmarks', 'results', 'verify.json'), 'w') as handle:
        json.dump(report, handle, indent=2)
    print('verify_backups.yml takes %.2fx the time of the seeds\' find+stat way for the same checks (target <= 0.6); '
          'with replication, archiving, archive validity and S3 as well: %.2fx'
          % (report['verify_vs_seed'], report['full_vs_seed']))
    return 0 if report['verify_vs_seed'] <= 0.6 else 1


if __name__ == '__main__':
    sys.exit(main())

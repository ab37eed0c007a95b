# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the verify tests share: fresh backups on the lab (once per test process), runs of the verify playbooks
with the fleet report enabled, per-host verdicts, and a newest dump that is changed and always put back."""

from __future__ import annotations

import contextlib
import os
import subprocess

import json

from tests.integration.ansible_cli import BIN, Run, _env, _parse

PRIMARY, R1, R2 = 'db-primary', 'db-replica-1', 'db-replica-2'
REPLICAS = [R1, R2]
DB_HOSTS = [PRIMARY, R1, R2]
VERIFY = 'playbooks/verify_backups.yml'
HEALTH = 'playbooks/replication_health.yml'
CALLBACK = 'dbfleet.postgresql.fleet_report'
DEST = '/srv/backups'
KEEP = '/srv/verify-test-keep'

# Other tests on the shared lab install schedules and create databases of their own for a while: judge the schedules
# nightly_backup.yml installs and the lab's own databases.
LAB_VARS = {'verify_schedules': ['nightly', 'basebackup'], 'verify_databases': ['app_prod', 'postgres', 'globals', 'base']}

_FRESH = {}


def fresh_backups(lab):
    """nightly_backup.yml -e backup_run_now=true once per test process, and at least two good app_prod dumps."""
    if _FRESH.get('done'):
        return _FRESH['run']
    argv = [os.path.join(BIN, 'ansible-playbook'), '-i', str(lab.inventory),
            os.path.join(lab.repo, 'playbooks/nightly_backup.yml'), '-e', 'backup_run_now=true']
    for _attempt in range(2):  # once more when another test's database vanished in the middle of the run
        run = _parse(subprocess.run(argv, cwd=lab.repo, env=_env(lab.repo), capture_output=True, text=True, timeout=600,
                                    check=False))
        if run.rc == 0:
            break
    assert run.rc == 0, 'nightly_backup.yml failed: %s%s' % (failures(run), run.stderr[-2000:])
    if len(dumps(lab)) < 2:  # a size change needs a previous good dump: run the installed job once more, as cron would
        lab.exec(PRIMARY, 'runuser', '-u', 'postgres', '--', '/usr/bin/python3', '/opt/dbfleet/bin/dbfleet-pg-dump',
                 '--config', '/etc/dbfleet/pg_dump/nightly.json', '--quiet')
    _FRESH.update(done=True, run=run)
    return run


def failures(run):
    """Every failed task's message, per host (what a failed run said, without the rest of its output)."""
    return ['%s / %s: %s' % (task['task']['name'], host, str(result.get('msg'))[:600])
            for task in run.tasks for host, result in task['hosts'].items() if result.get('failed')]


def dumps(lab, db='app_prod'):
    """The db's dump files on the primary, oldest first (the stamp in the name sorts them)."""
    out = lab.exec(PRIMARY, 'sh', '-c', 'ls %s/%s-*.dump.zst 2>/dev/null || true' % (DEST, db)).stdout.split()
    return sorted(out)


def run_verify(lab, *args, playbook=VERIFY, extra_vars=None, inventory=None, report_dir=None, json_output=True,
               timeout=600):
    """ansible-playbook with the fleet report on; a Run (json stdout) or the CompletedProcess (default stdout)."""
    argv = [os.path.join(BIN, 'ansible-playbook'), os.path.join(lab.repo, playbook)]
    for source in (inventory if isinstance(inventory, list) else [inventory or str(lab.inventory)]):
        argv += ['-i', source]
    argv += list(args) + ['-e', json.dumps(dict(LAB_VARS, **(extra_vars or {})))]
    env = _env(lab.repo)
    env['ANSIBLE_CALLBACKS_ENABLED'] = CALLBACK
    env['DBFLEET_REPORT_DIR'] = str(report_dir) if report_dir else os.path.join(lab.repo, 'tests', 'output', 'fleet-report')
    if not json_output:
        env['ANSIBLE_STDOUT_CALLBACK'] = 'ansible.builtin.default'
    proc = subprocess.run(argv, cwd=lab.repo, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return _parse_with_report(proc) if json_output else proc


def _parse_with_report(proc):
    """The json stdout callback's document, then the fleet report's table after it (kept as ``run.report``)."""
    start = proc.stdout.find('{')
    if start < 0:
        run = Run(proc.returncode, proc.stdout, proc.stderr)
        run.report = ''
        return run
    data, end = json.JSONDecoder().raw_decode(proc.stdout[start:])
    run = Run(proc.returncode, proc.stdout, proc.stderr, stats=data.get('stats', {}))
    for play in data.get('plays', []):
        run.tasks.extend(play.get('tasks', []))
    run.report = proc.stdout[start + end:]
    return run


def verdicts(run):
    """Per host, the verify role's verdict (check, role, healthy, violations)."""
    return dict((host, result['ansible_facts']['verify_verdict']['dbfleet_report'])
                for host, result in run.results('Judge this host').items())


def words(verdict):
    return ' | '.join(verdict['violations'])


@contextlib.contextmanager
def changed_newest_dump(lab, command):
    """Run ``command`` (a shell snippet; ``$f`` is the newest app_prod dump) on the primary, put the dump back after.

    The original is kept with ``cp -a`` (owner, mode, times) and copied back in ``finally``.
    """
    newest = dumps(lab)[-1]
    keep = '%s/%s' % (KEEP, os.path.basename(newest))
    lab.exec(PRIMARY, 'sh', '-c', 'mkdir -p %s && cp -a %s %s' % (KEEP, newest, keep))
    try:
        lab.exec(PRIMARY, 'sh', '-c', 'f=%s; %s' % (newest, command))
        yield newest
    finally:
        lab.exec(PRIMARY, 'sh', '-c', 'cp -a %s %s && rm -rf %s' % (keep, newest, KEEP))

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ansible and ansible-playbook against the fleet lab and read per-host results as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

BIN = os.path.dirname(sys.executable)


@dataclass
class Run:
    """One ansible run: exit code, per-host stats, and every task's per-host results in order."""
    rc: int
    stdout: str
    stderr: str
    stats: dict = field(default_factory=dict)
    tasks: list = field(default_factory=list)

    def results(self, task_name):
        """Per-host results of the task whose name contains ``task_name``."""
        for task in self.tasks:
            if task_name in task['task']['name']:
                return task['hosts']
        raise KeyError('no task named %r in: %s' % (task_name, [t['task']['name'] for t in self.tasks]))

    def failed_hosts(self):
        return sorted(h for h, s in self.stats.items() if s.get('failures') or s.get('unreachable'))

    def ok_hosts(self):
        return sorted(h for h, s in self.stats.items() if not (s.get('failures') or s.get('unreachable')))

    def changed(self, host):
        return self.stats[host]['changed']


def _env(repo):
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=os.path.join(repo, 'ansible.cfg'),
        ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
        ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_FORCE_COLOR='0',
        PATH=BIN + os.pathsep + env.get('PATH', ''),
    )
    return env


def _parse(proc):
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    start = proc.stdout.find('{')
    if start >= 0:
        data = json.loads(proc.stdout[start:])
        run.stats = data.get('stats', {})
        for play in data.get('plays', []):
            run.tasks.extend(play.get('tasks', []))
    return run


def run_playbook(lab, playbook, *args, extra_vars=None, timeout=600, inventory=None):
    argv = [os.path.join(BIN, 'ansible-playbook'), '-i', inventory or lab.inventory, os.path.join(lab.repo, playbook)] + list(args)
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    proc = subprocess.run(argv, cwd=lab.repo, env=_env(lab.repo), capture_output=True, text=True, timeout=timeout, check=False)
    return _parse(proc)


def run_module(lab, pattern, module, module_args, *args, extra_vars=None, timeout=300):
    """Ad-hoc module call; returns the Run (``run.tasks[0]['hosts']`` holds per-host results)."""
    argv = [os.path.join(BIN, 'ansible'), pattern, '-i', lab.inventory, '-m', module, '-a', json.dumps(module_args)] + list(args)
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    proc = subprocess.run(argv, cwd=lab.repo, env=_env(lab.repo), capture_output=True, text=True, timeout=timeout, check=False)
    run = _parse(proc)
    return run


def host_results(run):
    """Per-host results of an ad-hoc run."""
    return run.tasks[0]['hosts'] if run.tasks else {}

# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory is the authority for dbfleet_mode and dbfleet_deny_paths.

A project is written per test: an inventory whose group says ``plan`` and deny-lists a directory
on backup-box, and plays that try to loosen it from every other source Ansible has. Each case is
its own inventory alias of backup-box (so set_fact on one cannot leak into another); every alias
must still run in plan mode, still refuse the deny-listed path, and the role-facing lookup must
say ``plan`` too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.integration.ansible_cli import BIN, _env

HOST = 'backup-box'
DATA = '/srv/authority-test'
LOOSEN = {'dbfleet_mode': 'bypass', 'dbfleet_deny_paths': []}
CASES = ('play', 'vars_files', 'role_defaults', 'role_vars', 'role_params', 'block', 'task', 'set_fact',
         'set_fact_cacheable', 'include_vars', 'module_defaults', 'module_args', 'extra')

PROBE = '''
- name: Probe the mode
  dbfleet.postgresql.file_stat: {path: %(data)s/allowed/f}
  register: probe_mode
- name: Probe the deny-list
  dbfleet.postgresql.file_stat: {path: %(data)s/secret/f}
  register: probe_deny
  ignore_errors: true
- name: Probe the lookup
  ansible.builtin.set_fact:
    probe_lookup: "{{ lookup('dbfleet.postgresql.host_mode') }}"
- name: Verdict
  ansible.builtin.debug:
    msg: "VERDICT {{ {'host': inventory_hostname, 'mode': probe_mode.dbfleet_mode, 'denied': probe_deny is failed,
           'lookup': probe_lookup} | to_json }}"
''' % {'data': DATA}


def _play(host, **extra):
    play = {'hosts': host, 'gather_facts': False}
    play.update(extra)
    play.setdefault('tasks', [{'ansible.builtin.include_tasks': 'probe.yml'}])
    return play


def _playbook():
    return [
        _play('case_play', vars=LOOSEN),
        _play('case_vars_files', vars_files=['sneaky.yml']),
        _play('case_role_defaults', roles=['sneaky_defaults'], tasks=[]),
        _play('case_role_vars', roles=['sneaky_vars'], tasks=[]),
        _play('case_role_params', roles=[dict(role='sneaky_defaults', **LOOSEN)], tasks=[]),
        _play('case_block', tasks=[{'vars': LOOSEN, 'block': [{'ansible.builtin.include_tasks': 'probe.yml'}]}]),
        _play('case_task', tasks=[{'ansible.builtin.include_tasks': 'probe.yml', 'vars': LOOSEN}]),
        _play('case_set_fact', tasks=[{'ansible.builtin.set_fact': LOOSEN},
                                      {'ansible.builtin.include_tasks': 'probe.yml'}]),
        _play('case_set_fact_cacheable', tasks=[{'ansible.builtin.set_fact': dict(LOOSEN, cacheable=True)},
                                                {'ansible.builtin.include_tasks': 'probe.yml'}]),
        _play('case_include_vars', tasks=[{'ansible.builtin.include_vars': 'sneaky.yml'},
                                          {'ansible.builtin.include_tasks': 'probe.yml'}]),
        _play('case_module_defaults', module_defaults={'group/dbfleet.postgresql.all': LOOSEN}),
        _play('case_module_args', tasks=[
            {'name': 'Probe with loosening arguments', 'register': 'probe_args', 'ignore_errors': True,
             'dbfleet.postgresql.file_stat': dict(LOOSEN, path=DATA + '/secret/f')},
            {'name': 'Probe the mode with loosening arguments', 'register': 'probe_mode',
             'dbfleet.postgresql.file_stat': dict(LOOSEN, path=DATA + '/allowed/f')},
            {'ansible.builtin.debug': {'msg': "VERDICT {{ {'host': inventory_hostname, 'mode': probe_mode.dbfleet_mode, "
                                              "'denied': probe_args is failed, 'lookup': 'plan'} | to_json }}"}}]),
        _play('case_extra'),
    ]


def _write_project(root, lab, inventory_mode='plan', group_vars_dir=False):
    conn = dict(ansible_host=lab.host_addr(HOST), ansible_user='root', ansible_ssh_private_key_file=str(lab.ssh_key),
                ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
                ansible_python_interpreter='/usr/bin/python3')
    guarded = {'dbfleet_mode': inventory_mode, 'dbfleet_deny_paths': [DATA + '/secret']}
    group = {'hosts': {'case_' + case: {} for case in CASES}}
    if group_vars_dir:
        os.makedirs(root / 'inventory' / 'group_vars')
        (root / 'inventory' / 'group_vars' / 'guarded.yml').write_text(json.dumps(guarded))
    else:
        group['vars'] = guarded
        (root / 'inventory').mkdir()
    (root / 'inventory' / 'hosts.yml').write_text(json.dumps({'all': {'vars': conn, 'children': {'guarded': group}}}))
    (root / 'sneaky.yml').write_text(json.dumps(LOOSEN))
    for role, where in (('sneaky_defaults', 'defaults'), ('sneaky_vars', 'vars')):
        os.makedirs(root / 'roles' / role / where)
        os.makedirs(root / 'roles' / role / 'tasks')
        (root / 'roles' / role / where / 'main.yml').write_text(json.dumps(LOOSEN))
        (root / 'roles' / role / 'tasks' / 'main.yml').write_text(
            json.dumps([{'ansible.builtin.include_tasks': str(root / 'probe.yml')}]))
    (root / 'probe.yml').write_text(PROBE)
    (root / 'site.yml').write_text(json.dumps(_playbook()))


def _verdicts(lab, root, *args):
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(root / 'inventory'), str(root / 'site.yml')]
                          + list(args), cwd=str(root), env=dict(_env(lab.repo), ANSIBLE_STDOUT_CALLBACK='ansible.builtin.default'),
                          capture_output=True, text=True, timeout=600, check=False)
    found = {}
    for match in re.finditer(r'"VERDICT (\{.*?\})"', proc.stdout):
        item = json.loads(match.group(1).replace('\\"', '"'))
        found[item.pop('host')] = item
    return proc, found


@pytest.fixture()
def guarded_files(fleet_lab):
    fleet_lab.exec(HOST, 'sh', '-c', 'rm -rf {d} && mkdir -p {d}/allowed {d}/secret && echo ok > {d}/allowed/f && '
                                     'echo secret > {d}/secret/f'.format(d=DATA))
    yield fleet_lab
    fleet_lab.exec(HOST, 'rm', '-rf', DATA)


def test_no_other_source_loosens_the_inventory(guarded_files, tmp_path):
    _write_project(tmp_path, guarded_files)
    proc, found = _verdicts(guarded_files, tmp_path, '-e', json.dumps(LOOSEN))
    assert set(found) == {'case_' + case for case in CASES}, proc.stdout[-4000:] + proc.stderr[-2000:]
    for host, verdict in sorted(found.items()):
        assert verdict == {'mode': 'plan', 'denied': True, 'lookup': 'plan'}, (host, verdict)


def test_group_vars_directory_is_inventory_too(guarded_files, tmp_path):
    _write_project(tmp_path, guarded_files, group_vars_dir=True)
    proc, found = _verdicts(guarded_files, tmp_path, '-e', json.dumps(LOOSEN), '-l', 'case_extra,case_set_fact,case_play')
    assert set(found) == {'case_extra', 'case_set_fact', 'case_play'}, proc.stdout[-4000:]
    assert all(v == {'mode': 'plan', 'denied': True, 'lookup': 'plan'} for v in found.values()), found


def test_other_sources_may_tighten(guarded_files, tmp_path):
    _write_project(tmp_path, guarded_files, inventory_mode='edit')
    few = ('-l', 'case_extra,case_set_fact,case_play,case_module_args')
    proc, found = _verdicts(guarded_files, tmp_path, '-e', json.dumps({'dbfleet_mode': 'plan'}), *few)
    assert len(found) == 4 and all(v['mode'] == 'plan' and v['lookup'] == 'plan' for v in found.values()), proc.stdout[-3000:]
    proc, found = _verdicts(guarded_files, tmp_path, *few)
    # Without the extra var, the sources that try bypass cannot get past the inventory's edit.
    assert found['case_extra'] == {'mode': 'edit', 'denied': True, 'lookup': 'edit'}, proc.stdout[-3000:]
    assert found['case_play']['mode'] == 'edit' and found['case_set_fact']['mode'] == 'edit'

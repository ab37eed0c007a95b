# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The commands in README.md and docs/recipes.md run, as written, against the fleet lab.

From every ```bash block, the lines that start with ``ansible-playbook`` or ``ansible-doc`` are run
with .venv/bin first on PATH, in a scratch directory that looks like the repository root
(``playbooks`` and ``inventories`` link to the repository's). A ```yaml block whose first line is
``# NAME.yml`` and which holds a playbook is written there as NAME.yml, so a command that runs it
finds it. Other lines (make targets, the seed one-liner shown as what not to do) are left alone.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest
import yaml

from tests.integration.ansible_cli import BIN, _env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ('README.md', 'docs/recipes.md')
BLOCK_RE = re.compile(r'```(\w+)\n(.*?)```', re.S)


def _blocks(doc):
    with open(os.path.join(REPO, doc), encoding='utf-8') as handle:
        return BLOCK_RE.findall(handle.read())


def _commands(doc):
    found = []
    for lang, body in _blocks(doc):
        if lang != 'bash':
            continue
        for line in body.splitlines():
            line = line.split('  #')[0].strip()
            if line.startswith(('ansible-playbook ', 'ansible-doc ')):
                found.append(line)
    return found


def _playbooks(doc):
    found = {}
    for lang, body in _blocks(doc):
        first = body.splitlines()[0] if body else ''
        match = re.match(r'^# ([\w.-]+\.yml)$', first)
        if lang == 'yaml' and match:
            data = yaml.safe_load(body)
            if isinstance(data, list) and data and isinstance(data[0], dict) and 'hosts' in data[0]:
                found[match.group(1)] = body
    return found


def _cases():
    """Every documented command; one shown in several docs against the same files runs once, under the first."""
    cases, seen = [], set()
    for doc in DOCS:
        own = _playbooks(doc)
        for command in _commands(doc):
            key = (command, tuple(sorted(own.items())) if any(name in command for name in own) else ())
            if key not in seen:
                seen.add(key)
                cases.append((doc, command))
    return cases


CASES = _cases()


def test_the_docs_show_commands_at_all():
    assert len(_commands('docs/recipes.md')) >= 5 and len(_commands('README.md')) >= 4


@pytest.mark.parametrize('doc,command', CASES, ids=['%s: %s' % (d, c[:70]) for d, c in CASES])
def test_documented_command_runs_against_the_lab(fleet_lab, doc, command, tmp_path):
    for name in ('playbooks', 'inventories'):
        os.symlink(os.path.join(REPO, name), str(tmp_path / name))
    for name, body in _playbooks(doc).items():
        (tmp_path / name).write_text(body)
    argv = shlex.split(command)
    env = _env(str(fleet_lab.repo))
    env['ANSIBLE_STDOUT_CALLBACK'] = 'ansible.builtin.default'
    proc = subprocess.run([os.path.join(BIN, argv[0])] + argv[1:], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, '%s\n%s\n%s' % (command, proc.stdout[-3000:], proc.stderr[-2000:])
    if argv[0] == 'ansible-playbook':
        assert 'failed=0' in proc.stdout and 'unreachable=0' in proc.stdout

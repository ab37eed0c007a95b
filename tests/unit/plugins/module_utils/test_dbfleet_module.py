# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DbfleetModule: deny-list on every path option in every mode, plan mode as check mode, edit-mode backups."""

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule

SPEC = dict(dest=dict(type='path'), sources=dict(type='list', elements='path', default=[]), name=dict(type='str'))


def _module(args):
    with patch_module_args(args):
        return DbfleetModule(argument_spec=SPEC, supports_check_mode=True)


def _failure(args, capsys):
    with pytest.raises(SystemExit) as exc:
        _module(args)
    assert exc.value.code == 1
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize('mode', ['plan', 'edit', 'bypass'])
def test_deny_list_applies_in_every_mode(mode, capsys):
    out = _failure({'dest': '/etc/shadow', 'dbfleet_mode': mode}, capsys)
    assert out['failed'] and 'Refused (option dest)' in out['msg'] and '/etc/shadow' in out['msg']


def test_every_element_of_a_path_list_is_checked(capsys):
    out = _failure({'sources': ['/srv/ok', '/boot/grub/grub.cfg']}, capsys)
    assert 'option sources' in out['msg'] and '/boot' in out['msg']


def test_inventory_extension_refuses_more(capsys):
    out = _failure({'dest': '/srv/app/.env', 'dbfleet_deny_paths': ['/srv/app']}, capsys)
    assert 'inventory (dbfleet_deny_paths)' in out['msg']


def test_string_options_are_not_paths():
    module = _module({'name': '/etc/shadow'})
    assert module.params['name'] == '/etc/shadow'


def test_plan_mode_is_check_mode():
    module = _module({'dest': '/srv/x', 'dbfleet_mode': 'plan'})
    assert module.check_mode and not module.writes_allowed
    assert not _module({'dest': '/srv/x', 'dbfleet_mode': 'edit'}).check_mode


def test_edit_mode_backs_up_before_overwrite_and_bypass_does_not(tmp_path, monkeypatch):
    monkeypatch.setattr(_files, 'BACKUP_ROOT', str(tmp_path / 'backups'))
    target = tmp_path / 'pg_hba.conf'
    target.write_text('original\n')
    backup = _module({'dest': str(target), 'dbfleet_mode': 'edit'}).backup_before_overwrite(str(target))
    assert backup and open(backup).read() == 'original\n'
    # Kept apart from the original (not beside it, as a stray file in /etc/cron.d would be run by cron).
    assert backup.startswith(str(tmp_path / 'backups') + '/') and os.path.dirname(backup) != str(tmp_path)
    assert _module({'dest': str(target), 'dbfleet_mode': 'edit'}).backup_before_overwrite(str(target), secret=True) is None
    assert _module({'dest': str(target), 'dbfleet_mode': 'bypass'}).backup_before_overwrite(str(target)) is None
    assert _module({'dest': str(target), 'dbfleet_mode': 'plan'}).backup_before_overwrite(str(target)) is None


@pytest.mark.parametrize('args,option', [
    ({'name': 'app\n* * * * * root id #'}, 'name'),
    ({'name': 'a\rb'}, 'name'),
    ({'name': 'nul\x00'}, 'name'),
    ({'dest': '/srv/back\nups'}, 'dest'),
    ({'sources': ['/srv/ok', '/srv/x\ty']}, 'sources'),
])
def test_control_characters_are_refused_in_every_string_option(args, option, capsys):
    out = _failure(args, capsys)
    assert 'Refused option %s' % option in out['msg'] and 'control character' in out['msg']


def test_secret_values_are_not_echoed(capsys):
    spec = dict(SPEC, password=dict(type='str', no_log=True))
    with patch_module_args({'password': 'hunter2\nx'}):
        with pytest.raises(SystemExit):
            DbfleetModule(argument_spec=spec, supports_check_mode=True)
    out = capsys.readouterr().out
    assert 'hunter2' not in out and 'control character' in out


@pytest.mark.parametrize('value', [float('nan'), float('inf'), float('-inf')])
def test_non_finite_numbers_are_refused(value, capsys):
    spec = dict(SPEC, pct=dict(type='float'))
    with patch_module_args({'pct': value}):
        with pytest.raises(SystemExit):
            DbfleetModule(argument_spec=spec, supports_check_mode=True)
    assert 'not a finite number' in capsys.readouterr().out

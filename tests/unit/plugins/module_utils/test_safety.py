# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import (
    DEFAULT_DENY_PATHS,
    control_character_problem,
    deny_reason,
    glob_static_prefix,
    strictest_mode,
    write_destination_problem,
)


@pytest.mark.parametrize('path', [
    '/etc/shadow', '/etc/gshadow', '/etc/shadow-', '/etc/sudoers.d/90-cloud', '/boot', '/boot/vmlinuz',
    '/proc/1/environ', '/sys/kernel', '/etc/ssh/ssh_host_ed25519_key', '/root/.ssh/id_ed25519',
    '/home/alice/.ssh/id_rsa', '/var/lib/postgresql/.ssh/id_ecdsa', '/etc/../etc/shadow', '/etc//shadow',
])
def test_builtin_entries_refuse(path):
    assert deny_reason(path) is not None


@pytest.mark.parametrize('path', [
    '/srv/backups/app_prod.dump', '/etc/shadowsocks.json', '/bootstrap', '/home/alice/.ssh/id_rsa.pub',
    '/etc/ssh/ssh_host_ed25519_key.pub', '/etc/passwd', '/procedures/x',
])
def test_ordinary_paths_pass(path):
    assert deny_reason(path) is None


def test_symlink_to_protected_file_is_refused(tmp_path):
    link = tmp_path / 'innocent.txt'
    os.symlink('/etc/shadow', link)
    reason = deny_reason(str(link))
    assert reason is not None and 'resolves to /etc/shadow' in reason


def test_inventory_extends_but_cannot_shrink():
    assert deny_reason('/srv/app/.env') is None
    assert 'inventory' in deny_reason('/srv/app/.env', ['/srv/app'])
    assert deny_reason('/srv/app/x/.env', ['/srv/app/*/.env']) is not None
    # An empty or unrelated extra list never lifts a built-in entry.
    assert deny_reason('/etc/shadow', []) is not None
    assert deny_reason('/etc/shadow', ['/tmp']) is not None
    assert '/etc/shadow' in DEFAULT_DENY_PATHS


@pytest.mark.parametrize('modes,expected', [
    (('edit', 'plan'), 'plan'),
    (('bypass', None), 'bypass'),
    ((None, 'bypass', 'edit'), 'edit'),
    ((None, None), 'edit'),
    (('plan', 'bypass'), 'plan'),
])
def test_stricter_mode_wins(modes, expected):
    assert strictest_mode(*modes) == expected


def test_glob_static_prefix():
    assert glob_static_prefix('/etc/sha*') == '/etc'
    assert glob_static_prefix('/srv/backups/app_prod-*.dump') == '/srv/backups'
    assert glob_static_prefix('/*/shadow') == '/'


@pytest.mark.parametrize('path', ['/etc/cron.d/dumps', '/etc', '/usr/local/backups', '/bin/x', '/lib64/x', '/dev/shm/x',
                                  '/run/backups', '/root/.ssh/backups', '/var/lib/postgresql/.ssh', '/boot/x'])
def test_system_directories_are_no_write_destination(path):
    assert write_destination_problem(path) is not None


@pytest.mark.parametrize('path', ['/srv/backups', '/var/backups/db', '/data/pg/backups', '/srv/etc-copies', '/srv/usrdata',
                                  '/home/alice/dumps', '/srv/.sshfoo'])
def test_data_directories_are_write_destinations(path):
    assert write_destination_problem(path) is None


def test_symlink_into_the_system_is_no_write_destination(tmp_path):
    link = tmp_path / 'etclink'
    os.symlink('/etc', link)
    assert 'resolves to /etc/cron.d' in write_destination_problem(str(link / 'cron.d'))


@pytest.mark.parametrize('value,ok', [('app_prod', True), ('app-prod 2', True), ('caf\u00e9', True),
                                      ('app\n', False), ('a\tb', False), ('\x7f', False), ('x\x00', False)])
def test_control_character_problem(value, ok):
    assert (control_character_problem(value) is None) == ok

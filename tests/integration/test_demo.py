# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/demo.yml (what `make demo` runs) verifies every artifact the run made, and says so in sentences."""

from __future__ import annotations

from tests.integration.ansible_cli import host_results, run_module, run_playbook


def test_demo_verifies_every_artifact_it_made(fleet_lab):
    run = run_playbook(fleet_lab, 'playbooks/demo.yml', extra_vars={'backup_run_now': True})
    assert run.rc == 0, run.stdout[-4000:]
    checked = run.results('Check size, SHA-256 against the manifest')['db-primary']['results']
    made = [r['path'] for r in checked]
    # Every dump of the nightly schedule (app_prod, postgres, globals) and the base backup.
    assert sorted(p.split('/')[-1].split('-')[0] for p in made) == ['app_prod', 'base', 'globals', 'postgres'], made
    assert all(r['ok'] and r['manifest']['matches'] and r['valid'] for r in checked)
    said = run.results('Say what this host has')
    assert said['db-primary']['msg'].startswith('OK: 4 artifacts made now and verified - ')
    assert '[' not in said['db-primary']['msg'] and '{' not in said['db-primary']['msg']
    for replica in ('db-replica-1', 'db-replica-2'):
        assert said[replica]['msg'].startswith(replica + ' is a streaming replica')


def test_a_damaged_base_backup_is_caught(fleet_lab):
    host = 'db-primary'
    newest = sorted(fleet_lab.exec(host, 'sh', '-c', 'ls -d /srv/basebackups/base-*.dir').stdout.split())[-1]
    copy = '/srv/damaged-base/' + newest.split('/')[-1]
    fleet_lab.exec(host, 'sh', '-c', 'rm -rf /srv/damaged-base && mkdir /srv/damaged-base && cp -a {n} {c} && '
                   'cp {m} /srv/damaged-base/ && printf "\\377\\377\\377\\377" | dd of={c}/base.tar.zst bs=1 seek=5000 '
                   'conv=notrunc 2>/dev/null'.format(n=newest, c=copy, m=newest.replace('.dir', '.manifest.json')))
    try:
        result = host_results(run_module(fleet_lab, host, 'dbfleet.postgresql.file_stat',
                                         dict(path=copy, checksum=True, validate='pg_archive')))[host]
    finally:
        fleet_lab.exec(host, 'rm', '-rf', '/srv/damaged-base')
    # pg_basebackup's zstd frames carry no checksum, so a flipped byte may still decompress: the SHA-256 against the
    # runner's manifest is what catches it.
    assert result['ok'] is False
    assert any('not the dump the manifest describes' in v for v in result['violations']), result['violations']

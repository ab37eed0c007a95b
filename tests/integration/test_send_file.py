# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""send_file on the fleet lab, db-primary to backup-box over real SSH: direct, relay, auto with the direct port
blocked in the kernel, resume after a kill, corruption in the partial and in transit, directories, check and plan
mode, the deny-list on the destination, hostile values, and a receiver that refuses strangers."""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import time

import pytest
import yaml

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import frames, tlsonce
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.landing import partial_name
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.program import build_program
from ansible_collections.dbfleet.postgresql.plugins.plugin_utils._peer import preamble
from tests.integration.ansible_cli import BIN, _env, _parse, host_results, run_module
from tests.integration.sendfile_helpers import (BIG, BIG_DIR, BIG_SIZE, DEST, SOURCE, Footprint, blocked_port, host_path,
                                                make_random, sha256_on)

MODULE = 'dbfleet.postgresql.send_file'
SRC = '/srv/sendfile-test'        # scratch on db-primary
DST = '/srv/sendfile-test'        # scratch on backup-box
MIB = 1 << 20


@pytest.fixture(scope='module')
def big(fleet_lab):
    """The 1 GiB file on db-primary, made once for the tests of this module (the benchmark makes the same one)."""
    yield make_random(fleet_lab, SOURCE, BIG, BIG_SIZE)
    fleet_lab.exec(SOURCE, 'rm', '-rf', BIG_DIR)


@pytest.fixture()
def scratch(fleet_lab):
    for host in (SOURCE, DEST):
        fleet_lab.exec(host, 'sh', '-c', 'rm -rf {d} && mkdir -p {d}'.format(d=SRC))
    yield
    for host in (SOURCE, DEST):
        fleet_lab.exec(host, 'rm', '-rf', SRC)
    fleet_lab.exec(DEST, 'rm', '-rf', '/var/lib/dbfleet/backups' + DST)


@pytest.fixture()
def medium(fleet_lab, scratch):
    """A 96 MiB file on db-primary, for the fault injection (a smaller file, the same code path)."""
    path = SRC + '/medium-20260101T000000Z.dump'
    fleet_lab.exec(SOURCE, 'sh', '-c', 'head -c %d /dev/urandom > %s' % (96 * MIB, path))
    return path, sha256_on(fleet_lab, SOURCE, path)


def send(lab, *extra, inventory=None, extra_vars=None, timeout=600, **args):
    args.setdefault('to', DEST)
    argv = [os.path.join(BIN, 'ansible'), SOURCE, '-i', str(inventory or lab.inventory), '-m', MODULE, '-a', json.dumps(args)]
    argv += list(extra) + (['-e', json.dumps(extra_vars)] if extra_vars else [])
    proc = subprocess.run(argv, cwd=str(lab.repo), env=_env(str(lab.repo)), capture_output=True, text=True, timeout=timeout,
                          check=False)
    run = _parse(proc)
    return host_results(run).get(SOURCE, {'failed': True, 'msg': proc.stdout + proc.stderr})


def start_send(lab, **args):
    args.setdefault('to', DEST)
    argv = [os.path.join(BIN, 'ansible'), SOURCE, '-i', str(lab.inventory), '-m', MODULE, '-a', json.dumps(args)]
    return subprocess.Popen(argv, cwd=str(lab.repo), env=_env(str(lab.repo)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def inventory_with(lab, tmp_path, host, **host_vars):
    """The lab inventory with extra variables on one host (written to tmp_path)."""
    with open(str(lab.inventory / 'hosts.yml') if os.path.isdir(str(lab.inventory)) else str(lab.inventory)) as handle:
        data = yaml.safe_load(handle)
    for group in data['all']['children'].values():
        if host in (group.get('hosts') or {}) and group['hosts'][host]:
            group['hosts'][host].update(host_vars)
    path = tmp_path / 'hosts.yml'
    path.write_text(yaml.safe_dump(data))
    return path


def listing(lab, host, directory):
    return lab.exec(host, 'sh', '-c', 'cd %s 2>/dev/null && find . | sort' % directory, check=False).stdout.split()


# --------------------------------------------------------------------------
# the "must show": 1 GiB by direct and by relay, auto falling back for real
# --------------------------------------------------------------------------

def test_one_gib_direct_arrives_with_the_same_sha256(fleet_lab, big, scratch):
    result = send(fleet_lab, path=BIG, dest=DST + '/big.dump', method='direct')
    assert not result.get('failed'), result['msg']
    assert result['method'] == 'direct' and result['fallback'] is None and result['changed']
    assert result['sha256'] == big and result['bytes'] == BIG_SIZE == result['sent_bytes']
    assert result['resumed_bytes'] == 0 and result['seconds'] > 0 and 'MiB/s' in result['throughput']
    assert sha256_on(fleet_lab, DEST, DST + '/big.dump') == big
    assert fleet_lab.exec(DEST, 'stat', '-c', '%U %a %s', DST + '/big.dump').stdout.split() == ['root', '640', str(BIG_SIZE)]
    assert listing(fleet_lab, DEST, DST) == ['.', './big.dump']                          # no partial, no temp file
    again = send(fleet_lab, path=BIG, dest=DST + '/big.dump', method='direct')
    assert again['changed'] is False and again['method'] == 'none' and 'already holds this copy' in again['msg']


def test_one_gib_relay_streams_through_a_controller_that_holds_none_of_it(fleet_lab, big, scratch):
    args = dict(path=BIG, dest=DST + '/big.dump', method='relay', to=DEST)
    argv = [os.path.join(BIN, 'ansible'), SOURCE, '-i', str(fleet_lab.inventory), '-m', MODULE, '-a', json.dumps(args)]
    proc = subprocess.Popen(argv, cwd=str(fleet_lab.repo), env=_env(str(fleet_lab.repo)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with Footprint(proc.pid) as footprint:
        out, err = proc.communicate(timeout=600)
    result = host_results(_parse(subprocess.CompletedProcess(argv, proc.returncode, out, err)))[SOURCE]
    assert not result.get('failed'), result['msg']
    assert result['method'] == 'relay' and result['sha256'] == big and result['sent_bytes'] == BIG_SIZE
    assert sha256_on(fleet_lab, DEST, DST + '/big.dump') == big
    # the whole controller side (ansible, its worker, the four ssh clients): well under the file's size at any
    # moment, and (almost) nothing written to storage
    print('controller while relaying 1 GiB: %d processes, at most %.1f MiB resident at once, %.1f KiB written to storage'
          % (len(footprint.processes), footprint.max_rss / MIB, footprint.storage_writes / 1024.0))
    assert footprint.max_rss < 400 * MIB, footprint.max_rss
    assert footprint.storage_writes < 32 * MIB, footprint.storage_writes
    assert len(footprint.processes) >= 3


def test_auto_falls_back_to_relay_when_the_kernel_rejects_the_direct_port(fleet_lab, medium):
    path, digest = medium
    port = 47000 + secrets.randbelow(1000)
    with blocked_port(fleet_lab.host_addr(DEST), port):
        result = send(fleet_lab, path=path, dest=DST + '/auto.dump', method='auto', port=port)
        direct = send(fleet_lab, path=path, dest=DST + '/direct-only.dump', method='direct', port=port)
    assert not result.get('failed'), result['msg']
    assert result['method'] == 'relay' and result['sha256'] == digest
    assert 'relayed through the controller' in result['fallback'] and 'Connection refused' in result['fallback']
    assert sha256_on(fleet_lab, DEST, DST + '/auto.dump') == digest
    # method=direct does not fall back: it fails and says why, leaving nothing
    assert direct['failed'] and 'Connection refused' in direct['msg'] and '(direct)' in direct['msg']
    assert './direct-only.dump' not in listing(fleet_lab, DEST, DST)
    assert not [line for line in listing(fleet_lab, DEST, DST) if 'direct-only' in line]


# --------------------------------------------------------------------------
# fault injection
# --------------------------------------------------------------------------

def kill_receiver_halfway(lab, dest, size, method='direct'):
    """Start a throttled transfer, SIGKILL the receiver (by pid, found as the holder of its partial) mid-way."""
    partial = os.path.join(os.path.dirname(dest), partial_name(os.path.basename(dest)))
    proc = start_send(lab, path=SRC + '/medium-20260101T000000Z.dump', dest=dest, method=method, bandwidth_limit='32MB')
    seen = host_path(lab, DEST, partial)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(seen) and os.path.getsize(seen) > size // 3:
            break
        time.sleep(0.05)
    holders = lab.exec(DEST, 'fuser', partial, check=False).stdout.split()
    assert holders, 'no process holds %s' % partial
    for pid in holders:
        lab.exec(DEST, 'kill', '-KILL', pid.rstrip('m'), check=False)
    out, err = proc.communicate(timeout=120)
    result = host_results(_parse(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))).get(SOURCE, {})
    return result, os.path.getsize(seen)


@pytest.mark.parametrize('method', ['direct', 'relay'])
def test_a_transfer_killed_halfway_resumes_and_sends_less(fleet_lab, medium, method):
    path, digest = medium
    dest = DST + '/resumed.dump'
    killed, kept = kill_receiver_halfway(fleet_lab, dest, 96 * MIB, method)
    assert killed.get('failed') and 0 < kept < 96 * MIB
    assert killed['partial_kept_bytes'] == kept and 'kept for the next run' in killed['msg']
    assert './resumed.dump' not in listing(fleet_lab, DEST, DST)
    result = send(fleet_lab, path=path, dest=dest, method=method)
    assert not result.get('failed'), result['msg']
    assert result['resumed_bytes'] == kept and result['sent_bytes'] == 96 * MIB - kept < 96 * MIB
    assert result['sha256'] == digest == sha256_on(fleet_lab, DEST, dest) and 'resumed' in result['msg']
    assert listing(fleet_lab, DEST, DST) == ['.', './resumed.dump']


def test_a_flipped_byte_in_the_kept_partial_is_detected_and_everything_sent_again(fleet_lab, medium):
    path, digest = medium
    dest = DST + '/flipped.dump'
    _out, kept = kill_receiver_halfway(fleet_lab, dest, 96 * MIB)
    partial = DST + '/' + partial_name('flipped.dump')
    fleet_lab.exec(DEST, 'sh', '-c', "printf 'Z' | dd of=%s bs=1 seek=%d conv=notrunc status=none" % (partial, kept // 2))
    result = send(fleet_lab, path=path, dest=dest)
    assert not result.get('failed'), result['msg']
    assert result['resumed_bytes'] == 0 and result['sent_bytes'] == 96 * MIB
    assert 'is not the source' in result['partial_note'] and 'discarded' in result['partial_note']
    assert result['sha256'] == digest == sha256_on(fleet_lab, DEST, dest)


FLIPPING_SSH = r'''#!/usr/bin/python3
# ssh, except that the bulk stream coming back from the source host gets one byte flipped at FLIP_AT
import os, subprocess, sys
argv = ['ssh'] + sys.argv[1:]
if 'ControlPath=none' not in argv or not any(arg.endswith('%(source)s') for arg in argv):
    os.execvp('ssh', argv)
proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
seen, at = 0, %(at)d
out = sys.stdout.buffer
while True:
    chunk = proc.stdout.read1(65536)
    if not chunk:
        break
    if seen <= at < seen + len(chunk):
        chunk = bytearray(chunk)
        chunk[at - seen] ^= 0x01
    seen += len(chunk)
    out.write(chunk)
    out.flush()
sys.exit(proc.wait())
'''


def test_a_byte_flipped_in_transit_is_detected_and_the_destination_keeps_nothing(fleet_lab, medium, tmp_path):
    path, _digest = medium
    wrapper = tmp_path / 'flipping-ssh'
    wrapper.write_text(FLIPPING_SSH % {'source': fleet_lab.host_addr(SOURCE), 'at': 40 * MIB + 12345})
    wrapper.chmod(0o755)
    fleet_lab.exec(DEST, 'sh', '-c', 'echo previous > %s/transit.dump' % DST)
    result = send(fleet_lab, path=path, dest=DST + '/transit.dump', method='relay',
                  extra_vars={'ansible_ssh_executable': str(wrapper)})
    assert result['failed'] and result['corrupted']
    assert 'SHA-256 of what arrived' in result['msg'] and 'nothing kept' in result['msg']
    assert fleet_lab.exec(DEST, 'cat', DST + '/transit.dump').stdout == 'previous\n'   # the old copy untouched
    assert listing(fleet_lab, DEST, DST) == ['.', './transit.dump']                      # and no partial


def test_two_transfers_to_the_same_destination_at_once_one_waits_its_turn_by_failing_in_words(fleet_lab, medium):
    path, digest = medium
    dest = DST + '/twice.dump'
    first = start_send(fleet_lab, path=path, dest=dest, method='direct', bandwidth_limit='6MB')
    partial = host_path(fleet_lab, DEST, DST + '/' + partial_name('twice.dump'))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (os.path.exists(partial) and os.path.getsize(partial) > 0):
        time.sleep(0.05)
    second = send(fleet_lab, path=path, dest=dest, method='relay')
    assert first.poll() is None, 'the first transfer ended before the second one tried'
    out, err = first.communicate(timeout=300)
    done = host_results(_parse(subprocess.CompletedProcess(first.args, first.returncode, out, err)))[SOURCE]
    assert second['failed'] and 'another transfer to %s is running' % dest in second['msg']
    assert not done.get('failed'), done['msg']
    assert done['sha256'] == digest == sha256_on(fleet_lab, DEST, dest)


# --------------------------------------------------------------------------
# directories, backups of what is replaced, check mode, plan mode, deny-list, hostile values
# --------------------------------------------------------------------------

def test_a_directory_format_dump_travels_as_one_verified_stream(fleet_lab, scratch):
    src = SRC + '/app_prod-20260101T000000Z.dir'
    fleet_lab.exec(SOURCE, 'pg_dump', '-U', 'postgres', '-Fd', '-j', '2', '-f', src, 'app_prod')
    fleet_lab.exec(SOURCE, 'mkdir', src + '/empty-subdir')
    for method in ('direct', 'relay'):
        dest = '%s/copy-%s/app_prod-20260101T000000Z.dir' % (DST, method)
        result = send(fleet_lab, path=src, dest=dest, method=method, create_dirs=True)
        assert not result.get('failed'), result['msg']
        seen = [host_results(run_module(fleet_lab, host, 'dbfleet.postgresql.file_stat', dict(path=where, checksum=True)))[host]
                for host, where in ((SOURCE, src), (DEST, dest))]
        assert result['sha256'] == seen[0]['sha256'] == seen[1]['sha256'] and result['kind'] == 'tree'
        assert result['files'] == len(fleet_lab.exec(SOURCE, 'find', src, '-type', 'f').stdout.split())
        assert fleet_lab.exec(DEST, 'test', '-d', dest + '/empty-subdir', check=False).returncode == 0
        assert fleet_lab.exec(DEST, 'pg_restore', '--list', dest).stdout.count('TABLE DATA') >= 2


def test_an_existing_different_copy_is_backed_up_first_in_edit_mode_and_not_in_bypass(fleet_lab, medium, tmp_path):
    path, digest = medium
    fleet_lab.exec(DEST, 'sh', '-c', 'echo older copy > %s/edit.dump && echo older copy > %s/bypass.dump' % (DST, DST))
    result = send(fleet_lab, path=path, dest=DST + '/edit.dump')
    assert not result.get('failed'), result['msg']
    assert result['backup_file'].startswith('/var/lib/dbfleet/backups%s/edit.dump.' % DST)
    assert fleet_lab.exec(DEST, 'cat', result['backup_file']).stdout == 'older copy\n'
    assert fleet_lab.exec(DEST, 'stat', '-c', '%U %a', result['backup_file']).stdout.split() == ['root', '600']
    inventory = inventory_with(fleet_lab, tmp_path, DEST, dbfleet_mode='bypass')
    bypass = send(fleet_lab, path=path, dest=DST + '/bypass.dump', inventory=inventory)
    assert not bypass.get('failed') and bypass['backup_file'] is None and bypass['sha256'] == digest


def test_check_mode_sends_nothing_and_says_what_it_would_send(fleet_lab, medium):
    path, _digest = medium
    fleet_lab.exec(DEST, 'sh', '-c', 'echo keep me > %s/checked.dump' % DST)
    before = listing(fleet_lab, DEST, DST)
    result = send(fleet_lab, '--check', '--diff', path=path, dest=DST + '/checked.dump')
    assert result['changed'] and result['would_send'] and result['method'] == 'none'
    assert 'check mode: would send %s (96.0 MiB)' % path in result['msg'] and 'nothing written' in result['msg']
    assert 'bytes, from db-primary' in result['diff']['after']
    new_dir = send(fleet_lab, '--check', path=path, dest=DST + '/not/there/x.dump', create_dirs=True)
    assert new_dir['would_send'] and not new_dir.get('failed')
    assert listing(fleet_lab, DEST, DST) == before
    assert fleet_lab.exec(DEST, 'cat', DST + '/checked.dump').stdout == 'keep me\n'


def test_a_destination_in_plan_mode_by_inventory_is_never_written_whatever_the_task_says(fleet_lab, medium, tmp_path):
    path, _digest = medium
    inventory = inventory_with(fleet_lab, tmp_path, DEST, dbfleet_mode='plan')
    result = send(fleet_lab, path=path, dest=DST + '/planned.dump', dbfleet_mode='bypass', inventory=inventory,
                  extra_vars={'dbfleet_mode': 'edit'})
    assert not result.get('failed') and result['would_send'] and result['dest_mode'] == 'plan'
    assert 'backup-box is in plan mode' in result['msg'] and 'nothing written' in result['msg']
    assert listing(fleet_lab, DEST, DST) == ['.']
    # the source's own plan mode does not stop it from being read
    source_plan = send(fleet_lab, path=path, dest=DST + '/from-plan.dump', inventory=inventory_with(
        fleet_lab, tmp_path, SOURCE, dbfleet_mode='plan'))
    assert not source_plan.get('failed') and source_plan['method'] == 'direct'


def test_the_deny_list_holds_on_the_destination_with_its_own_inventory_and_filesystem(fleet_lab, medium, tmp_path):
    path, _digest = medium
    fleet_lab.exec(DEST, 'sh', '-c', 'mkdir -p %s/secret && ln -s /etc %s/etc-link' % (DST, DST))
    inventory = inventory_with(fleet_lab, tmp_path, DEST, dbfleet_deny_paths=[DST + '/secret'])
    denied = send(fleet_lab, path=path, dest=DST + '/secret/x.dump', inventory=inventory)
    assert denied['failed'] and 'destination side (backup-box)' in denied['msg'] and 'inventory (dbfleet_deny_paths)' in denied['msg']
    assert 'secret' not in ' '.join(listing(fleet_lab, DEST, DST + '/secret'))
    # the symlink exists on backup-box only: it is resolved there, and /etc is no place for a copy
    via_link = send(fleet_lab, path=path, dest=DST + '/etc-link/cron.d/evil')
    assert via_link['failed'] and 'resolves to /etc/cron.d/evil' in via_link['msg'] and 'system directory' in via_link['msg']
    shadow = send(fleet_lab, path='/etc/shadow', dest=DST + '/shadow')
    assert shadow['failed'] and 'source side (db-primary)' in shadow['msg'] and 'built-in deny-list' in shadow['msg']
    assert fleet_lab.exec(DEST, 'test', '-e', '/etc/cron.d/evil', check=False).returncode != 0


@pytest.mark.parametrize('field,value,words', [
    ('dest', DST + '/x.dump\n* * * * * root touch /tmp/pwned', 'control character'),
    ('dest', 'relative/x.dump', 'must be an absolute path'),
    ('to', 'backup-box\nevil', 'is not a host in the inventory'),
    ('to', 'no-such-host', 'is not a host in the inventory'),
    ('mode', '4755', 'without setuid'),
])
def test_hostile_values_are_refused_and_nothing_is_written(fleet_lab, medium, field, value, words):
    path, _digest = medium
    args = dict(path=path, dest=DST + '/ok.dump')
    args[field] = value
    result = send(fleet_lab, **args)
    assert result['failed'] and words in result['msg']
    assert listing(fleet_lab, DEST, DST) == ['.']


# --------------------------------------------------------------------------
# the receiver's one-time port refuses strangers
# --------------------------------------------------------------------------

def start_receiver(lab, dest, token):
    program = build_program('dbfleet-transfer-receive', '/usr/bin/python3')
    command = "/usr/bin/python3 -c 'import base64, sys; exec(base64.b64decode(sys.stdin.buffer.raw.readline()))'"
    proc = subprocess.Popen(lab.ssh_argv(DEST) + [command], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    job = dict(mode='direct', kind='file', dest=dest, listen=lab.host_addr(DEST), token=token, connect_timeout=30)
    proc.stdin.write(preamble('dbfleet-transfer-receive', program) + json.dumps(job).encode() + b'\n')
    proc.stdin.flush()
    event = json.loads(proc.stderr.readline().decode().split(' ', 1)[1])
    assert event['event'] == 'listening', event
    return proc, event


def events_of(proc):
    proc.stdin.close()
    out = proc.stderr.read().decode()
    proc.wait(timeout=60)
    return [json.loads(line.split(' ', 1)[1]) for line in out.splitlines() if line.startswith('@dbfleet ')]


def test_the_receiver_refuses_a_wrong_token_and_a_sender_refuses_a_wrong_certificate(fleet_lab, scratch):
    token = secrets.token_hex(32)
    proc, listening = start_receiver(fleet_lab, DST + '/never.dump', token)
    where = (fleet_lab.host_addr(DEST), listening['port'])
    # 1. a client that does not hold the token: TLS works, the proof does not
    tls = tlsonce.client_context().wrap_socket(socket.create_connection(where, timeout=10))
    channel = frames.socket_channel(tls, 'the receiver')
    channel.send_message(frames.JSON, {'type': 'hello', 'protocol': frames.PROTOCOL, 'nonce': 'ab' * 32})
    challenge = channel.recv_message('challenge')
    assert len(challenge['nonce']) == 64 and len(challenge['proof']) == 64       # its proof reveals nothing of the token
    channel.send_message(frames.JSON, {'type': 'auth', 'proof': '00' * 32})
    with pytest.raises(frames.PeerAborted, match="does not hold this transfer's one-time token"):
        channel.recv_message('welcome')
    tls.close()
    # 2. plain TCP without TLS
    with socket.create_connection(where, timeout=10) as raw:
        raw.sendall(b'GET / HTTP/1.0\r\n\r\n')
        try:
            assert raw.recv(100)[:1] in (b'', b'\x15')                       # nothing, or a TLS alert
        except ConnectionResetError:
            pass
    events = events_of(proc)
    refused = [e for e in events if e['event'] == 'refused']
    result = events[-1]
    assert len(refused) == 2 and "does not hold this transfer's one-time token" in refused[0]['reason']
    assert result['event'] == 'result' and result['status'] == 'failed' and len(result['refused']) == 2
    assert listing(fleet_lab, DEST, DST) == ['.']
    # 3. a sender pointed at a listener with another certificate refuses it before sending a byte
    context, _fingerprint = tlsonce.server_context()
    impostor = socket.create_server(('127.0.0.1', 0))
    sender_job = dict(mode='direct', kind='file', dest=DST + '/never.dump', path='/etc/hostname', connect='127.0.0.1',
                      port=impostor.getsockname()[1], fingerprint='ab' * 32, token=token, connect_timeout=10)
    program = build_program('dbfleet-transfer-send', '/usr/bin/python3')
    sender = subprocess.Popen(['/usr/bin/python3', '-c', 'import base64, sys; exec(base64.b64decode(sys.stdin.buffer.raw.readline()))'],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sender.stdin.write(preamble('dbfleet-transfer-send', program) + json.dumps(sender_job).encode() + b'\n')
    sender.stdin.close()
    raw, _peer = impostor.accept()
    try:
        tls = context.wrap_socket(raw, server_side=True)
        tls.settimeout(10)
        assert tls.recv(100) == b''                                             # not a byte: not even the hello
    except (ssl.SSLError, OSError):
        pass
    finally:
        raw.close()
        impostor.close()
    said = sender.stderr.read().decode()
    assert sender.wait(timeout=30) == 1 and 'not the one-time certificate' in said and 'nothing sent' in said

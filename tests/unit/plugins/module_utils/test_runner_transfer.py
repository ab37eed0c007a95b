# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of send_file's host programs: stream framing, the resume decision, the deterministic tree stream,
the landing, the one-time TLS identity and token proof, and the job checks - no lab, no Ansible."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import ssl
import subprocess
import tarfile
import threading

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import frames, tarstream, tlsonce, transfer, transferjob
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.hashing import hash_tree
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.landing import Landing, partial_name

MIB = 1 << 20


def pair(what=('receiver', 'sender')):
    left, right = socket.socketpair()
    return frames.socket_channel(left, what[0]), frames.socket_channel(right, what[1]), (left, right)


# --------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------

def test_frames_round_trip_json_data_and_end():
    a, b, _socks = pair()
    a.send_message(frames.JSON, {'type': 'offer', 'partial': 3})
    a.send_frame(frames.DATA, b'xyz')
    a.send_message(frames.END, {'size': 3})
    assert b.recv_message('offer') == {'type': 'offer', 'partial': 3}
    kind, length = b.recv_header()
    buf = bytearray(length)
    b.read_exact(memoryview(buf))
    assert (kind, bytes(buf)) == (frames.DATA, b'xyz')
    kind, length = b.recv_header()
    assert kind == frames.END and b.recv_object(length) == {'size': 3}


def test_a_stream_that_ends_mid_frame_is_an_error_not_a_short_file():
    left, right = socket.socketpair()
    receiver = frames.socket_channel(right, 'the sender')
    left.sendall(frames.HEADER.pack(frames.DATA, 100) + b'only ten b')
    left.close()
    kind, length = receiver.recv_header()
    with pytest.raises(frames.StreamEnded, match='ended after 15 bytes, in the middle of a frame'):
        receiver.read_exact(memoryview(bytearray(length)))


@pytest.mark.parametrize('header,words', [
    (frames.HEADER.pack(b'Q', 1), 'unknown kind'),
    (frames.HEADER.pack(frames.DATA, frames.MAX_DATA + 1), 'a corrupted stream'),
    (frames.HEADER.pack(frames.JSON, frames.MAX_JSON + 1), 'a corrupted stream'),
])
def test_corrupted_headers_are_refused(header, words):
    left, right = socket.socketpair()
    left.sendall(header)
    with pytest.raises(frames.TransferError, match=words):
        frames.socket_channel(right, 'the sender').recv_header()


def test_an_abort_frame_says_why_the_peer_gave_up():
    a, b, _socks = pair()
    a.abort('disk full on the receiver')
    with pytest.raises(frames.PeerAborted, match='disk full on the receiver'):
        b.recv_message('verdict')


def test_unexpected_message_types_are_refused():
    a, b, _socks = pair()
    a.send_message(frames.JSON, {'type': 'start'})
    with pytest.raises(frames.TransferError, match="'start' where 'offer' was expected"):
        b.recv_message('offer')


# --------------------------------------------------------------------------
# the deterministic tree stream
# --------------------------------------------------------------------------

def make_tree(root, order=('b', 'a')):
    os.makedirs(os.path.join(root, 'empty'))
    os.makedirs(os.path.join(root, 'sub', 'deeper'))
    for name in order:
        with open(os.path.join(root, 'sub', name + '.dat'), 'wb') as handle:
            handle.write(name.encode() * 700)
    with open(os.path.join(root, 'toc.dat'), 'wb') as handle:
        handle.write(b'toc')
    open(os.path.join(root, 'sub', 'deeper', 'zero'), 'wb').close()
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), (1700000000, 1700000000))
    return root


def tree_bytes(root):
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        digests = {}
        data = b''.join(bytes(chunk) for chunk in tarstream.stream(fd, tarstream.scan(fd), digests))
        return data + bytes(tarstream.end_blocks()), digests
    finally:
        os.close(fd)


def test_the_tree_stream_is_deterministic_whatever_the_creation_order(tmp_path):
    first, digests = tree_bytes(make_tree(str(tmp_path / 'one'), order=('a', 'b')))
    second, _digests = tree_bytes(make_tree(str(tmp_path / 'two'), order=('b', 'a')))
    os.utime(str(tmp_path / 'two' / 'sub'), (1, 1))           # a directory's mtime is not part of the stream
    assert first == second == tree_bytes(str(tmp_path / 'two'))[0]
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
    assert sorted(digests) == ['sub/a.dat', 'sub/b.dat', 'sub/deeper/zero', 'toc.dat']
    os.utime(str(tmp_path / 'two' / 'toc.dat'), (1700000001, 1700000001))
    assert tree_bytes(str(tmp_path / 'two'))[0] != first       # a file's mtime is


def test_tar_reads_the_stream_and_the_receivers_tree_hash_is_the_runners(tmp_path):
    root = make_tree(str(tmp_path / 'tree'))
    data, digests = tree_bytes(root)
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:') as archive:
        names = archive.getnames()
        assert archive.getmember('sub/a.dat').mtime == 1700000000 and archive.getmember('sub/a.dat').uid == 0
    assert names == ['empty', 'sub', 'sub/a.dat', 'sub/b.dat', 'sub/deeper', 'sub/deeper/zero', 'toc.dat']
    listing = subprocess.run(['tar', '-tf', '-'], input=data, capture_output=True, check=True).stdout.decode().split()
    assert listing == ['empty/', 'sub/', 'sub/a.dat', 'sub/b.dat', 'sub/deeper/', 'sub/deeper/zero', 'toc.dat']
    from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.hashing import tree_sha256
    assert tree_sha256(dict((rel, d.hexdigest()) for rel, d in digests.items())) == hash_tree(root).hexdigest()


def test_symlinks_fifos_and_bad_names_never_travel(tmp_path):
    root = make_tree(str(tmp_path / 'tree'))
    os.symlink('/etc/shadow', os.path.join(root, 'sub', 'evil'))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(frames.TransferError, match='sub/evil is a symlink'):
            tarstream.scan(fd)
        os.unlink(os.path.join(root, 'sub', 'evil'))
        os.mkfifo(os.path.join(root, 'pipe'))
        with pytest.raises(frames.TransferError, match='pipe is a FIFO'):
            tarstream.scan(fd)
    finally:
        os.close(fd)
    for bad in ('../x', '/abs', 'a//b', 'a/./b', 'x\ny', 'a.dbfleet-incomplete'):
        assert tarstream.name_problem(bad)


class Collect:
    def __init__(self):
        self.events = []

    def directory_member(self, rel):
        self.events.append(('dir', rel))

    def file_start(self, rel, size, mtime):
        self.events.append(('file', rel, size, mtime))
        self.data = []

    def file_data(self, view):
        self.data.append(bytes(view))

    def file_end(self):
        self.events.append(('end', b''.join(self.data)))


def test_the_parser_takes_any_chunking(tmp_path):
    data, _digests = tree_bytes(make_tree(str(tmp_path / 'tree')))
    whole, bytewise = Collect(), Collect()
    parser = tarstream.TreeParser(whole)
    parser.feed(memoryview(data))
    parser.finish()
    parser = tarstream.TreeParser(bytewise)
    for offset in range(0, len(data), 7):
        parser.feed(memoryview(data[offset:offset + 7]))
    parser.finish()
    assert whole.events == bytewise.events
    assert ('file', 'sub/a.dat', 700, 1700000000) in whole.events and ('end', b'a' * 700) in whole.events


def crafted(member_type, name='evil', linkname=''):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = member_type, linkname
    return info.tobuf(tarfile.USTAR_FORMAT, 'utf-8', 'strict') + bytes(1024)


@pytest.mark.parametrize('data,words', [
    (crafted(tarfile.SYMTYPE, linkname='/etc/shadow'), 'neither a directory nor a regular file'),
    (crafted(tarfile.LNKTYPE, linkname='/etc/shadow'), 'neither a directory nor a regular file'),
    (crafted(tarfile.REGTYPE, name='../../etc/cron.d/x'), 'not a plain relative path'),
    (crafted(tarfile.REGTYPE, name='/etc/passwd'), 'not a plain relative path'),
    (b'\x01' * 512, 'damaged'),
])
def test_the_parser_refuses_what_a_hostile_sender_could_send(data, words):
    with pytest.raises(frames.TransferError, match=words):
        tarstream.TreeParser(Collect()).feed(memoryview(data))


# --------------------------------------------------------------------------
# a whole copy between two threads: resume decision, verification, landing
# --------------------------------------------------------------------------

def job(dest, path, kind='file', **extra):
    out = dict(transferjob.defaults(transferjob.RECEIVE), **transferjob.defaults(transferjob.SEND))
    out.update(mode='relay', kind=kind, dest=dest, path=path, owner=[os.getuid(), os.getgid()], bwlimit=0, **extra)
    return out


def copy(tmp_path, src, dest, kind='file', channel_wrap=None, **extra):
    """Run sender and receiver over a socketpair; (receiver result, sender result)."""
    j = job(dest, src, kind, **extra)
    a, b, _socks = pair()
    if channel_wrap:
        b = channel_wrap(b)
    received, sent = {}, {}

    def receive_side():
        landing = Landing(dest, kind, None, (os.getuid(), os.getgid()))
        try:
            landing.open()
            start = transfer.receive(j, a, landing, received)
            received['backup'] = landing.publish(start.get('mtime') if kind == 'file' else None)
            a.send_message(frames.JSON, {'type': 'verdict', 'ok': True, 'sha256': received['sha256']})
            received['status'] = 'ok'
        except transfer.Mismatch as exc:
            landing.discard()
            received['status'], received['error'] = 'mismatch', str(exc)
            a.send_message(frames.JSON, {'type': 'verdict', 'ok': False, 'error': str(exc)})
        finally:
            landing.close()

    thread = threading.Thread(target=receive_side)
    thread.start()
    source = transfer.Source(src, kind)
    try:
        transfer.send(j, b, source, sent)
        sent['status'] = 'ok'
    except frames.TransferError as exc:
        sent['status'], sent['error'] = 'failed', str(exc)
    finally:
        source.close()
    thread.join(30)
    return received, sent


def data_file(path, size=3 * MIB + 12345):
    data = os.urandom(size)
    with open(path, 'wb') as handle:
        handle.write(data)
    return data


def test_a_copy_is_verified_and_published_with_the_sources_mtime(tmp_path):
    data = data_file(str(tmp_path / 'src'))
    os.utime(str(tmp_path / 'src'), (1700000000, 1700000000))
    received, sent = copy(tmp_path, str(tmp_path / 'src'), str(tmp_path / 'dst'))
    assert received['status'] == sent['status'] == 'ok'
    assert received['sha256'] == sent['sha256'] == hashlib.sha256(data).hexdigest()
    assert received['resumed'] == 0 and sent['sent'] == len(data)
    assert (tmp_path / 'dst').read_bytes() == data and os.stat(str(tmp_path / 'dst')).st_mtime == 1700000000
    assert oct(os.stat(str(tmp_path / 'dst')).st_mode & 0o777) == '0o640'
    assert not (tmp_path / partial_name('dst')).exists()


def test_a_kept_partial_that_matches_is_extended(tmp_path):
    data = data_file(str(tmp_path / 'src'))
    (tmp_path / partial_name('dst')).write_bytes(data[:MIB + 7])
    os.chmod(str(tmp_path / partial_name('dst')), 0o600)
    received, sent = copy(tmp_path, str(tmp_path / 'src'), str(tmp_path / 'dst'))
    assert received['status'] == 'ok' and received['resumed'] == MIB + 7
    assert sent['sent'] == len(data) - MIB - 7 and sent['partial_note'] is None
    assert (tmp_path / 'dst').read_bytes() == data


@pytest.mark.parametrize('partial,words', [
    (lambda data: data[:100] + b'X' + data[101:MIB], 'is not the source'),
    (lambda data: data + b'more', 'longer than the source'),
])
def test_a_kept_partial_that_does_not_match_is_discarded_and_everything_sent(tmp_path, partial, words):
    data = data_file(str(tmp_path / 'src'))
    (tmp_path / partial_name('dst')).write_bytes(partial(data))
    os.chmod(str(tmp_path / partial_name('dst')), 0o600)
    received, sent = copy(tmp_path, str(tmp_path / 'src'), str(tmp_path / 'dst'))
    assert received['status'] == 'ok' and received['resumed'] == 0 and sent['sent'] == len(data)
    assert words in sent['partial_note'] and words in received['partial_note']
    assert (tmp_path / 'dst').read_bytes() == data


def test_a_partial_someone_else_could_have_planted_is_never_written_through(tmp_path):
    data = data_file(str(tmp_path / 'src'))
    victim = tmp_path / 'victim'
    victim.write_bytes(data[:MIB])
    os.link(str(victim), str(tmp_path / partial_name('dst')))        # a hard link to another file
    received, _sent = copy(tmp_path, str(tmp_path / 'src'), str(tmp_path / 'dst'))
    assert received['status'] == 'ok' and received['resumed'] == 0
    assert victim.read_bytes() == data[:MIB]


class FlipOneByte:
    """A channel wrapper that corrupts the data in transit (the sender's side of the wire)."""

    def __init__(self, channel, at):
        self.channel, self.at, self.sent = channel, at, 0

    def __getattr__(self, name):
        return getattr(self.channel, name)

    def send_frame(self, kind, payload):
        if kind == frames.DATA and self.sent <= self.at < self.sent + len(payload):
            payload = bytearray(payload)
            payload[self.at - self.sent] ^= 0xFF
        if kind == frames.DATA:
            self.sent += len(payload)
        self.channel.send_frame(kind, payload)


def test_bytes_flipped_in_transit_are_detected_and_nothing_is_kept(tmp_path):
    data_file(str(tmp_path / 'src'))
    (tmp_path / 'dst').write_bytes(b'the previous copy')
    received, sent = copy(tmp_path, str(tmp_path / 'src'), str(tmp_path / 'dst'),
                          channel_wrap=lambda channel: FlipOneByte(channel, 2 * MIB + 5))
    assert received['status'] == 'mismatch' and 'the SHA-256 of what arrived is' in received['error']
    assert sent['status'] == 'failed' and 'the receiver refused the copy' in sent['error']
    assert (tmp_path / 'dst').read_bytes() == b'the previous copy'
    assert not (tmp_path / partial_name('dst')).exists()


def test_a_tree_arrives_verified_and_resumes_from_its_complete_members(tmp_path):
    root = make_tree(str(tmp_path / 'tree'))
    received, sent = copy(tmp_path, root, str(tmp_path / 'copy'), kind='tree')
    assert received['status'] == 'ok' and received['tree_sha256'] == sent['tree_sha256'] == hash_tree(root).hexdigest()
    assert os.path.isdir(str(tmp_path / 'copy' / 'empty')) and received['files'] == 4
    # an interrupted copy: the complete members and an incomplete file are kept; the next copy verifies and extends
    partial = tmp_path / partial_name('again')
    os.makedirs(str(partial / 'sub'), mode=0o700)
    os.chmod(str(partial), 0o700)
    os.mkdir(str(partial / 'empty'))
    (partial / 'sub' / 'a.dat').write_bytes(b'a' * 700)
    os.utime(str(partial / 'sub' / 'a.dat'), (1700000000, 1700000000))
    (partial / 'sub' / ('b.dat' + tarstream.INCOMPLETE)).write_bytes(b'b' * 10)
    received, sent = copy(tmp_path, root, str(tmp_path / 'again'), kind='tree')
    assert received['status'] == 'ok' and received['resumed'] == 512 * 2 + 1536 and received['tree_sha256'] == sent['tree_sha256']
    assert sent['sent'] == sent['bytes'] - received['resumed']


# --------------------------------------------------------------------------
# the one-time TLS identity and the token proof
# --------------------------------------------------------------------------

def tls_pair(token_server, token_client, pin=None):
    context, fingerprint = tlsonce.server_context()
    listener = socket.create_server(('127.0.0.1', 0))
    outcome = {}

    def serve():
        raw, _peer = listener.accept()
        try:
            tls = context.wrap_socket(raw, server_side=True)
            outcome['server'] = tlsonce.authenticate_server(frames.socket_channel(tls, 'the sender'), token_server, fingerprint)
        except (frames.TransferError, OSError, ssl.SSLError) as exc:
            outcome['server'] = 'error: %s' % exc
        finally:
            raw.close()

    thread = threading.Thread(target=serve)
    thread.start()
    tls = tlsonce.client_context().wrap_socket(socket.create_connection(listener.getsockname()))
    try:
        tlsonce.check_pin(tls, pin or fingerprint, 'the receiver')
        tlsonce.authenticate_client(frames.socket_channel(tls, 'the receiver'), token_client, pin or fingerprint)
        outcome['client'] = 'ok'
    except frames.TransferError as exc:
        outcome['client'] = str(exc)
    finally:
        tls.close()
        thread.join(10)
        listener.close()
    return outcome, fingerprint


def test_both_ends_prove_the_token_over_a_pinned_one_time_certificate():
    token = os.urandom(32).hex()
    outcome, fingerprint = tls_pair(token, token)
    assert outcome == {'server': None, 'client': 'ok'} and len(fingerprint) == 64


def test_a_sender_with_the_wrong_token_is_refused_and_a_receiver_without_it_too():
    outcome, _fp = tls_pair(os.urandom(32).hex(), os.urandom(32).hex())
    assert 'could not prove it holds this transfer' in outcome['client']   # the honest sender refuses the receiver
    assert outcome['server'] is not None                                   # ...and the receiver gets no proof


def test_a_listener_with_another_certificate_is_refused_before_anything_is_sent():
    token = os.urandom(32).hex()
    outcome, _fp = tls_pair(token, token, pin='0' * 64)
    assert 'not the one-time certificate' in outcome['client'] and 'nothing sent' in outcome['client']


# --------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------

def test_a_job_is_checked_whole_and_never_needs_a_secret_on_the_command_line(tmp_path):
    good = dict(transferjob.defaults(transferjob.SEND), mode='direct', kind='file', dest='/srv/x', path='/srv/y',
                connect='127.0.0.14', port=4000, fingerprint='a' * 64, token='b' * 64)
    assert transferjob.job_errors(good, transferjob.SEND) == []
    bad = dict(good, dest='relative\n', token='short', fingerprint=None, port=0, bwlimit=-1, extra=1)
    errors = ' / '.join(transferjob.job_errors(bad, transferjob.SEND))
    for words in ('dest must be an absolute path', 'needs token', 'needs fingerprint', "unknown key 'extra'", 'bwlimit'):
        assert words in errors
    receiver = dict(transferjob.defaults(transferjob.RECEIVE), mode='relay', kind='tree', dest='/srv/x', dbfleet_mode='plan',
                    file_mode=0o4755)
    errors = ' / '.join(transferjob.job_errors(receiver, transferjob.RECEIVE))
    assert 'a host in plan mode never receives' in errors and 'without setuid' in errors


def test_a_second_landing_on_a_partial_in_use_fails_in_words_and_leaves_the_first_ones_partial_alone(tmp_path):
    for kind in ('file', 'tree'):
        dest = str(tmp_path / ('dst-' + kind))
        first = Landing(dest, kind, None, (os.getuid(), os.getgid()))
        first.open()
        if kind == 'file':
            first.write(memoryview(b'first transfer'))
        else:
            first.directory_member('kept')
        second = Landing(dest, kind, None, (os.getuid(), os.getgid()))
        with pytest.raises(frames.TransferError, match='another transfer to %s is running' % dest):
            second.open()
        second.discard()
        second.close()
        assert (tmp_path / partial_name(os.path.basename(dest))).exists()
        first.close()

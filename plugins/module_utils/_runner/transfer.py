# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host-to-host copy: the sender's and the receiver's side of the conversation (see ``frames``).

The receiver offers what it kept from an interrupted transfer (``offer``:
how many stream bytes; ``partial``: their SHA-256, computed by reading them).
The sender hashes the same prefix of its source and resumes after it only when
the two match; otherwise it starts from nothing and says why.  Then the data,
hashed on both ends while it streams, the sender's size and SHA-256 (``E``),
and the receiver's ``verdict``: it publishes the copy only when its own hash
of every byte (kept and new) equals the sender's.  A mismatch removes the
partial: the destination never keeps a bad copy.  An interrupted stream keeps
it, for the next transfer to verify and extend.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import os
import select
import socket
import stat
import sys
import time
import traceback

from .frames import CHUNK, DATA, END, JSON, MAX_DATA, PeerAborted, StreamEnded, TransferError, pipe_channel, socket_channel
from .hashing import StreamDigest, tree_sha256
from .landing import Landing
from .log import clean_exc, fs_hint
from .tarstream import TreeParser, end_blocks, scan, stream
from .tlsonce import authenticate_client, authenticate_server, check_pin, client_context, server_context

EXIT_UNREACHABLE = 3          # the sender could not reach the receiver: the controller may fall back to relay
MAX_REFUSED = 20              # connections a direct receiver refuses before it gives up
PROGRESS_EVERY = 5            # seconds between the receiver's progress events (the controller's sign of life)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_EMPTY_SHA256 = StreamDigest().hexdigest()


class Unreachable(TransferError):
    """The sender could not connect to the receiver's one-time port."""


def _sha(digest):
    return digest.hexdigest()


# -- the source ----------------------------------------------------------------------------------------
class Source:
    """What a sender reads: a regular file or a directory tree, checked to be what the module saw."""

    def __init__(self, path, kind, source_id=None):
        self.path, self.kind = path, kind
        flags = _DIR_FLAGS if kind == "tree" else _READ_FLAGS
        try:
            self.fd = os.open(path, flags)
        except OSError as exc:
            raise TransferError("cannot open %s: %s" % (path, exc))
        info = os.fstat(self.fd)
        if source_id is not None and (info.st_dev, info.st_ino) != tuple(source_id):
            os.close(self.fd)
            raise TransferError("%s is not the file that was checked before the transfer (it was replaced): nothing sent" % path)
        if kind == "file" and not stat.S_ISREG(info.st_mode):
            os.close(self.fd)
            raise TransferError("%s is not a regular file" % path)
        self.mtime = int(info.st_mtime)
        self.size = info.st_size if kind == "file" else None
        self.entries = scan(self.fd) if kind == "tree" else None
        self.files = {}

    def chunks(self):
        """The source's stream from its first byte (memoryviews valid until the next one)."""
        self.files = {}
        if self.kind == "tree":
            yield from stream(self.fd, self.entries, self.files)
            yield end_blocks()
            return
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        os.lseek(self.fd, 0, os.SEEK_SET)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        left = self.size
        while left:
            count = os.readv(self.fd, [view[:min(left, CHUNK)]])
            if not count:
                raise TransferError("%s shrank while it was being sent (%d bytes when the transfer started): send a "
                                    "file nothing writes to" % (self.path, self.size))
            left -= count
            yield view[:count]

    def tree_sha256(self):
        return tree_sha256(dict((rel, digest.hexdigest()) for rel, digest in self.files.items()))

    def close(self):
        os.close(self.fd)


def _prefix(chunks, length, digest):
    """Hash the first ``length`` bytes of ``chunks`` into ``digest``; return what is left of the chunk that crossed it."""
    while digest.size < length:
        try:
            chunk = next(chunks)
        except StopIteration:
            return None
        take = min(len(chunk), length - digest.size)
        digest.update(chunk[:take])
        if take < len(chunk):
            return chunk[take:]
    return None


# -- channels ------------------------------------------------------------------------------------------
def connect(job):
    """The sender's channel: TLS to the pinned one-time listener (direct), or stdin/stdout (relay)."""
    if job["mode"] == "relay":
        return pipe_channel(sys.stdin.buffer, sys.stdout.fileno(), "the receiver (relayed by the controller)")
    where = "%s:%d" % (job["connect"], job["port"])
    try:
        raw = socket.create_connection((job["connect"], job["port"]), timeout=job["connect_timeout"])
    except (OSError, socket.timeout) as exc:
        raise Unreachable("cannot connect to %s: %s" % (where, exc))
    try:
        tls = client_context().wrap_socket(raw)
    except (OSError, ValueError) as exc:
        raw.close()
        raise Unreachable("TLS with %s failed: %s" % (where, exc))
    tls.settimeout(job["timeout"])
    channel = socket_channel(tls, "the receiver at %s" % where)
    try:
        check_pin(tls, job["fingerprint"], where)
        authenticate_client(channel, job["token"], job["fingerprint"])
    except TransferError:
        channel.close(clean=False)
        raise
    return channel


def listen(job, events, refused):
    """The receiver's side of the direct channel: listen once, say where, accept the one sender that proves the token.

    Connections that cannot prove it are refused (and listed in ``refused``) while the wait lasts.
    """
    context, pinned = server_context()
    try:
        server = socket.create_server((job["listen"], job["port"]), backlog=4)
    except OSError as exc:
        raise Unreachable("cannot listen on %s:%s: %s" % (job["listen"], job["port"], exc))
    try:
        port = server.getsockname()[1]
        events({"event": "listening", "address": job["listen"], "port": port, "fingerprint": pinned})
        deadline = time.monotonic() + job["connect_timeout"] + job["timeout"]   # the sender still has to be started
        stdin = sys.stdin.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unreachable("no sender connected to port %d within %s s%s" % (
                    port, job["connect_timeout"] + job["timeout"], "; refused: " + "; ".join(refused) if refused else ""))
            ready, _w, _x = select.select([server, stdin], [], [], left)
            if stdin in ready and not os.read(stdin, 4096):
                raise TransferError("the controller went away before the sender connected")
            if server not in ready:
                continue
            raw, peer = server.accept()
            where = "%s:%s" % peer[:2]
            raw.settimeout(15)
            try:
                tls = context.wrap_socket(raw, server_side=True)
                channel = socket_channel(tls, "the sender at %s" % where)
                reason = authenticate_server(channel, job["token"], pinned)
            except (TransferError, OSError, ValueError) as exc:
                reason = "no TLS or no proof (%s)" % exc
                channel = None
                raw.close()
            if reason is None:
                tls.settimeout(job["timeout"])
                return channel
            refused.append("%s: %s" % (where, reason))
            events({"event": "refused", "peer": where, "reason": reason})
            if channel is not None:
                channel.abort("refused: %s" % reason)
                channel.close(clean=False)
            if len(refused) >= MAX_REFUSED:
                raise TransferError("refused %d connections that could not prove the one-time token; giving up: %s"
                                    % (len(refused), "; ".join(refused[-3:])))
    finally:
        server.close()


def _throttle(started, sent, limit):
    if limit:
        ahead = sent / float(limit) - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


# -- the sender ----------------------------------------------------------------------------------------
def send(job, channel, source, result):
    """Resume or restart, stream, and get the receiver's verdict; fills ``result``."""
    offer = channel.recv_message("offer")
    kept = int(offer.get("partial") or 0)
    digest = StreamDigest()
    chunks = source.chunks()
    carry = _prefix(chunks, kept, digest) if kept and job["resume"] else None
    offset, note = 0, None
    if kept:
        theirs = channel.recv_message("partial").get("sha256")
        if not job["resume"]:
            note = "resume is off: the kept partial (%d bytes) was discarded" % kept
        elif digest.size < kept:
            note = "the kept partial (%d bytes) is longer than the source (%d bytes): discarded" % (kept, digest.size)
        elif theirs != _sha(digest):
            note = ("the kept partial (%d bytes, SHA-256 %s) is not the source's first %d bytes (%s): discarded, sent "
                    "from the start" % (kept, theirs, kept, _sha(digest)))
        else:
            offset = kept
    if not offset:
        digest, carry, chunks = StreamDigest(), None, source.chunks()
    result.update(resumed=offset, partial_note=note)
    channel.send_message(JSON, {"type": "start", "offset": offset, "prefix_sha256": _sha(digest) if offset else _EMPTY_SHA256,
                                "kind": source.kind, "size": source.size, "mtime": source.mtime, "note": note})
    started, sent = time.monotonic(), 0
    pending = [carry] if carry is not None else []
    for chunk in itertools.chain(pending, chunks):
        for start in range(0, len(chunk), MAX_DATA):
            piece = chunk[start:start + MAX_DATA]
            digest.update(piece)
            channel.send_frame(DATA, piece)
            sent += len(piece)
            _throttle(started, sent, job["bwlimit"])
    result.update(bytes=digest.size, sent=sent, sha256=_sha(digest))
    end = {"size": digest.size, "sha256": _sha(digest)}
    if source.kind == "tree":
        result["tree_sha256"] = end["tree_sha256"] = source.tree_sha256()
        end["files"] = dict((rel, d.hexdigest()) for rel, d in source.files.items())
        result["files"] = len(end["files"])
    channel.send_message(END, end)
    verdict = channel.recv_message("verdict")
    if not verdict.get("ok"):
        raise TransferError("the receiver refused the copy: %s" % (verdict.get("error") or "no reason given"))
    result["receiver_sha256"] = verdict.get("sha256")


# -- the receiver --------------------------------------------------------------------------------------
def receive(job, channel, landing, result, events=None):
    """Offer the kept partial, take the stream, verify; fills ``result`` and returns the ``start`` message."""
    digest, kept = StreamDigest(), 0
    alive = _heartbeat(events)
    if job["resume"] and landing.kind == "file":
        size = os.fstat(landing.fd).st_size
        channel.send_message(JSON, {"type": "offer", "partial": size})   # the sender hashes its prefix meanwhile
        if size:
            kept, digest = landing.kept_digest(alive)
            channel.send_message(JSON, {"type": "partial", "size": kept, "sha256": _sha(digest)})
    elif job["resume"]:
        kept, digest = landing.kept_digest(alive)
        channel.send_message(JSON, {"type": "offer", "partial": kept})
        if kept:
            channel.send_message(JSON, {"type": "partial", "size": kept, "sha256": _sha(digest)})
    else:
        channel.send_message(JSON, {"type": "offer", "partial": 0})
    start = channel.recv_message("start")
    offset = start.get("offset") or 0
    if offset and (offset != kept or start.get("prefix_sha256") != _sha(digest)):
        raise TransferError("the sender wants to resume at byte %r, which is not the verified partial (%d bytes)" % (offset, kept))
    if not offset:
        landing.restart()
        digest = StreamDigest()
    result.update(resumed=offset, partial_note=start.get("note"))
    parser = TreeParser(landing) if landing.kind == "tree" else None
    buf = bytearray(MAX_DATA)
    while True:
        kind, length = channel.recv_header()
        if kind == DATA:
            view = memoryview(buf)[:length]
            channel.read_exact(view)
            digest.update(view)
            alive(digest.size)
            if parser is None:
                landing.write(view)
            else:
                parser.feed(view)
            continue
        message = channel.recv_object(length)
        if kind == END:
            break
        if kind == JSON:
            raise TransferError("the sender sent %r in the middle of the data" % message.get("type"))
        raise PeerAborted("the sender gave up: %s" % (message.get("error") or "no reason given"))
    result.update(bytes=digest.size, received=digest.size - offset, sha256=_sha(digest))
    _verify(start, message, digest, landing, parser, result)
    return start


def _heartbeat(events):
    """A function of a byte count that says ``progress`` (the controller's sign of life) every few seconds."""
    said = [time.monotonic()]

    def alive(count):
        if events is not None and time.monotonic() - said[0] >= PROGRESS_EVERY:
            said[0] = time.monotonic()
            events({"event": "progress", "bytes": count})
    return alive


def _verify(start, end, digest, landing, parser, result):
    """Raise :class:`Mismatch` unless what arrived is, byte for byte, what the sender says it sent."""
    problems = []
    if digest.size != end.get("size") or (start.get("size") is not None and digest.size != start["size"]):
        problems.append("%d bytes arrived, the sender sent %s (its file has %s)" % (digest.size, end.get("size"), start.get("size")))
    if _sha(digest) != end.get("sha256"):
        problems.append("the SHA-256 of what arrived is %s, the sender's is %s" % (_sha(digest), end.get("sha256")))
    if parser is not None:
        try:
            parser.finish()
        except TransferError as exc:
            problems.append(str(exc))
        ours = dict((rel, d.hexdigest()) for rel, d in landing.files.items())
        theirs = end.get("files") or {}
        bad = sorted(rel for rel in set(ours) | set(theirs) if ours.get(rel) != theirs.get(rel))
        if bad:
            problems.append("%d file(s) differ from the sender's: %s" % (len(bad), ", ".join(bad[:5])))
        result["tree_sha256"] = tree_sha256(ours)
        result["files"] = len(ours)
        if result["tree_sha256"] != end.get("tree_sha256"):
            problems.append("tree SHA-256 %s, the sender's is %s" % (result["tree_sha256"], end.get("tree_sha256")))
    if problems:
        raise Mismatch("; ".join(problems))


class Mismatch(TransferError):
    """What arrived is not what was sent: the partial is removed."""


def run_receiver(job, events):
    """The whole receiving side; returns ``(exit code, result)``."""
    started = time.monotonic()
    result = {"event": "result", "role": "receive", "status": "failed", "dest": job["dest"], "mode": job["mode"], "refused": []}
    landing = Landing(job["dest"], job["kind"], job.get("dir_id"), tuple(job["owner"]), job["file_mode"], job["dir_mode"],
                      job["dbfleet_mode"], job.get("backup_dir"))
    channel = None
    code = 1
    try:
        landing.open()
        if job["mode"] == "direct":
            channel = listen(job, events, result["refused"])
        else:
            channel = pipe_channel(sys.stdin.buffer, sys.stdout.fileno(), "the sender (relayed by the controller)")
        start = receive(job, channel, landing, result, events)
        result["backup"] = landing.publish(start.get("mtime") if job["kind"] == "file" else None)
        result["status"] = "ok"
        channel.send_message(JSON, {"type": "verdict", "ok": True, "sha256": result["sha256"]})
        code = 0
    except Mismatch as exc:
        landing.discard()
        result.update(error="%s: nothing kept at %s (the partial was removed)" % (exc, job["dest"]), corrupted=True)
        _tell(channel, str(exc))
    except (StreamEnded, PeerAborted) as exc:
        result.update(status="interrupted", error=str(exc), partial_kept=landing.written)
    except Unreachable as exc:
        result.update(error=str(exc))
        code = EXIT_UNREACHABLE
    except TransferError as exc:
        landing.discard()
        result.update(error=str(exc))
        _tell(channel, str(exc))
    except OSError as exc:
        result.update(error="writing %s failed: %s%s" % (job["dest"], exc, fs_hint(exc)))
        _tell(channel, result["error"])
    except Exception as exc:  # pylint: disable=broad-except  # said in the result, with the traceback for -vvv
        result.update(error="the receiver failed unexpectedly: %s" % clean_exc(exc), traceback=traceback.format_exc())
        _tell(channel, result["error"])
    finally:
        result["seconds"] = round(time.monotonic() - started, 3)
        landing.close()
        if channel is not None:
            channel.close(clean=code == 0)
    return code, result


def _tell(channel, error):
    if channel is not None:
        try:
            channel.send_message(JSON, {"type": "verdict", "ok": False, "error": error})
        except TransferError:
            pass


def run_sender(job, events):
    """The whole sending side; returns ``(exit code, result)``."""
    started = time.monotonic()
    result = {"event": "result", "role": "send", "status": "failed", "path": job["path"], "mode": job["mode"]}
    source = channel = None
    code = 1
    try:
        source = Source(job["path"], job["kind"], job.get("source_id"))
        channel = connect(job)
        events({"event": "connected", "mode": job["mode"]})
        send(job, channel, source, result)
        result["status"] = "ok"
        code = 0
    except Unreachable as exc:
        result.update(status="unreachable", error=str(exc))
        code = EXIT_UNREACHABLE
    except TransferError as exc:
        result.update(error=str(exc))
        if channel is not None and not isinstance(exc, (StreamEnded, PeerAborted)):
            channel.abort(str(exc))
    except OSError as exc:
        result.update(error="reading %s failed: %s" % (job["path"], exc))
        if channel is not None:
            channel.abort(result["error"])
    except Exception as exc:  # pylint: disable=broad-except  # said in the result, with the traceback for -vvv
        result.update(error="the sender failed unexpectedly: %s" % clean_exc(exc), traceback=traceback.format_exc())
        if channel is not None:
            channel.abort(result["error"])
    finally:
        result["seconds"] = round(time.monotonic() - started, 3)
        if source is not None:
            source.close()
        if channel is not None:
            channel.close(clean=code == 0)
    return code, result

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The framing of a transfer stream: what ``dbfleet-transfer-send`` and ``-receive`` say to each other.

A frame is a kind byte, a 4-byte big-endian length and the payload:

* ``J`` a JSON object (a control message: offer, partial, start, verdict);
* ``D`` data bytes (at most :data:`MAX_DATA` each);
* ``E`` the end of the data, a JSON object with the stream's size and SHA-256;
* ``X`` the peer gave up, a JSON object with its error.

Every read is exact: a stream that ends early (a TLS connection closed without
``close_notify``, a killed ssh) raises :class:`StreamEnded` with how much
arrived, never a silently short file; the end-to-end hash decides the rest.
The same frames travel over a TLS socket (direct) or the programs' stdin and
stdout (relay through the controller).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import struct

from .fsutil import write_all

HEADER = struct.Struct(">cI")
JSON, DATA, END, ABORT = b"J", b"D", b"E", b"X"
KINDS = (JSON, DATA, END, ABORT)
MAX_DATA = 4 << 20            # the largest data frame a receiver accepts
CHUNK = 1 << 20               # what a sender puts in one data frame
MAX_JSON = 1 << 20
PROTOCOL = 1


class TransferError(Exception):
    """A transfer failed; the message says what happened, in words."""


class StreamEnded(TransferError):
    """The peer's stream ended (or the connection broke) before the protocol said it would."""


class PeerAborted(TransferError):
    """The peer sent an ``X`` frame: it gave up, and said why."""


class Channel:
    """Frames over a byte stream: ``recv_into(view) -> int`` and ``send(view)`` (sends everything)."""

    def __init__(self, recv_into, send, what, close=None):
        self._recv_into = recv_into
        self._send = send
        self._close = close
        self.what = what
        self.received = 0
        self._header = bytearray(HEADER.size)

    def read_exact(self, view):
        """Fill ``view`` (a memoryview) completely, or raise :class:`StreamEnded`."""
        got, wanted = 0, len(view)
        while got < wanted:
            try:
                count = self._recv_into(view[got:])
            except socket.timeout:
                raise StreamEnded("no data from %s for too long (after %d bytes): the peer stalled or the network "
                                  "dropped the connection" % (self.what, self.received))
            except (OSError, ValueError) as exc:
                raise StreamEnded("the connection to %s broke after %d bytes: %s" % (self.what, self.received, exc))
            if not count:
                raise StreamEnded("the stream from %s ended after %d bytes, in the middle of a frame (the peer stopped or "
                                  "was killed)" % (self.what, self.received))
            got += count
            self.received += count

    def recv_header(self):
        """``(kind, length)`` of the next frame."""
        self.read_exact(memoryview(self._header))
        kind, length = HEADER.unpack(bytes(self._header))
        if kind not in KINDS:
            raise TransferError("%s sent a frame of unknown kind %r: not a dbfleet transfer stream, or a corrupted one"
                                % (self.what, kind))
        limit = MAX_DATA if kind == DATA else MAX_JSON
        if length > limit:
            raise TransferError("%s sent a %s frame of %d bytes (at most %d): a corrupted stream" % (self.what, kind, length, limit))
        return kind, length

    def recv_object(self, length):
        """The JSON object payload of a frame of ``length`` bytes."""
        payload = bytearray(length)
        self.read_exact(memoryview(payload))
        try:
            message = json.loads(payload.decode("utf-8"))
        except ValueError:
            raise TransferError("%s sent a control message that is not JSON: a corrupted stream" % self.what)
        if not isinstance(message, dict):
            raise TransferError("%s sent a control message that is not a JSON object" % self.what)
        return message

    def recv_message(self, expected):
        """The next ``J`` message, which must have ``type`` ``expected``; an ``X`` frame raises :class:`PeerAborted`."""
        kind, length = self.recv_header()
        if kind in (JSON, ABORT):
            message = self.recv_object(length)
            if kind == ABORT:
                raise PeerAborted("%s gave up: %s" % (self.what, message.get("error") or "no reason given"))
            if message.get("type") == expected:
                return message
            raise TransferError("%s sent %r where %r was expected" % (self.what, message.get("type"), expected))
        raise TransferError("%s sent a %s frame where the %r message was expected" % (self.what, kind.decode("ascii"), expected))

    def send_frame(self, kind, payload):
        """Send one frame (``payload``: bytes or memoryview)."""
        try:
            self._send(memoryview(HEADER.pack(kind, len(payload))))
            if len(payload):
                self._send(memoryview(payload))
        except (OSError, ValueError) as exc:
            raise StreamEnded("cannot send to %s: %s (the peer stopped or the connection broke)" % (self.what, exc))

    def send_message(self, kind, message):
        """Send a JSON frame (``kind`` JSON, END or ABORT)."""
        self.send_frame(kind, json.dumps(message, sort_keys=True).encode("utf-8"))

    def abort(self, error):
        """Tell the peer we give up (best effort: the connection may be gone already)."""
        try:
            self.send_message(ABORT, {"error": error})
        except TransferError:
            pass

    def close(self, clean=True):
        """Close; ``clean`` ends a TLS session with close_notify (after a good transfer), else just drops it."""
        if self._close is not None:
            self._close(clean)


def socket_channel(sock, what):
    """A :class:`Channel` over a (TLS) socket."""
    def close(clean):
        try:
            if clean and hasattr(sock, "unwrap"):
                sock.settimeout(2)    # a peer that is not closing too must not hold us
                sock.unwrap()         # close_notify: the peer sees a clean end, not a ragged EOF
        except (OSError, ValueError):
            pass
        sock.close()
    return Channel(sock.recv_into, sock.sendall, what, close)


def pipe_channel(reader, out_fd, what):
    """A :class:`Channel` over a binary reader (stdin's buffer, already past the job line) and an output fd."""
    def send(view):
        write_all(out_fd, view)

    def close(_clean):
        try:
            os.close(out_fd)
        except OSError:
            pass
    return Channel(reader.readinto, send, what, close)

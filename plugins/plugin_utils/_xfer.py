# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's part of one copy: start the receiver and the sender, wire them, read what they say.

``direct``: the receiver listens on a one-time TLS port and says where (``listening``: port and
certificate fingerprint); the sender gets that, with the token, in its job and connects by itself. The
controller carries only the jobs and the programs' events.

``relay``: the sender's stdout is the receiver's stdin through one kernel pipe between the two SSH
clients on the controller (each SSH connection of its own, see ``_peer.program_argv``); the few control
messages going back (offer, partial, verdict) are pumped by a thread. The controller never holds more of
the file than the pipe buffers do, on disk or in memory.

Each program writes ``@dbfleet {JSON}`` event lines on stderr (``listening``, ``progress``, ``refused``,
``result``); anything else on stderr is kept, the last lines, for the error message.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import threading
import time

EVENT_PREFIX = b'@dbfleet '


class Side:
    """One host-side program under the controller: its process and its events."""

    def __init__(self, label, argv, stdin, stdout):
        self.label = label
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)  # pylint: disable=consider-using-with
        self.events = queue.Queue()
        self.result = None
        self.noise = collections.deque(maxlen=12)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self):
        for line in iter(self.proc.stderr.readline, b''):
            if line.startswith(EVENT_PREFIX):
                try:
                    event = json.loads(line[len(EVENT_PREFIX):].decode('utf-8'))
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    if event.get('event') == 'result':
                        self.result = event
                    self.events.put(event)
                    continue
            text = line.decode('utf-8', 'replace').rstrip()
            if text:
                self.noise.append(text)
        self.proc.stderr.close()
        self.events.put({'event': 'exit'})

    def next_event(self, timeout):
        """The next event, ``{'event': 'exit'}`` once stderr closed, or None after ``timeout`` seconds."""
        try:
            return self.events.get(timeout=max(0.01, timeout))
        except queue.Empty:
            return None

    def send(self, data, close=False):
        """Write to the program's stdin (a pipe we hold); False when it is gone."""
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            if close:
                self.proc.stdin.close()
            return True
        except (OSError, ValueError):
            return False

    def close_stdin(self):
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except (OSError, ValueError):
            pass

    def finish(self, timeout=30):
        """Wait for the program to exit (killing it after ``timeout``); its exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()

    def problem(self):
        """What went wrong, in the program's words (its result's error, or its last stderr lines)."""
        if self.result and self.result.get('error'):
            return self.result['error']
        if self.noise:
            return ' / '.join(list(self.noise)[-4:])
        return 'it exited with code %s and said nothing' % self.proc.returncode


def _job_line(job):
    return json.dumps(job, sort_keys=True).encode('utf-8') + b'\n'


def _watch(sides, idle, on_exit=None):
    """Wait until every side's stderr closed (calling ``on_exit(side)`` as each one does); kill them all after
    ``idle`` seconds without an event from any of them, and say so."""
    waiting = list(sides)
    last = time.monotonic()
    while waiting:
        for side in list(waiting):
            event = side.next_event(0.05)
            while event is not None:
                last = time.monotonic()
                if event.get('event') == 'exit':
                    waiting.remove(side)
                    if on_exit is not None:
                        on_exit(side)
                    break
                event = side.next_event(0)
        if waiting and time.monotonic() - last > idle:
            for side in sides:
                side.kill()
            return 'no progress for %d seconds: both programs were stopped' % idle
    return None


def _wait_listening(receiver, idle):
    """The receiver's ``listening`` event, or None when it exits (or says nothing for ``idle`` seconds) first."""
    deadline = time.monotonic() + idle
    while time.monotonic() < deadline:
        event = receiver.next_event(deadline - time.monotonic())
        if event is None or event.get('event') == 'exit':
            return None
        if event.get('event') == 'listening':
            return event
    return None


def run_direct(receiver_argv, receiver_input, sender_argv, sender_input, receiver_job, sender_job, idle):
    """``(receiver, sender, stalled)``; ``sender`` is None when the receiver never listened."""
    receiver = Side('receiver', receiver_argv, subprocess.PIPE, subprocess.DEVNULL)
    receiver.send(receiver_input + _job_line(receiver_job))
    listening = _wait_listening(receiver, idle)
    if listening is None:
        receiver.close_stdin()
        receiver.finish(timeout=10)
        return receiver, None, None
    job = dict(sender_job, port=listening['port'], fingerprint=listening['fingerprint'])
    sender = Side('sender', sender_argv, subprocess.PIPE, subprocess.DEVNULL)
    sender.send(sender_input + _job_line(job), close=True)

    def sender_done(side):
        if side is sender:
            receiver.close_stdin()   # a receiver still waiting for a connection takes the EOF as "stop waiting"

    stalled = _watch([sender, receiver], idle, sender_done)
    sender.finish()
    receiver.finish()
    return receiver, sender, stalled


def _pump(source, sink):
    """Copy the receiver's replies to the sender (small control frames), then close the sender's stdin."""
    try:
        while True:
            data = source.read1(65536) if hasattr(source, 'read1') else source.read(65536)
            if not data:
                break
            sink.write(data)
            sink.flush()
    except (OSError, ValueError):
        pass
    finally:
        for stream in (sink, source):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


def run_relay(receiver_argv, receiver_input, sender_argv, sender_input, receiver_job, sender_job, idle):
    """``(receiver, sender, stalled)`` of a copy streamed through this controller."""
    forward_read, forward_write = os.pipe()
    try:
        receiver = Side('receiver', receiver_argv, forward_read, subprocess.PIPE)
    finally:
        os.close(forward_read)
    try:
        _write_all(forward_write, receiver_input + _job_line(receiver_job))
        sender = Side('sender', sender_argv, subprocess.PIPE, forward_write)
    except BaseException:
        os.close(forward_write)
        receiver.kill()
        raise
    os.close(forward_write)
    sender.send(sender_input + _job_line(sender_job))
    pump = threading.Thread(target=_pump, args=(receiver.proc.stdout, sender.proc.stdin), daemon=True)
    pump.start()
    stalled = _watch([sender, receiver], idle)
    sender.finish()
    receiver.finish()
    pump.join(timeout=5)
    return receiver, sender, stalled


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]

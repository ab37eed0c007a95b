# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for send_file: one verified copy from the task's host to another inventory host.

The story: the safety settings of both hosts (each from its own inventory) -> the source side checks what
is sent -> the destination side checks where it goes (deny-list, plan mode, what is there, a kept partial)
-> an identical copy already there ends it, check or plan mode reports what would be sent -> the
transfer (direct, or relayed through this controller; auto falls back) -> one result from both verdicts.
"""

from __future__ import annotations

import secrets
import time

from ansible.errors import AnsibleActionFail

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.program import build_program
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.transfer import EXIT_UNREACHABLE
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.transferjob import RECEIVE, SEND
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import format_size, parse_size
from ansible_collections.dbfleet.postgresql.plugins.plugin_utils import _xfer
from ansible_collections.dbfleet.postgresql.plugins.plugin_utils._peer import Peer, preamble, program_argv
from ansible_collections.dbfleet.postgresql.plugins.plugin_utils._safety_action import SafetyActionBase, effective_safety

MODULE = 'dbfleet.postgresql.send_file'
HOST_OPTIONS = ('path', 'to', 'dest', 'resume', 'create_dirs', 'owner', 'group', 'mode', 'directory_mode')


class ActionModule(SafetyActionBase):

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(SafetyActionBase, self).run(tmp, task_vars)  # pylint: disable=bad-super-call  # not the base's module run
        args = self._validated(dict(self._task.args))
        source_args = self.safety_args(task_vars)
        peer = Peer(self, args['to'])
        try:
            dest_mode, dest_deny, _inventory = effective_safety(
                self._templar, self._task.get_variable_manager(), self._loader, [peer.name], peer.vars, task=self._task,
                task_args=self._task.args)
            host_args = dict((key, args[key]) for key in HOST_OPTIONS if args.get(key) is not None)
            source = self._checked(self._execute_module(module_name=MODULE, task_vars=task_vars, module_args=dict(
                host_args, side='source', dbfleet_mode=source_args['dbfleet_mode'],
                dbfleet_deny_paths=source_args['dbfleet_deny_paths'])), 'source', task_vars.get('inventory_hostname'))
            facts = dict((key, source[key]) for key in ('kind', 'size', 'file_bytes'))
            dest_args = dict(host_args, side='destination', source=facts, dbfleet_mode=dest_mode, dbfleet_deny_paths=dest_deny)
            dest = self._checked(peer.execute_module(MODULE, dest_args), 'destination', peer.name)
            result.update(self._plan(args, task_vars, source, dest, dest_mode, peer))
            if result.get('_transfer'):
                del result['_transfer']
                result.update(self._transfer(args, task_vars, peer, source, dest, dest_mode))
                if result.get('failed') and not result.get('corrupted') and not result.get('partial_kept_bytes'):
                    self._kept(result, peer.execute_module(MODULE, dest_args))
        finally:
            peer.close()
        return result

    # -- the story's steps -------------------------------------------------------------------------------
    def _validated(self, args):
        for key in ('path', 'to', 'dest'):
            if not isinstance(args.get(key), str) or not args[key]:
                raise AnsibleActionFail('send_file needs %s' % key)
        args.setdefault('method', 'auto')
        if args['method'] not in ('auto', 'direct', 'relay'):
            raise AnsibleActionFail('method must be auto, direct or relay, got %r' % args['method'])
        try:
            args['bwlimit'] = parse_size(args.get('bandwidth_limit'), 'bandwidth_limit') or 0
            for key, default in (('timeout', 60), ('connect_timeout', 15), ('port', 0)):
                args[key] = int(args.get(key, default) if args.get(key) is not None else default)
        except (TypeError, ValueError) as exc:
            raise AnsibleActionFail(str(exc))
        if not 1 <= args['timeout'] <= 86400 or not 1 <= args['connect_timeout'] <= 3600 or not 0 <= args['port'] <= 65535:
            raise AnsibleActionFail('timeout (1-86400), connect_timeout (1-3600) or port (0-65535) is out of range')
        for key in ('direct_address', 'listen_address'):
            if args.get(key) is not None and (not isinstance(args[key], str) or any(ord(c) < 33 for c in args[key])):
                raise AnsibleActionFail('%s=%r is not an address' % (key, args[key]))
        return args

    @staticmethod
    def _checked(outcome, side, host):
        if outcome.get('failed') or outcome.get('unreachable'):
            raise AnsibleActionFail('send_file, %s side (%s): %s' % (side, host, outcome.get('msg') or outcome))
        return outcome

    def _plan(self, args, task_vars, source, dest, dest_mode, peer):
        """The result when nothing is to be transferred (identical copy, check or plan mode); else ``_transfer``."""
        where = '%s:%s' % (peer.name, args['dest'])
        base = dict(path=args['path'], dest=args['dest'], to=peer.name, kind=source['kind'], bytes=source['size'],
                    method='none', fallback=None, dest_mode=dest_mode)
        existing = dest.get('existing')
        if existing and existing.get('sha256'):
            checksum = self._execute_module(module_name=MODULE, task_vars=task_vars, module_args=dict(
                self._source_args(args, task_vars), side='source', checksum=True))
            self._checked(checksum, 'source', task_vars.get('inventory_hostname'))
            if checksum.get('sha256') == existing['sha256']:
                return dict(base, changed=False, sha256=existing['sha256'], sent_bytes=0, resumed_bytes=0,
                            msg='%s already holds this copy (SHA-256 %s): nothing sent' % (where, existing['sha256']))
        partial = dest.get('partial_bytes') or 0
        would = 'would send %s (%s) to %s by %s' % (args['path'], format_size(source['size']), where, args['method'])
        if partial and args.get('resume', True):
            would += ', resuming a kept partial of %s once it is verified' % (format_size(partial) if partial > 0 else 'a directory')
        diff = dict(before_header=where, after_header=where,
                    before='(absent)\n' if not existing else '(%s, %d bytes, SHA-256 %s)\n' % (
                        existing['kind'], existing['size'], existing.get('sha256') or 'not computed: other size'),
                    after='(%s, %d bytes, from %s:%s)\n' % (source['kind'], source['size'], task_vars.get('inventory_hostname'), args['path']))
        if dest.get('check_mode') or self._task.check_mode:
            why = 'check mode' if self._task.check_mode else '%s is in plan mode (its inventory or the task)' % peer.name
            return dict(base, changed=True, diff=diff, would_send=True, msg='%s: %s; nothing written' % (why, would))
        return dict(base, changed=True, diff=diff, _transfer=True)

    @staticmethod
    def _kept(result, probe):
        """Say what an interrupted transfer left on the destination (a receiver that was killed cannot)."""
        kept = probe.get('partial_bytes') or 0
        if kept:
            result['partial_kept_bytes'] = kept
            result['msg'] += (' A partial copy (%s) is kept for the next run to verify and extend.'
                              % (format_size(kept) if kept > 0 else 'a directory'))

    def _source_args(self, args, task_vars):
        safety = self.safety_args(task_vars)
        return dict(path=args['path'], to=args['to'], dest=args['dest'], dbfleet_mode=safety['dbfleet_mode'],
                    dbfleet_deny_paths=safety['dbfleet_deny_paths'])

    def _transfer(self, args, task_vars, peer, source, dest, dest_mode):
        token = secrets.token_hex(32)
        common = dict(kind=source['kind'], dest=args['dest'], timeout=args['timeout'], connect_timeout=args['connect_timeout'],
                      resume=bool(args.get('resume', True)), port=args['port'])
        address = args.get('direct_address') or peer.play_context.remote_addr
        receiver_job = dict(common, dir_id=dest['dir_id'], owner=dest['owner'], file_mode=dest['file_mode'],
                            dir_mode=dest['dir_mode'], dbfleet_mode=dest_mode, backup_dir=dest.get('backup_dir'),
                            listen=args.get('listen_address') or address)
        sender_job = dict(common, path=args['path'], source_id=source['id'], bwlimit=args['bwlimit'], connect=address)
        programs = dict((name, build_program(name, python)) for name, python in ((SEND, source['python']), (RECEIVE, dest['python'])))
        sender_input, receiver_input = preamble(SEND, programs[SEND]), preamble(RECEIVE, programs[RECEIVE])
        fallback = None
        started = time.monotonic()
        if args['method'] in ('direct', 'auto'):
            receiver, sender, stalled = _xfer.run_direct(
                program_argv(peer.connection, dest['python']), receiver_input,
                program_argv(self._connection, source['python']), sender_input,
                dict(receiver_job, mode='direct', token=token), dict(sender_job, mode='direct', token=token), args['timeout'])
            unreachable = (sender is None and receiver.proc.returncode == EXIT_UNREACHABLE) or (
                sender is not None and sender.proc.returncode == EXIT_UNREACHABLE)
            if not (unreachable and args['method'] == 'auto'):
                return self._outcome(args, peer, 'direct', None, receiver, sender, stalled, started)
            fallback = 'direct transfer impossible, relayed through the controller instead: %s' % (
                (sender or receiver).problem())
            self._display.warning('send_file %s -> %s: %s' % (args['path'], peer.name, fallback))
        started = time.monotonic()
        receiver, sender, stalled = _xfer.run_relay(
            program_argv(peer.connection, dest['python'], bulk=True), receiver_input,
            program_argv(self._connection, source['python'], bulk=True), sender_input,
            dict(receiver_job, mode='relay'), dict(sender_job, mode='relay'), args['timeout'])
        return self._outcome(args, peer, 'relay', fallback, receiver, sender, stalled, started)

    @staticmethod
    def _outcome(args, peer, method, fallback, receiver, sender, stalled, started):
        seconds = round(time.monotonic() - started, 3)
        got, sent = receiver.result or {}, (sender.result if sender is not None else None) or {}
        where = '%s -> %s:%s (%s)' % (args['path'], peer.name, args['dest'], method)
        base = dict(method=method, fallback=fallback, seconds=seconds, refused_connections=got.get('refused') or [])
        if got.get('status') == 'ok' and sent.get('status') == 'ok' and got.get('sha256') == sent.get('sha256'):
            moved = got.get('received', 0)
            rate = moved / seconds if seconds else 0.0
            return dict(base, bytes=got['bytes'], sent_bytes=moved, resumed_bytes=got.get('resumed', 0),
                        sha256=got.get('tree_sha256') or got['sha256'], stream_sha256=got['sha256'],
                        files=got.get('files'), backup_file=got.get('backup'), partial_note=got.get('partial_note'),
                        throughput_bytes_per_second=round(rate, 1), throughput='%s/s' % format_size(rate),
                        msg='sent %s: %s, SHA-256 %s verified on both hosts%s' % (
                            where, format_size(got['bytes']), got.get('tree_sha256') or got['sha256'],
                            ', %s resumed' % format_size(got['resumed']) if got.get('resumed') else ''))
        problems = []
        if stalled:
            problems.append(stalled)
        if got.get('status') != 'ok':
            problems.append('receiver: %s' % receiver.problem())
        if sender is None:
            problems.append('the sender was not started')
        elif sent.get('status') != 'ok' and sent.get('error') not in [p[len('receiver: '):] for p in problems]:
            problems.append('sender: %s' % sender.problem())
        if not problems:
            problems.append('the two ends disagree: sent SHA-256 %s, received %s' % (sent.get('sha256'), got.get('sha256')))
        kept = got.get('partial_kept')
        note = (' A partial copy (%s) is kept for the next run to verify and extend.' % format_size(kept)) if kept else ''
        return dict(base, failed=True, corrupted=bool(got.get('corrupted')), partial_kept_bytes=kept or 0,
                    msg='send_file %s failed: %s.%s' % (where, '; '.join(problems), note))

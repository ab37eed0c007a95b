# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reaching a second inventory host from inside one task, and streaming programs on either host.

``send_file`` runs for its source host, but also has to check and write on its destination: :class:`Peer`
builds that host's own connection (its inventory variables, connection options, shell and become
settings, the way the task executor builds one for the task's host) and runs modules there.

:func:`program_argv` starts a host-side program (``_runner.program``) on a host with stdin and stdout as
pipes the controller holds: the program travels on stdin ahead of its job (nothing is installed and
no temporary file is left on the controller), and a bulk stream gets its own SSH connection without
compression (Ansible's ``-C`` would squeeze every relayed byte through zlib) and with AES-GCM first.
"""

from __future__ import annotations

import base64
import os
import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.loader import action_loader, become_loader, connection_loader
from ansible.template import Templar

# Reads the rest of its bootstrap from stdin: one base64 line of code, then the program (length line, zip bytes).
# The program lives in a memfd where the host has them (Linux): nothing reaches the disk, so a transfer killed
# with SIGKILL leaves nothing behind; elsewhere a private temporary directory, removed on the way out.
_BOOTSTRAP = '''import os, runpy, shutil, sys, tempfile
raw = sys.stdin.buffer.raw
size = int(raw.readline())
workdir = None
if hasattr(os, "memfd_create"):
    fd = os.memfd_create(NAME)
    path = "/proc/self/fd/%d" % fd
else:
    workdir = tempfile.mkdtemp(prefix="dbfleet-send-file-")
    path = os.path.join(workdir, NAME)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
try:
    while size:
        chunk = raw.read(min(size, 1 << 16))
        if not chunk:
            sys.exit("the controller went away while sending the program")
        size -= len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
    sys.argv = [path, "--config", "-"]
    runpy.run_path(path, run_name="__main__")
finally:
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)
'''
_LAUNCHER = 'import base64, sys; exec(base64.b64decode(sys.stdin.buffer.raw.readline()))'
BULK_SSH_OPTIONS = [b'-o', b'ControlMaster=no', b'-o', b'ControlPath=none', b'-o', b'Compression=no',
                    b'-c', b'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr']


def preamble(name, program):
    """What goes to the launcher's stdin before the job: the bootstrap (one base64 line) and the program."""
    code = 'NAME = %r\n%s' % (name, _BOOTSTRAP)
    return base64.b64encode(code.encode('utf-8')) + b'\n' + str(len(program)).encode('ascii') + b'\n' + program


def program_argv(connection, python, bulk=False):
    """argv (bytes) that runs a host-side program on the host behind ``connection`` (ssh or local)."""
    if not python.startswith('/') or any(ord(char) < 32 for char in python):
        raise AnsibleActionFail('the Python on the host is %r, not an absolute path' % python)
    command = '%s -c %s' % (shlex.quote(python), shlex.quote(_LAUNCHER))
    become = getattr(connection, 'become', None)
    if become is not None:
        try:
            needs_password = bool(become.get_option('become_pass'))
        except KeyError:
            needs_password = False
        if needs_password:
            raise AnsibleActionFail('send_file cannot stream through a become method that needs a password; connect '
                                    'as a user who can read and write the paths, or use passwordless become')
        command = become.build_become_command(command, connection._shell)  # pylint: disable=protected-access
    transport = getattr(connection, 'transport', None)
    if transport == 'local':
        return [b'/bin/sh', b'-c', command.encode('utf-8')]
    if transport != 'ssh':
        raise AnsibleActionFail('send_file streams over the ssh or local connection, not %r' % transport)
    connection.host = connection.get_option('host') or connection._play_context.remote_addr  # pylint: disable=protected-access
    argv = connection._build_command(connection.get_option('ssh_executable'), 'ssh', connection.host, command)  # pylint: disable=protected-access
    if os.path.basename(argv[0]) == b'sshpass':
        raise AnsibleActionFail('send_file streams need key-based SSH to %s (a password is configured)' % connection.host)
    if bulk:
        argv = argv[:1] + BULK_SSH_OPTIONS + [arg for arg in argv[1:] if arg != b'-C']
    return argv


class Peer:
    """Another inventory host, reached from the current task with that host's own settings."""

    def __init__(self, action, host_name):
        task = action._task  # pylint: disable=protected-access
        manager = task.get_variable_manager()
        host = manager._inventory.get_host(host_name)  # pylint: disable=protected-access
        if host is None:
            raise AnsibleActionFail('to=%r is not a host in the inventory: name the destination as the inventory does' % host_name)
        self.name = host_name
        self.vars = manager.get_vars(play=task.get_play(), host=host, task=task, include_hostvars=True)
        self.templar = Templar(loader=action._loader, variables=self.vars)  # pylint: disable=protected-access
        self.play_context = action._play_context.set_task_and_variable_override(  # pylint: disable=protected-access
            task=task, variables=self.vars, templar=self.templar)
        self.play_context.remote_addr = self._var('ansible_host') or host.address
        transport = self._var('ansible_connection') or action._connection.transport  # pylint: disable=protected-access
        self.connection = connection_loader.get(
            'ssh' if transport == 'smart' else transport, self.play_context, new_stdin=None,
            task_uuid=task._uuid, ansible_playbook_pid=str(os.getppid()))  # pylint: disable=protected-access
        if self.connection is None:
            raise AnsibleActionFail('the connection plugin %r of %s was not found' % (transport, host_name))
        task_keys = task.dump_attrs()
        task_keys['timeout'] = self.play_context.timeout
        task_keys.pop('retries', None)
        if self.play_context.password:
            task_keys['password'] = self.play_context.password
        self.connection.set_options(task_keys=task_keys, var_options=self.connection._resolve_option_variables(  # pylint: disable=protected-access
            self.vars, self.templar))
        self.connection._shell.set_options(task_keys=task_keys, var_options={})  # pylint: disable=protected-access
        self._set_become(task)
        self.action = action_loader.get('ansible.legacy.normal', task=task, connection=self.connection,
                                        play_context=self.play_context, loader=action._loader,  # pylint: disable=protected-access
                                        templar=self.templar, shared_loader_obj=action._shared_loader_obj)  # pylint: disable=protected-access

    def _var(self, name):
        value = self.vars.get(name)
        return self.templar.template(value) if value is not None else None

    def _set_become(self, task):
        become = self._var('ansible_become')
        if not (boolean(become) if become is not None else task.become):
            self.connection.set_become_plugin(None)
            return
        plugin = become_loader.get(self._var('ansible_become_method') or task.become_method)
        plugin.set_options(var_options=dict((key, self._var(key)) for key in self.vars if key.startswith('ansible_become')))
        self.connection.set_become_plugin(plugin)

    def execute_module(self, name, args):
        """Run module ``name`` on this host; its result dict."""
        return self.action._execute_module(module_name=name, module_args=args, task_vars=self.vars)  # pylint: disable=protected-access

    def close(self):
        try:
            self.connection.close()
        except Exception:  # pylint: disable=broad-except  # closing a connection that never opened
            pass

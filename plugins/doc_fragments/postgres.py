# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or address of the PostgreSQL server. Omit it (and O(login_unix_socket)) to use the default local socket.
    type: str
  login_port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
  login_user:
    description:
      - Role to connect as. Omitted, libpq uses the operating-system user the command runs as (peer authentication
        over the local socket).
    type: str
  login_password:
    description:
      - Password for O(login_user). Reaches PostgreSQL through a passfile readable only by the user that connects,
        never a command line or a log.
    type: str
  login_db:
    description: Database to connect to for checks and for listing databases.
    type: str
    default: postgres
  login_unix_socket:
    description: Directory of the server's unix socket, for example C(/run/postgresql).
    type: path
  ssl_mode:
    description: libpq C(sslmode) for TCP connections.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
'''

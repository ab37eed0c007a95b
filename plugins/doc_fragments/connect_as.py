# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a module's queries reach the server: a child process as run_as (_pgquery), giving up after connect_timeout.
    # The options of _look.look_argument_spec(verdict=False) beyond the connection options.
    DOCUMENTATION = r'''
options:
  run_as:
    description:
      - Operating-system user the connection is made as (peer authentication and C(~/.pgpass) are that user's).
    type: str
    default: postgres
  connect_timeout:
    description: Seconds to wait for the server to answer (1 to 600).
    type: int
    default: 10
'''

#!/usr/bin/env bash
# ansible-test sanity for dbfleet.postgresql, from a copy of the working tree.
#
# ansible-test must run from .../ansible_collections/<namespace>/<name>/ and rejects a symlinked
# path, so the files git knows about (tracked, plus untracked ones that are not ignored) are
# copied into  $TMP/ansible_collections/dbfleet/postgresql/  and tested there. Results (junit,
# bot output) are copied back to tests/output/sanity/.
#
# Usage: scripts/sanity.sh [extra ansible-test sanity args, e.g. --test pep8]
# Environment: SANITY_KEEP=1 keeps the temporary copy; SANITY_MODE=local uses --local.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"

say() { printf '[sanity] %s\n' "$*"; }

if [[ ! -x "$ROOT/.venv/bin/ansible-test" ]]; then
    say "ERROR: .venv/bin/ansible-test not found: run \`make bootstrap\` first" >&2
    exit 1
fi

# --- get-pip workaround ----------------------------------------------------------------------
# ansible-test downloads get-pip-<ver>.py from ci-files.testing.ansible.com (unreachable here)
# unless ~/.ansible/test/cache/get_pip_<ver with _>.py exists. The version is the one pinned in
# ansible_test/_internal/python_requirements.py:get_venv_packages() (pip='24.2' in ansible-core
# 2.19), read from the installed ansible-test so an upgrade cannot silently change the name.
PIP_VERSION="$(python - <<'EOF'
import os, re, ansible_test
src = open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')).read()
body = src.split('def get_venv_packages', 1)[1]
print(re.search(r"pip='([0-9.]+)'", body).group(1))
EOF
)"
CACHE_DIR="$HOME/.ansible/test/cache"
GET_PIP="$CACHE_DIR/get_pip_${PIP_VERSION//./_}.py"
mkdir -p "$CACHE_DIR"
if [[ ! -f "$GET_PIP" ]] || grep -q 'dbfleet.postgresql get-pip shim' "$GET_PIP"; then
    # Only (re)write our own shim; a genuine get-pip script someone placed there is left alone.
    if ! cmp -s "$ROOT/scripts/get_pip_shim.py" "$GET_PIP"; then
        say "installing get-pip shim: $GET_PIP (pip $PIP_VERSION via ensurepip + PyPI)"
        cp "$ROOT/scripts/get_pip_shim.py" "$GET_PIP"
    fi
fi

# --- copy the tree ---------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/dbfleet-sanity.XXXXXX")"
# shellcheck disable=SC2317  # only invoked by the EXIT trap (a known shellcheck false positive)
cleanup() { if [[ "${SANITY_KEEP:-0}" == 1 ]]; then say "kept copy: $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
DEST="$TMP/ansible_collections/dbfleet/postgresql"
mkdir -p "$DEST"

# tracked + untracked-but-not-ignored; skip tracked files deleted from the working tree
git ls-files -z -c -o --exclude-standard \
    | while IFS= read -r -d '' f; do [[ -e "$f" || -L "$f" ]] && printf '%s\0' "$f"; done \
    | sort -zu \
    | tar -C "$ROOT" --null -T - -cf - \
    | tar -C "$DEST" -xf -
say "copied $(find "$DEST" -type f | wc -l) files to $DEST"

# No `git init` in the copy: ansible-test's "unversioned" source provider lists the files it finds,
# which are exactly the files copied above. A git repository there would add nothing.

# --- run ---------------------------------------------------------------------------------------
# --venv: ansible-test builds one virtualenv per sanity test (pinned requirements, from PyPI,
# which is reachable; pip itself via the shim above), so results do not depend on what happens
# to be installed in .venv. --local would test against .venv's packages instead.
MODE="--venv"
[[ "${SANITY_MODE:-venv}" == local ]] && MODE="--local"

LOG="$TMP/sanity.log"
# pip chatter from setting up the per-test venvs goes to the log file only, not to the console
PIP_NOISE='^(Looking in |WARNING: Location |Collecting |  Downloading |  Attempting |    Found existing|    Uninstalling |      Successfully uninstalled|Installing collected|Successfully installed|Processing /|Using cached pip| +━)'
say "ansible-test sanity --python 3.11 $MODE --color no --junit $*"
set +e
( cd "$DEST" && ansible-test sanity --python 3.11 "$MODE" --color no --junit "$@" ) 2>&1 \
    | tee "$LOG" \
    | grep --line-buffered -vE "$PIP_NOISE"
rc=${PIPESTATUS[0]}
set -e

rm -rf "$ROOT/tests/output/sanity"
mkdir -p "$ROOT/tests/output/sanity"
if [[ -d "$DEST/tests/output" ]]; then
    cp -a "$DEST/tests/output/." "$ROOT/tests/output/sanity/"
fi
cp "$LOG" "$ROOT/tests/output/sanity/sanity.log"

# --- summary ---------------------------------------------------------------------------------
# One junit file per sanity test (--junit): failures > 0 -> failed, skipped > 0 -> skipped
# (ansible-test reports "No tests applicable" or a missing program that way), otherwise passed.
python - "$ROOT/tests/output/sanity/junit" "$rc" <<'EOF'
import glob, os, sys
import xml.etree.ElementTree as ET
passed, failed, skipped = [], [], []
for path in sorted(glob.glob(os.path.join(sys.argv[1], '*.xml'))):
    name = os.path.basename(path)[len('ansible-test-sanity-'):-len('.xml')].replace('-python-', '@')
    suite = ET.parse(path).getroot().find('testsuite')
    if int(suite.get('failures', 0)) or int(suite.get('errors', 0)):
        failed.append(name)
    elif int(suite.get('skipped', 0)):
        skipped.append(name)
    else:
        passed.append(name)
if skipped:
    print('[sanity] skipped: ' + ', '.join(skipped))
if failed:
    print('[sanity] FAILED: ' + ', '.join(failed))
print('[sanity] RESULT: %d sanity tests: %d passed, %d failed, %d skipped (ansible-test exit %s); output in tests/output/sanity/'
      % (len(passed) + len(failed) + len(skipped), len(passed), len(failed), len(skipped), sys.argv[2]))
EOF
exit "$rc"

#!/usr/bin/env bash
# Build the collection artifact and prove it is usable as users get it:
#   ansible-galaxy collection build  ->  build/dbfleet-postgresql-<version>.tar.gz
#   install it (offline) into a temporary collections path, and
#   ansible-doc dbfleet.postgresql.<module> from that installed copy (not from this checkout).
#
# Usage: scripts/build-check.sh [--build-only] [MODULE ...]   (default module: file_stat)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
say() { printf '[build] %s\n' "$*"; }

build_only=0
if [[ "${1:-}" == --build-only ]]; then build_only=1; shift; fi
modules=("$@")
if (( ${#modules[@]} == 0 )); then
    for file in "$(dirname "$0")"/../plugins/modules/*.py; do modules+=("$(basename "$file" .py)"); done
fi

mkdir -p build
version="$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')"
artifact="build/dbfleet-postgresql-${version}.tar.gz"
say "ansible-galaxy collection build --force --output-path build/"
ansible-galaxy collection build --force --output-path build/ .
say "built $artifact ($(du -h "$artifact" | cut -f1), $(tar -tzf "$artifact" | grep -vc '/$') files)"
# Local state must never ship (galaxy.yml build_ignore); a leak here would also break sanity.
if leaked="$(tar -tzf "$artifact" | grep -E '^(\./)?(\.venv|build|tests/output|\.ansible|\.pytest_cache|inventories/lab)/' | head -n 5)" \
        && [[ -n "$leaked" ]]; then
    say "ERROR: the artifact contains local state (fix build_ignore in galaxy.yml):"
    printf '  %s\n' "$leaked"
    say "RESULT: FAILED: artifact contains $(head -n 1 <<<"$leaked") (galaxy.yml build_ignore)"
    exit 1
fi
(( build_only )) && exit 0

TMP="$(mktemp -d "${TMPDIR:-/tmp}/dbfleet-build-check.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
say "ansible-galaxy collection install --offline --no-deps $artifact -p $TMP/collections (community.postgresql comes from the ansible package)"
# An empty config file, so this checkout's ansible.cfg (collections_path = ./build/collections,
# the symlink to this checkout) cannot satisfy the lookups below.
: > "$TMP/ansible.cfg"
export ANSIBLE_CONFIG="$TMP/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$TMP/collections"
ansible-galaxy collection install --offline --no-deps --force -p "$TMP/collections" "$artifact"
installed="$TMP/collections/ansible_collections/dbfleet/postgresql"
[[ -d "$installed" && ! -L "$installed" ]] || { say "ERROR: not installed at $installed"; exit 1; }

checked=0
for module in "${modules[@]}"; do
    fqcn="dbfleet.postgresql.$module"
    say "ansible-doc $fqcn (from the installed copy)"
    out="$(cd "$TMP" && ansible-doc --json "$fqcn")"
    if ! src="$(python -c '
import json, sys
fqcn, installed = sys.argv[1], sys.argv[2]
data = json.load(sys.stdin)[fqcn]["doc"]
path = data.get("filename", "")
if not path.startswith(installed + "/"):
    sys.exit("documentation came from %r, not from the installed copy under %s" % (path, installed))
print(path)
' "$fqcn" "$installed" <<<"$out")"; then
        say "ERROR: ansible-doc $fqcn did not read the installed copy"
        exit 1
    fi
    say "ok: $fqcn documented (${src#"$TMP"/})"
    checked=$((checked + 1))
done
say "RESULT: built $(basename "$artifact"); installed; ansible-doc ok for $checked module(s)"

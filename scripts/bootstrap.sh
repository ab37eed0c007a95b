#!/usr/bin/env bash
# Prepare a machine to build and test dbfleet.postgresql, from nothing:
#   1. Debian packages that bindep.txt lists for the `test` profile (apt-get only when one is missing);
#   2. the controller virtualenv .venv from requirements.txt (re-installed when requirements.txt changes);
#   3. build/collections/ansible_collections/dbfleet/postgresql -> the repository (ansible.cfg's collections_path).
# Idempotent: a second run does no network I/O and takes about a second.
#
# Environment knobs:
#   PYTHON        interpreter for the venv (default: the first Python 3.11 among python3, python3.11, /usr/bin/python3)
#   BINDEP_PROFILE  bindep profile to install (default: test)
#   SKIP_APT=1    do not touch system packages (e.g. unprivileged developer machines that already have them)
#   DBFLEET_APT_UPDATED=1  the package lists are fresh (.ci/run just ran apt-get update)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.requirements.stamp"
PROFILE="${BINDEP_PROFILE:-test}"

say() { printf '[bootstrap] %s\n' "$*"; }
apt_note="apt: nothing to install"
venv_note="venv: up to date"

# ---------------------------------------------------------------------------------------------
# 1. System packages
# ---------------------------------------------------------------------------------------------

# Simple bindep.txt reader, usable before any Python exists: prints the package names that apply
# to a dpkg platform and to profile $1. A line applies when its selectors name no platform or
# `platform:dpkg`/`platform:debian`, and name no profile or the wanted one. Negations (`!x`) and
# version constraints are not used in this repository; lines with them are reported, not guessed.
bindep_simple() {
    local profile="$1" line name selectors sel has_platform platform_ok has_profile profile_ok
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%%#*}"
        [[ -z "${line//[[:space:]]/}" ]] && continue
        name="${line%%[[:space:]]*}"
        selectors=""
        if [[ "$line" == *"["*"]"* ]]; then
            selectors="${line#*[}"
            selectors="${selectors%%]*}"
        fi
        if [[ "$line" =~ [\<\>=!] ]]; then
            say "WARNING: bindep.txt line not understood by the simple reader, skipped: $line" >&2
            continue
        fi
        has_platform=0 platform_ok=0 has_profile=0 profile_ok=0
        for sel in $selectors; do
            case "$sel" in
                platform:dpkg|platform:debian) has_platform=1 platform_ok=1 ;;
                platform:*) has_platform=1 ;;
                "$profile") has_profile=1 profile_ok=1 ;;
                *) has_profile=1 ;;
            esac
        done
        (( has_platform && ! platform_ok )) && continue
        (( has_profile && ! profile_ok )) && continue
        printf '%s\n' "$name"
    done < "$ROOT/bindep.txt"
}

dpkg_missing() {
    local pkg status
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "installed" ]] || printf '%s\n' "$pkg"
    done
}

apt_install() {
    (( $# )) || return 0
    if [[ $EUID -ne 0 ]]; then
        say "ERROR: missing system packages ($*) and not root; install them or run as root (SKIP_APT=1 to skip)." >&2
        exit 1
    fi
    if [[ "${DBFLEET_APT_UPDATED:-0}" != 1 ]]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        export DBFLEET_APT_UPDATED=1
    fi
    say "apt-get install $*"
    apt_note="apt: installed $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [[ "${SKIP_APT:-0}" == 1 ]]; then
    say "SKIP_APT=1: not checking system packages"
elif ! command -v dpkg-query >/dev/null; then
    say "not a dpkg system: not checking system packages (bindep.txt lists what is needed)"
else
    mapfile -t wanted < <(bindep_simple "$PROFILE")
    mapfile -t missing < <(dpkg_missing "${wanted[@]}")
    if (( ${#missing[@]} )); then
        apt_install "${missing[@]}"
    else
        say "system packages: all ${#wanted[@]} from bindep.txt (profile $PROFILE) installed"
    fi
fi

# ---------------------------------------------------------------------------------------------
# 2. Controller virtualenv
# ---------------------------------------------------------------------------------------------

is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; }

pick_python() {
    local cand
    for cand in ${PYTHON:-} python3 python3.11 /usr/bin/python3.11 /usr/bin/python3; do
        if command -v "$cand" >/dev/null 2>&1 && is_py311 "$cand"; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

if [[ -x "$VENV/bin/python" ]] && ! is_py311 "$VENV/bin/python"; then
    say "ERROR: $VENV does not run Python 3.11 (ansible-core 2.19 sanity is run with --python 3.11); remove it and re-run." >&2
    exit 1
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    if ! PY="$(pick_python)"; then
        say "ERROR: no working Python 3.11 found (tried \$PYTHON, python3, python3.11, /usr/bin/python3)." >&2
        exit 1
    fi
    say "creating $VENV with $PY ($("$PY" -V 2>&1))"
    "$PY" -m venv "$VENV"
    venv_note="venv: created with $("$PY" -V 2>&1)"
    rm -f "$STAMP"
fi

if [[ ! -f "$STAMP" || "$ROOT/requirements.txt" -nt "$STAMP" ]]; then
    say "pip install -r requirements.txt (into .venv)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$ROOT/requirements.txt"
    touch "$STAMP"
    if [[ "$venv_note" == "venv: up to date" ]]; then venv_note="venv: requirements installed"; fi
else
    say "venv: up to date with requirements.txt"
fi

# Cross-check with the real bindep (authoritative; the simple reader above exists only because
# bindep lives in the venv that needs some of those packages first).
if [[ "${SKIP_APT:-0}" != 1 ]] && command -v dpkg-query >/dev/null && [[ -x "$VENV/bin/bindep" ]]; then
    mapfile -t missing < <("$VENV/bin/bindep" -b -f "$ROOT/bindep.txt" "$PROFILE" || true)
    if (( ${#missing[@]} )); then
        say "bindep reports missing packages: ${missing[*]}"
        apt_install "${missing[@]}"
    else
        say "bindep -b $PROFILE: nothing missing"
    fi
fi

# ---------------------------------------------------------------------------------------------
# 3. Collection link (ansible.cfg: collections_path = ./build/collections:...)
# ---------------------------------------------------------------------------------------------

LINK="$ROOT/build/collections/ansible_collections/dbfleet/postgresql"
if [[ "$(readlink "$LINK" 2>/dev/null || true)" != "$ROOT" ]]; then
    say "linking $LINK -> $ROOT"
    mkdir -p "$(dirname "$LINK")"
    ln -sfn "$ROOT" "$LINK"
else
    say "collection link: $LINK -> $ROOT"
fi

say "RESULT: $apt_note; $venv_note; collection link ok"

#!/usr/bin/env bash
# The executor's app (issue 19) in a real browser: Debian's Chromium driven by playwright-core
# at a phone viewport (390x844) against the live binary, with an agent on REST beside it
# (scripts/app/app_test.mjs). Installs Chromium (apt, as root) when it is missing and the
# npm packages under scripts/app/node_modules; never downloads a browser through npm.
# Usage: scripts/test-app.sh [--screenshots] (saves docs/screenshots/*.png). Exits non-zero
# on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$ROOT/target/debug/mess-exchange
PY=python3
log() { echo "test-app: $*" >&2; }
SHOTS=
[[ ${1:-} == --screenshots ]] && SHOTS=$ROOT/docs/screenshots

if [[ ! -x /usr/bin/chromium ]]; then
    log "installing Debian's chromium"
    if [[ $(id -u) -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
    else
        log "chromium is missing and this is not root: apt-get install chromium"
        exit 1
    fi
fi
[[ -x $BIN ]] || cargo build -p mess-exchange
(cd scripts/app && npm install --no-audit --no-fund --silent)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mess-app.XXXXXX")
# shellcheck source=lib/server.sh
source "$ROOT/scripts/lib/server.sh"
trap 'stop_server; rm -rf "$WORK"' EXIT
# shellcheck source=lib/tally.sh
source "$ROOT/scripts/lib/tally.sh"

# With a public URL, offers carry a signed claim link (`/a/{token}`), which the suite opens.
export PUBLIC_URL=$BASE
# Registration needs a token, so the invite link and the 401 path are tested too.
TOKEN=app-invite-$RANDOM$RANDOM
export REGISTRATION_TOKEN=$TOKEN
phase start node scripts/app/app_test.mjs "$BASE" "$TOKEN" "$SHOTS"
summary

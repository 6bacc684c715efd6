#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzing client against pushwire's /echo endpoint.
#
#   conformance/run.sh                # sections 1-7 and 10 (default limits)
#   conformance/run.sh --section9     # also section 9 (big messages, perf),
#                                     # with --max-message-bytes 16777216
#   conformance/run.sh --cases 7.1.5,6.4.*   # only these cases (rerun a fix)
#
# Reports land in conformance/reports/<mode>/servers/ (git-ignored); the exit
# status is summarize.py's: non-zero if any case did not pass.
#
# Environment overrides:
#   AUTOBAHN_VENV  Python 2.7 virtualenv for wstest (default /work/.autobahn-venv,
#                  outside the repo; created here if missing)
#   PY27           python2.7 used to create that venv
#   PUSHWIRE_CMD   command whose "serve ..." starts the server under test
#                  (default: the repo venv's "python -m pushwire"; used to
#                  validate this harness against another server)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
AUTOBAHN_VENV="${AUTOBAHN_VENV:-/work/.autobahn-venv}"
# A pyenv shim for python2.7 may exist but refuse to run unless 2.7 is the
# selected version, so try the pyenv install directly first.
PY27="${PY27:-/root/.pyenv/versions/2.7.18/bin/python2.7}"
[[ -x "$PY27" ]] || PY27="$(command -v python2.7)"
PUSHWIRE_CMD="${PUSHWIRE_CMD:-$REPO/.venv/bin/python -m pushwire}"
PY3="$REPO/.venv/bin/python"
HOST=127.0.0.1
PORT=9001

mode=default
subset=""
cases='"1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"'
server_extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --section9)
            # Section 9 sends messages up to 16 MiB; the server default limit
            # would (correctly) refuse them with 1009, so lift it for this run.
            mode=section9
            cases='"1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"'
            server_extra=(--max-message-bytes 16777216)
            shift ;;
        --cases)
            # Comma-separated case ids/globs, e.g. "7.1.5,6.4.*".
            cases="\"${2//,/\", \"}\""
            subset=-subset  # own report dir: don't clobber a full run's
            shift 2 ;;
        *) echo "usage: $0 [--section9] [--cases ID,ID...]" >&2; exit 2 ;;
    esac
done

# --- 1. wstest venv (Python 2.7 only), rebuilt when the pinned set changes ---
reqs="$HERE/requirements-py27.txt"
if ! cmp -s "$reqs" "$AUTOBAHN_VENV/.requirements-installed" 2>/dev/null; then
    echo "== setting up $AUTOBAHN_VENV"
    # Python 2.7 has no venv module; virtualenv<20.22 is the last line that
    # still runs on 2.7.
    "$PY27" -m virtualenv --version >/dev/null 2>&1 ||
        "$PY27" -m pip install -q 'virtualenv<20.22'
    [[ -x "$AUTOBAHN_VENV/bin/python" ]] || "$PY27" -m virtualenv -q "$AUTOBAHN_VENV"
    "$AUTOBAHN_VENV/bin/pip" install -q -r "$reqs"
    cp "$reqs" "$AUTOBAHN_VENV/.requirements-installed"
fi

# --- 2. start the server under test ---
health() { curl -fsS -o /dev/null --max-time 2 "http://$HOST:$PORT/health" 2>/dev/null; }

# Refuse to run if something already answers on the port: we would otherwise
# test that (possibly stale) server instead of the one we start.
if health; then
    echo "something is already serving on $HOST:$PORT; stop it first" >&2
    exit 1
fi

# Only now clear the previous report (a refused run must not destroy it).
out="$HERE/reports/$mode$subset"
rm -rf "$out"
mkdir -p "$out"

# PYTHONPATH: test the working tree's src/ even if the package isn't installed
# into the venv yet (an editable install resolves to the same files anyway).
# shellcheck disable=SC2086  # PUSHWIRE_CMD is a command line, split on purpose
PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}" \
    $PUSHWIRE_CMD serve --host "$HOST" --port "$PORT" --memory --echo \
    "${server_extra[@]}" >"$out/server.log" 2>&1 &
server_pid=$!

stop_server() {
    # SIGTERM by PID (graceful shutdown path), SIGKILL only if it hangs.
    kill -0 "$server_pid" 2>/dev/null || return 0
    kill -TERM "$server_pid"
    for _ in $(seq 50); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            local rc=0
            wait "$server_pid" 2>/dev/null || rc=$?
            echo "== server exited with status $rc after SIGTERM"
            return 0
        fi
        sleep 0.2
    done
    echo "server did not exit 10 s after SIGTERM; killing it" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT

for _ in $(seq 100); do
    health && break
    kill -0 "$server_pid" 2>/dev/null || { echo "server exited early:" >&2; cat "$out/server.log" >&2; exit 1; }
    sleep 0.2
done
health || { echo "no 200 from /health after 20 s" >&2; cat "$out/server.log" >&2; exit 1; }

# --- 3. fuzz ---
# Sections 12/13 are not listed: they only exercise permessage-deflate, which
# pushwire does not negotiate (12.* would all report UNIMPLEMENTED).
cat >"$out/fuzzingclient.json" <<EOF
{
  "outdir": "$out/servers",
  "servers": [{"agent": "pushwire", "url": "ws://$HOST:$PORT/echo"}],
  "cases": [$cases],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF
echo "== wstest fuzzingclient ($mode) -> $out/servers"
# wstest writes a little into its working directory; keep that in reports/.
# The timeout only guards against a server that stalls the whole run.
(cd "$out" && timeout 1800 "$AUTOBAHN_VENV/bin/wstest" -m fuzzingclient \
    -s "$out/fuzzingclient.json" >"$out/wstest.log" 2>&1) ||
    { echo "wstest failed, see $out/wstest.log" >&2; tail -20 "$out/wstest.log" >&2; exit 1; }

stop_server
trap - EXIT

# --- 4. summarize (exit status = pass/fail) ---
"$PY3" "$HERE/summarize.py" "$out/servers/index.json"

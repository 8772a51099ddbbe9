# Shared by the scripts that run the real smsdesk binary for a test (e2e.sh, api-fuzz.sh):
# a free port, starting the server in a work folder (so a developer's .env does not leak in),
# waiting until it is ready, and failing on ERROR lines in its log. Source it; it defines
# functions only.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_smsdesk BIN WORK URL: runs `BIN serve` in WORK (log in WORK/server.log), sets
# server_pid, and returns once URL/readyz answers; exits with the log when it does not.
start_smsdesk() {
  local bin=$1 work=$2 url=$3
  (cd "$work" && exec "$bin" serve) >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 150); do
    if curl -fsS "$url/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      cat "$work/server.log"
      echo "smsdesk exited before it was ready" >&2
      exit 1
    fi
    sleep 0.2
  done
  curl -fsS "$url/readyz" >/dev/null || { cat "$work/server.log"; echo "smsdesk did not become ready" >&2; exit 1; }
}

# server_errors WORK: prints the ERROR lines of WORK/server.log and fails when there are any
# (an error in the server's log is a bug even when the tests pass).
server_errors() {
  local work=$1
  if grep -q '"level":"ERROR"' "$work/server.log"; then
    printf '==> %s\n' "the server logged errors during the run"
    grep '"level":"ERROR"' "$work/server.log" | head -n 20
    return 1
  fi
}

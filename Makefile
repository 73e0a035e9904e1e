# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out

# The embedded models the tests use, and the demo's: every model the defaults use, so the
# README's commands run with no model flags (the 1.5B rung is the default answer model).
MODELS      := all-mpnet-base-v2 all-minilm-l6-v2 smollm2-135m
DEMO_MODELS := $(MODELS) qwen2.5-coder-0.5b qwen2.5-coder-1.5b
ASK         := $(BIN)/budgetmem ask --store $(OUT)/demo.db --namespace demo --answer-llm llamacpp:qwen2.5-coder-0.5b

.PHONY: install models demo demo-postgres test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing budgetmem and its embedded stack (llama-cpp-python compiles once, ~6 min on 2 cores)"
	$(BIN)/python -m pip install --quiet -e '.[embedded,server,ray,postgres,dev]'
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/budgetmem models prepare $(MODELS)

demo: install
	$(BIN)/budgetmem models prepare $(DEMO_MODELS)
	@echo "--- what this machine can run (each generation in a child process)"
	$(BIN)/budgetmem doctor --no-verify
	@mkdir -p $(OUT)
	@rm -f $(OUT)/demo.db $(OUT)/demo.db-wal $(OUT)/demo.db-shm
	$(BIN)/budgetmem ingest examples/conversation.json --store $(OUT)/demo.db --namespace demo --chunk-tokens 64
	$(BIN)/budgetmem ingest examples/notes.md --store $(OUT)/demo.db --namespace demo-docs
	@echo "--- budgeted writes: keep the most salient half of the chunks, archive the rest"
	$(BIN)/budgetmem ingest examples/conversation.json --store $(OUT)/demo.db --namespace demo-budget --chunk-tokens 64 \
	    --write-policy salience --write-budget 0.5
	$(BIN)/budgetmem stats --store $(OUT)/demo.db
	$(BIN)/budgetmem search "What did Tomasz name his bakery?" --store $(OUT)/demo.db --namespace demo -k 3
	$(BIN)/budgetmem search "Who took care of the cat during the move?" --store $(OUT)/demo.db --namespace demo -k 3 --retriever dense
	$(BIN)/budgetmem search "rye flour mill" --store $(OUT)/demo.db --namespace demo-docs -k 2 --retriever bm25
	@echo "--- the defaults, as in the README: implementation MID, Qwen2.5-Coder-1.5B answers"
	$(BIN)/budgetmem ask "What did Tomasz name his bakery?" --store $(OUT)/demo.db --namespace demo
	@echo "--- implementation strategy, every module MID (encoders; only the answer calls an LLM)"
	$(ASK) "What did Tomasz name his bakery?" --strategy implementation --policy mid
	@echo "--- implementation strategy, LLM filter and summary, rules elsewhere"
	$(ASK) "When did Tomasz open his bakery?" --strategy implementation --policy "low,filter=high,summary=high" --module-llm llamacpp:qwen2.5-coder-0.5b
	@echo "--- capacity strategy, every module on the small rung (SmolLM2-135M)"
	$(ASK) "Who looked after Pixel while Priya moved?" --strategy capacity --policy low
	@echo "--- the memory service: budgetmem serve on loopback, a key, then add / search / query with curl"
	examples/service_demo.sh $(BIN) $(OUT)

# The same memory in PostgreSQL + pgvector: a local server from the bundled wheel, the store
# named by $$BUDGETMEM_STORE, a copy of the SQLite demo store made with `budgetmem migrate`.
demo-postgres: demo
	examples/postgres_demo.sh $(BIN) $(OUT)

test: models
	$(BIN)/python -m pytest -q

bench: models
	$(BIN)/python bench/foundation.py

clean:
	rm -rf $(OUT) .pytest_cache

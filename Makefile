# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out

# The embedded models the demo and the tests use (the 0.5B / 1.5B rungs are prepared on demand:
# `budgetmem models prepare`).
MODELS := all-mpnet-base-v2 all-minilm-l6-v2 smollm2-135m

.PHONY: install models demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing budgetmem and its embedded stack (llama-cpp-python compiles once, ~6 min on 2 cores)"
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/budgetmem models prepare $(MODELS)

demo: models
	@mkdir -p $(OUT)
	@rm -f $(OUT)/demo.db $(OUT)/demo.db-wal $(OUT)/demo.db-shm
	$(BIN)/budgetmem ingest examples/conversation.json --store $(OUT)/demo.db --namespace demo --chunk-tokens 64
	$(BIN)/budgetmem ingest examples/notes.md --store $(OUT)/demo.db --namespace demo-docs
	$(BIN)/budgetmem namespaces --store $(OUT)/demo.db
	$(BIN)/budgetmem search "What did Tomasz name his bakery?" --store $(OUT)/demo.db --namespace demo -k 3
	$(BIN)/budgetmem search "Who took care of the cat during the move?" --store $(OUT)/demo.db --namespace demo -k 3 --retriever dense
	$(BIN)/budgetmem search "rye flour mill" --store $(OUT)/demo.db --namespace demo-docs -k 2 --retriever bm25
	$(BIN)/budgetmem complete "In one sentence: why keep an agent's history raw instead of summarising it?" --max-tokens 48

test: models
	$(BIN)/python -m pytest -q

bench: models
	$(BIN)/python bench/foundation.py

clean:
	rm -rf $(OUT) .pytest_cache

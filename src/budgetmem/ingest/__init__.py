"""Reading histories and cutting them into chunks."""

from budgetmem.chunk import Chunk
from budgetmem.ingest.chunker import TokenCounter, chunk_history, chunk_session, render_session
from budgetmem.ingest.history import History, Session, Turn
from budgetmem.ingest.load import FORMATS, load_histories

__all__ = [
    "FORMATS",
    "Chunk",
    "History",
    "Session",
    "TokenCounter",
    "Turn",
    "chunk_history",
    "chunk_session",
    "load_histories",
    "render_session",
]

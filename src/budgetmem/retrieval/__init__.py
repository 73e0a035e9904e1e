"""Dense (exact or HNSW), incremental BM25 and hybrid retrieval over a store namespace."""

from budgetmem.retrieval.ann import VectorIndex
from budgetmem.retrieval.bm25 import BM25Index
from budgetmem.retrieval.dense import DenseIndex
from budgetmem.retrieval.searcher import RETRIEVERS, Hit, Searcher

__all__ = ["RETRIEVERS", "BM25Index", "DenseIndex", "Hit", "Searcher", "VectorIndex"]

"""Embedded model registry and preparation."""

from budgetmem.models.prepare import ModelStatus, model_path, models_dir, prepare, status, verify
from budgetmem.models.registry import LADDER, MODELS, ModelSpec, WheelPart, get_model

__all__ = [
    "LADDER",
    "MODELS",
    "ModelSpec",
    "ModelStatus",
    "WheelPart",
    "get_model",
    "model_path",
    "models_dir",
    "prepare",
    "status",
    "verify",
]

"""Embedded model registry and preparation."""

from budgetmem.models.prepare import ModelStatus, model_path, models_dir, prepare, status, verify
from budgetmem.models.registry import LADDER, MODELS, ModelSpec, WheelPart, encoder_models, get_model, llm_models

__all__ = [
    "LADDER",
    "MODELS",
    "ModelSpec",
    "ModelStatus",
    "WheelPart",
    "encoder_models",
    "get_model",
    "llm_models",
    "model_path",
    "models_dir",
    "prepare",
    "status",
    "verify",
]

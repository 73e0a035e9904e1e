"""Long chunks are embedded in windows and pooled, never cut (a 1,024-token HotpotQA document
chunk is longer than MiniLM's 254-token and MPNet's 382-token window)."""

from __future__ import annotations

import numpy as np
import pytest

from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError
from budgetmem.settings import EncoderSettings

TEXT = (
    "Greenwich Village is a neighborhood on the west side of Lower Manhattan in New York City. "
    "Big Stone Gap is a 2014 drama film written and directed by Adriana Trigiani."
)


@pytest.fixture(scope="module")
def tiny(minilm: Encoder) -> Encoder:
    """MiniLM with 8-token windows every 5 tokens: a two-sentence text needs several."""
    return Encoder(EncoderSettings(name="all-minilm-l6-v2", window_tokens=8, window_stride=5))


def test_windows_cover_the_text_and_pool_to_the_mean(tiny: Encoder, minilm: Encoder) -> None:
    # An independent reference: the windows cut from the tokenizer's offsets by hand, each
    # embedded by the network alone, averaged and scaled back to unit length.
    offsets = minilm.offsets(TEXT)
    n = len(offsets)
    starts = [*range(0, n - 8, 5), n - 8]
    pieces = [TEXT[offsets[a][0] : offsets[a + 7][1]] for a in starts]
    assert len(pieces) >= 4 and pieces[0] == TEXT[: offsets[7][1]] and TEXT.endswith(pieces[-1])
    singles = minilm.encode(pieces)  # each piece fits MiniLM's own window: one pass each
    expected = singles.mean(axis=0)
    expected /= np.linalg.norm(expected)

    got = tiny.encode([TEXT, "short one"])
    assert got.shape == (2, minilm.dim)
    np.testing.assert_allclose(got[0], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got[1], minilm.encode(["short one"])[0], atol=1e-5)  # fits: no pooling


def test_a_long_chunk_is_read_to_its_end(minilm: Encoder) -> None:
    """At the real window: a ~1,000-token chunk whose last sentence changes gets another
    embedding, which truncation to the first 254 tokens could not give."""
    filler = " ".join(f"Paragraph {i} describes the history of the old mill and its river." for i in range(70))
    a = filler + " The mill was finally sold to the Hartley family in 1911."
    b = filler + " Quantum chromodynamics explains how gluons bind quarks together."
    assert minilm.count_tokens(a) > 900 > minilm.max_tokens
    va, vb = minilm.encode([a, b])
    assert float(va @ vb) < 0.9999
    # ...and the tail moves the vector towards what it says.
    probe = minilm.encode(["Who bought the mill in 1911? The Hartley family."])[0]
    assert float(va @ probe) > float(vb @ probe)


def test_window_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        EncoderSettings(window_tokens=1)
    with pytest.raises(ConfigError):
        EncoderSettings(window_stride=0)
    assert Encoder(EncoderSettings(name="all-minilm-l6-v2", window_tokens=10_000)).max_tokens == 254

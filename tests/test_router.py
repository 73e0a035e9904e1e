"""The router: the reward formula (Eq. 7-10) pinned by hand, PPO learning a toy task,
checkpoints, and the state encoder on the real MiniLM encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from budgetmem.errors import ConfigError, InputError
from budgetmem.chunk import Chunk
from budgetmem.pipeline.policy import PolicyState
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import ModuleInput, ScoredChunk, Tier
from budgetmem.router import RouterNet, RouterPolicy, StateEncoder, load_router, save_router
from budgetmem.router.policy import Decision
from budgetmem.training.buffer import RolloutBuffer
from budgetmem.training.ppo import PPOSettings, advantages, ppo_update
from budgetmem.training.reward import CostReward, RewardSettings


def test_reward_matches_hand_computed_eq_7_to_10() -> None:
    rw = CostReward(RewardSettings(cost_weight=0.5, window=100))
    costs = [0.0, 0.01, 0.04, 0.09]  # sqrt: 0, 0.1, 0.2, 0.3
    task = [1.0, 0.0, 1.0, 0.0]
    parts = rw(task, costs)
    # numpy's linear percentiles of [0, .1, .2, .3]: Q5 = 0.015, Q95 = 0.285
    q5, q95 = 0.015, 0.285
    want_cost = [1 - min(1, max(0, (math.sqrt(c) - q5) / (q95 - q5))) for c in costs]
    assert parts.cost == pytest.approx(want_cost)
    assert parts.cost[0] == 1.0 and parts.cost[3] == 0.0
    # alpha = std(task) / (std(r_cost) + eps), population stds, over the window
    alpha = np.std(task) / (np.std(want_cost) + 1e-6)
    assert parts.alpha == pytest.approx(alpha)
    # alpha scales the cost term, not the task term (the paper's Eq. 7)
    assert parts.total == pytest.approx([t + 0.5 * alpha * c for t, c in zip(task, want_cost)])


def test_reward_without_alignment_and_at_zero_weight() -> None:
    off = CostReward(RewardSettings(cost_weight=1.0, align=False))
    parts = off([0.2, 0.4], [0.0, 1.0])
    assert parts.alpha == 1.0
    assert parts.total == pytest.approx([0.2 + parts.cost[0], 0.4 + parts.cost[1]])
    zero = CostReward(RewardSettings(cost_weight=0.0))
    assert zero([0.3, 0.7], [5.0, 0.0]).total == pytest.approx([0.3, 0.7])


def test_reward_window_slides_and_state_round_trips() -> None:
    rw = CostReward(RewardSettings(cost_weight=1.0, window=3))
    rw([0.0] * 3, [100.0, 100.0, 100.0])
    # Old expensive episodes have left the window: a cost of 1 is now the window's top.
    parts = rw([0.0, 0.0, 0.0], [0.0, 0.25, 1.0])
    assert parts.cost[2] == 0.0 and parts.cost[0] == 1.0
    copy = CostReward(RewardSettings(cost_weight=1.0, window=3))
    copy.load_state_dict(rw.state_dict())
    assert copy.normalise(0.25) == rw.normalise(0.25)
    with pytest.raises(ValueError):
        rw([1.0], [-0.1])


def _toy_episodes(net: RouterNet, n: int, rng: np.random.Generator) -> tuple[list[list[Decision]], list[float]]:
    """A contextual bandit: the rewarded tier depends on the query vector's sign."""
    policy_gen = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    episodes, rewards = [], []
    for _ in range(n):
        sign = 1.0 if rng.random() < 0.5 else -1.0
        q = np.full(4, sign, dtype=np.float32)
        x = rng.normal(size=4).astype(np.float32)
        ep = []
        hits = 0
        for m in range(2):
            with torch.no_grad():
                logits, v = net(torch.from_numpy(q)[None], torch.from_numpy(x)[None], torch.tensor([m]))
            probs = torch.softmax(logits[0], -1)
            a = int(torch.multinomial(probs, 1, generator=policy_gen))
            ep.append(Decision((q, x, m), a, float(torch.log(probs[a])), float(v[0]), 0.0))
            hits += a == (2 if sign > 0 else 0)
        episodes.append(ep)
        rewards.append(hits / 2)
    return episodes, rewards


def test_ppo_settings_are_the_papers_and_a_budget_overrides_only_what_it_names() -> None:
    s = PPOSettings()
    assert (s.lr, s.clip, s.value_coef, s.entropy_coef, s.epochs, s.max_grad_norm, s.batch_size, s.steps) == (
        3e-4, 0.2, 0.5, 0.01, 4, 0.5, 32, 600)  # fmt: skip
    short = s.with_budget(20, None, 3e-3)
    assert (short.steps, short.batch_size, short.lr, short.clip) == (20, 32, 3e-3, 0.2)
    assert s.with_budget().lr == 3e-4


def test_ppo_learns_a_contextual_bandit() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = RouterNet(dim=4, n_modules=2, hidden=32)
    settings = PPOSettings(lr=3e-3)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    first = None
    for _ in range(60):
        eps, rs = _toy_episodes(net, 32, rng)
        first = first if first is not None else float(np.mean(rs))
        buffer = RolloutBuffer.from_decisions(eps)
        epochs = ppo_update(net, opt, buffer, rs, advantages(buffer, rs), settings)
    last = float(np.mean(_toy_episodes(net, 200, rng)[1]))
    assert first < 0.5 < 0.9 < last
    assert len(epochs) == settings.epochs  # every epoch's statistics, not only the last one's
    assert all(e["approx_kl"] >= 0.0 and 0.0 <= e["clip_fraction"] <= 1.0 for e in epochs)
    with pytest.raises(ValueError):
        RolloutBuffer.from_decisions([[]])


def _state(module: str, chunks: tuple[ScoredChunk, ...] = (), facts: dict | None = None) -> PolicyState:
    inp = ModuleInput("When did Tomasz open the bakery?", chunks=chunks, facts=facts or {})
    return PolicyState(inp.query, module, MODULES.index(module), inp)


def _chunk(text: str) -> ScoredChunk:
    return ScoredChunk(Chunk(text, 8, "t", "h", "s1", None, 0, (), ()), 1.0)


def test_state_encoder_never_hands_the_summary_a_zero_vector(minilm) -> None:  # type: ignore[no-untyped-def]
    enc = StateEncoder(minilm)
    q, x, m = enc(_state("summary"))
    assert m == MODULES.index("summary") and q.shape == (minilm.dim,)
    assert np.linalg.norm(x) == pytest.approx(1.0, abs=1e-4)
    _, x_facts, _ = enc(_state("summary", facts={"temporal": ("opened in March 2023",)}))
    assert not np.allclose(x, x_facts)
    chunks = (_chunk("Tomasz opened his bakery in March."), _chunk("Priya adopted a cat named Pixel."))
    _, x_filter, _ = enc(_state("filter", chunks))
    want = minilm.encode([c.chunk.text for c in chunks]).mean(axis=0)
    assert x_filter == pytest.approx(want / np.linalg.norm(want), abs=1e-5)


def test_router_checkpoint_round_trip_and_greedy_decisions(minilm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    states = StateEncoder(minilm)
    net = RouterNet(minilm.dim, len(MODULES), hidden=16, descriptors=states.descriptors())
    with torch.no_grad():
        net.actor.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))  # strongly prefers HIGH
    path = save_router(tmp_path / "r.pt", net, {"encoder": minilm.settings.name, "cost_weight": 0.1, "strategy": "implementation"})
    policy = load_router(path, minilm)
    assert policy.meta["cost_weight"] == 0.1 and "lambda=0.1" in policy.name
    assert policy.decide(_state("topic", (_chunk("bread"),))) is Tier.HIGH
    episode = policy.rollout(sample=False)
    assert episode.decide(_state("topic", (_chunk("bread"),))) is Tier.HIGH
    assert len(episode.decisions) == 1 and episode.decisions[0].seconds > 0
    assert policy.probabilities(_state("filter"))[2] > 0.9
    sampled = RouterPolicy(net, states, seed=1).rollout(sample=True)
    sampled.decide(_state("filter"))
    assert sampled.decisions[0].logp < 0.0
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    with pytest.raises(InputError):
        load_router(tmp_path / "bad.pt", minilm)
    with pytest.raises(InputError):
        load_router(tmp_path / "missing.pt", minilm)
    save_router(tmp_path / "mpnet.pt", net, {"encoder": "all-mpnet-base-v2"})
    with pytest.raises(ConfigError, match="all-mpnet-base-v2"):
        load_router(tmp_path / "mpnet.pt", minilm)


def test_state_reads_stored_chunk_embeddings_instead_of_encoding(minilm, minilm_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conftest import EXAMPLE

    from budgetmem import BudgetMem

    with BudgetMem(tmp_path / "m.db", "demo", settings=minilm_settings, encoder=minilm) as mem:
        mem.add(EXAMPLE)
        hits = mem.search("What did Tomasz name his bakery?")
        state = _state("filter", tuple(ScoredChunk(h.chunk, h.score) for h in hits))
        fresh = StateEncoder(minilm)(state)
        stored_states = StateEncoder(minilm, vectors=mem.searcher.vectors)
        stored_states(_state("summary"))  # query and summary text encoded once
        before = minilm.n_encoded
        stored = stored_states(state)
        assert minilm.n_encoded == before  # the chunks came from the index, not the encoder
        assert stored[1] == pytest.approx(fresh[1], abs=1e-4)
        assert mem.searcher.vectors([10**9]) is None  # an id not indexed: the caller encodes

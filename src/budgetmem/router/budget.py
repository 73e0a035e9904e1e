"""Target-cost mode (``--target-usd X``): "spend at most $X of extraction per query on
average", kept over a stream of queries by adapting the cost knob online.

The knob is one number ``u`` in [0, 1], 0 the most costly setting and 1 the cheapest:

* a router family (``router:DIR``, routers trained at lambda_1 < ... < lambda_n): u runs
  along the family, u * (n - 1) = i + f picks router i+1 with probability f and router i
  otherwise (interpolating between the two nearest lambdas, so expected cost moves
  continuously between theirs). The draw is a golden-ratio sequence over the query count:
  deterministic, and evenly spread.
* an escalation policy: the threshold is T = 1 - u (a lower T escalates less).

After each query the knob takes a dual-ascent step on the constraint mean cost <= X,

    u <- clip(u + eta * (c_t - X) / X, 0, 1),

i.e. u is eta times the running sum of relative overspend. While u stays inside [0, 1],
sum_t (c_t - X) = X (u_t - u_0) / eta, so the realised mean cost is within
X / (eta * t) of the target after t queries, whatever the costs' noise; a target below
the cheapest setting's cost (or above the dearest's) pins u at an end and is reported as
unreachable.

The state (u, queries, spend, target) persists per namespace in the store
(:class:`~budgetmem.store.controls.ControlStore`), so a server keeps its budget across
restarts. A new target keeps u (a good start) and restarts the counts.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from typing import Any

from budgetmem.errors import ConfigError, NoCostKnobError
from budgetmem.pipeline.policy import Policy, PolicyState
from budgetmem.pipeline.types import Tier
from budgetmem.router.escalate import Escalation
from budgetmem.store.controls import ControlStore

__all__ = ["BudgetState", "CostController", "CONTROL_NAME", "PolicyFamily"]

CONTROL_NAME = "target-cost"
_GOLDEN = (math.sqrt(5) - 1) / 2


class PolicyFamily:
    """Policies behind one cost knob, ordered from the most costly (smallest lambda) to the
    cheapest. :class:`~budgetmem.router.policy.RouterFamily` is one; fixed policies make
    another (tests, or a hand-made ladder such as high > mid > low)."""

    def __init__(self, members: dict[float, Policy]) -> None:
        if not members:
            raise ConfigError("a policy family needs at least one member")
        self.routers = dict(sorted(members.items()))
        self.name = "family(lambda=" + ",".join(f"{w:g}" for w in self.routers) + ")"

    def decide(self, state: PolicyState) -> Tier:
        """Outside target-cost mode: the member nearest the query's cost weight (the most
        costly one when it gives none), as a router family does."""
        lams = list(self.routers)
        w = lams[0] if state.cost_weight is None else min(lams, key=lambda x: (abs(x - state.cost_weight), x))
        return self.routers[w].decide(state)


@dataclass
class BudgetState:
    target_usd: float
    knob: float
    """u in [0, 1]: 0 the most costly setting, 1 the cheapest."""
    queries: int = 0
    spent_usd: float = 0.0
    """Extraction USD over the queries since this target was set."""
    pinned: int = 0
    """Queries after which the knob sat at an end of its range (target out of reach there)."""

    @property
    def mean_usd(self) -> float:
        return self.spent_usd / self.queries if self.queries else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean_usd": self.mean_usd}


class CostController:
    """One namespace's target-cost controller over one policy (a family or an escalation)."""

    def __init__(
        self, controls: ControlStore, namespace: str, target_usd: float, *, eta: float = 0.1, start: float = 0.5
    ) -> None:
        if not target_usd > 0 or not math.isfinite(target_usd):
            raise ConfigError(f"--target-usd must be a positive amount, got {target_usd}")
        if not 0 < eta <= 10:
            raise ConfigError(f"the controller's step eta must be in (0, 10], got {eta}")
        self.controls = controls
        self.namespace = namespace
        self.eta = eta
        self._lock = threading.Lock()
        saved = controls.get(namespace, CONTROL_NAME)
        if saved is not None and float(saved.get("target_usd", -1)) == target_usd:
            self.state = BudgetState(target_usd, float(saved["knob"]), int(saved["queries"]), float(saved["spent_usd"]),
                                     int(saved.get("pinned", 0)))  # fmt: skip
        else:
            knob = float(saved["knob"]) if saved is not None else start
            self.state = BudgetState(target_usd, min(1.0, max(0.0, knob)))

    # ------------------------------------------------------------------ choose
    def choose(self, policy: Any) -> tuple[Any, float | None, dict[str, Any]]:
        """(the policy to run this query with, its cost weight, what was chosen). ``policy``:
        a router family / :class:`PolicyFamily` (``.routers``: lambda -> router) or an
        :class:`~budgetmem.router.escalate.Escalation`."""
        with self._lock:
            u, n = self.state.knob, self.state.queries
        if isinstance(policy, Escalation):
            t = 1.0 - u
            return policy.with_threshold(t), None, {"knob": u, "threshold": t}
        routers = getattr(policy, "routers", None)
        if not isinstance(routers, dict) or not routers:
            raise NoCostKnobError(
                "target-cost mode needs a router family or an escalation policy",
                hint="use --policy router:DIR (a budgetmem frontier directory) or escalate:mid>high@0.5",
            )
        lams = sorted(routers)
        pos = u * (len(lams) - 1)
        i = min(int(pos), len(lams) - 1)
        frac = pos - i
        draw = (n * _GOLDEN) % 1.0
        pick = lams[i + 1] if i + 1 < len(lams) and draw < frac else lams[i]
        return routers[pick], pick, {"knob": u, "lambda": pick, "between": [lams[i], lams[min(i + 1, len(lams) - 1)]],
                                     "upper_share": frac}  # fmt: skip

    # ------------------------------------------------------------------ learn
    def observe(self, extraction_usd: float) -> BudgetState:
        """One dual-ascent step on the query's realised extraction cost; persisted at once."""
        if extraction_usd < 0 or not math.isfinite(extraction_usd):
            raise ConfigError(f"a query cost must be a non-negative amount, got {extraction_usd}")
        with self._lock:
            s = self.state
            raw = s.knob + self.eta * (extraction_usd - s.target_usd) / s.target_usd
            s.knob = min(1.0, max(0.0, raw))
            s.pinned += int(raw != s.knob)
            s.queries += 1
            s.spent_usd += extraction_usd
            self.controls.put(self.namespace, CONTROL_NAME, {k: v for k, v in asdict(s).items()})
            return BudgetState(**asdict(s))

    def reset(self) -> None:
        with self._lock:
            self.controls.delete(self.namespace, CONTROL_NAME)
            self.state = BudgetState(self.state.target_usd, 0.5)

"""The learned budget-tier router (routing paper §4.3, App. A.3): state, network, policy,
the cost-aware reward, and PPO.

Inference: ``load_router(path, encoder)`` gives a pipeline policy; ``--policy router:PATH``
on the CLI. Training (``reward``, ``ppo``, ``train``) is imported from its own modules, never for inference.
"""

from budgetmem.router.network import RouterNet
from budgetmem.router.policy import (
    CHECKPOINT_FORMAT,
    Decision,
    RouterFamily,
    RouterPolicy,
    load_router,
    load_routers,
    save_router,
)
from budgetmem.router.state import MODULE_DESCRIPTIONS, StateEncoder

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODULE_DESCRIPTIONS",
    "Decision",
    "RouterFamily",
    "RouterNet",
    "RouterPolicy",
    "StateEncoder",
    "load_router",
    "load_routers",
    "save_router",
]

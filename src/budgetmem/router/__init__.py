"""The learned budget-tier router, serving side (routing paper §4.3, App. A.3): state,
network, policy.

Inference: ``load_router(path, encoder)`` gives a pipeline policy; ``--policy router:PATH``
on the CLI. Training (the reward, PPO, the trainer, the frontier) lives in
:mod:`budgetmem.training`, which serving never imports.
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

"""Training: the budget-tier router with PPO (routing paper §4.3, App. A.3) and its
performance-cost frontier, and the learned write policy (selective-write paper §III-E).

Everything here sits above evaluation and the run harness; serving never imports it
(the router's inference code is :mod:`budgetmem.router`)."""

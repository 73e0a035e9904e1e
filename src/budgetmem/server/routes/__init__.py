"""One APIRouter per resource. Routes translate HTTP to ``BudgetMem`` calls and back; the
work itself runs in the service's pools, and no route holds logic of its own."""

"""The budget-tiered memory pipeline (routing paper §4)."""

"""The public surface is exactly what ``__all__`` says, and every name resolves."""

import budgetmem
import budgetmem.eval
import budgetmem.llm
import budgetmem.models
import budgetmem.pipeline
import budgetmem.router


def test_all_names_resolve():
    for module in (budgetmem, budgetmem.eval, budgetmem.llm, budgetmem.models, budgetmem.pipeline, budgetmem.router):
        assert len(module.__all__) == len(set(module.__all__))
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_error_tree():
    e = budgetmem.errors
    assert issubclass(e.UnknownPriceError, e.ConfigError)
    assert issubclass(e.ChecksumError, e.ModelError)
    for cls in (e.ServerUnavailableError, e.LLMTimeoutError, e.LLMResponseError):
        assert issubclass(cls, e.LLMError) and issubclass(cls, e.BudgetMemError)
    err = e.InputError("bad\n  thing", hint="fix it")
    assert str(err) == "bad thing (fix it)" and err.exit_code == 2

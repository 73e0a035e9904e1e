"""llama-cpp-python's OpenAI-compatible server, loaded with budgetmem's repack decision.

``python -m budgetmem.llm.llamacpp_server --model PATH [--repack auto|on|off] [server flags]``
takes every flag of ``python -m llama_cpp.server``. That server loads weights with
llama.cpp's defaults, which repack them for the CPU, and on CPUs with AMX that crashes
in decode; here the choice is made first, as for in-process models
(:mod:`budgetmem.llm.native`), and holds for the whole server process.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    mode = "auto"
    if "--repack" in args:
        i = args.index("--repack")
        mode = args[i + 1] if i + 1 < len(args) else "auto"
        del args[i : i + 2]
    model = args[args.index("--model") + 1] if "--model" in args else None
    if model is None:
        sys.exit("budgetmem.llm.llamacpp_server: error: --model PATH is required")

    import llama_cpp
    import llama_cpp.server.__main__ as server

    from budgetmem.errors import BudgetMemError
    from budgetmem.llm.native import model_params
    from budgetmem.llm.repack import resolve_repack
    from budgetmem.models.prepare import models_dir

    path = Path(model).resolve()
    try:
        version = getattr(llama_cpp, "__version__", "unknown")
        repack = resolve_repack(path, path.name, mode, models_dir() / "native-checks.json", version=version).enabled
    except BudgetMemError as exc:
        sys.exit(f"budgetmem.llm.llamacpp_server: error: {exc.one_line()}")
    sys.argv = [sys.argv[0], *args]
    with model_params(llama_cpp, repack=repack):  # held for the server's life: it loads inside main()
        server.main()


if __name__ == "__main__":  # pragma: no cover - a server process
    main()

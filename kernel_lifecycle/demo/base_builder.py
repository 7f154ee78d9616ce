"""The demo base model: a small Llama trained here on the three demo skills, standing in for a frontier model.

Nothing is downloaded. A byte-level BPE tokenizer is trained on the skills' pretraining text, a
4-layer LlamaForCausalLM (so a 2-layer student can be distilled from it) is trained with the
project's own step loop on ``prompt + solution + eos`` of every train split plus each skill's
``pretrain.jsonl``: combinations of the held-out (fresh) families that no shipped probe has. A
pretrained model knows more than any job shows a kernel, and that is what ``fresh`` then asks
about: does a kernel keep (or lose) what its jobs never showed it. Its skills are measured on
every measured split (dev, test, fresh, relearn) with the real scorers (greedy, 160 new tokens). The result is
deterministic from the seed on one machine and library set, and cached by content hash under
``KL_HOME/cache/base/<hash>/`` (hash of the config, the seed, the skills' data digests,
``BUILDER_VERSION`` and ``build_environment()``), so the quickstart and the tests build it
once. Across machines the weights are not bit-identical: torch picks its float kernels by the
CPU (AVX2, AVX512...), and tokenizers, transformers and torch releases change training in small
ways that 1,800 steps amplify; a cache entry is never reused across those. A build is written to a temporary directory and renamed
into place: a crash never leaves a half cache entry.

So that every machine starts the demo from the same bytes, one build ships with the package
(``demo/base/``: weights, tokenizer, build.json; built on an AVX512 CPU with torch 2.13.0,
transformers 5.24.0, tokenizers 0.23.3) and is what the defaults return, its weights verified
against ``SHIPPED_SHA256`` at every use. Still, downstream jobs train and measure in float on the
machine they run on, so a verdict can move with the CPU; the shipped base removes the largest
source (1,800 steps of drift), not all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lifecycle.boundary.generation import generate
from kernel_lifecycle.boundary.reference import record_retrain, shipped_retrain
from kernel_lifecycle.boundary.scorers import get_scorer
from kernel_lifecycle.boundary.scorers.base import Sample
from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, PRETRAIN_FILE, Probe, Skill, demo_skills
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.models.loading import base_sha256
from kernel_lifecycle.models.tokenizer import train_bpe_tokenizer
from kernel_lifecycle.resources import DEMO_BASE_SHA256, demo_base_dir, demo_reference_dir
from kernel_lifecycle.settings import get_settings
from kernel_lifecycle.training.data import batches, encode_probes, pad_id_of
from kernel_lifecycle.training.loop import train
from kernel_lifecycle.training.losses import ce_loss

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Bump when the build procedure changes in a way the config does not capture.
BUILDER_VERSION = "demo-base-4"
SKILL_NAMES = ("python", "cobol", "sql")
EVAL_MAX_NEW_TOKENS = 160
# dev: the metrics jobs start from; test, relearn: in-family; fresh: the held-out families.
# (Greedy generation is cheap next to training: all four measured splits cost ~20 s.)
EVAL_SPLITS = ("dev", "test", "fresh", "relearn")
# (share of the steps, multiple of the learning rate): a step decay
LR_PHASES = ((0.6, 1.0), (0.25, 0.25), (0.15, 0.0625))


@dataclass(frozen=True)
class BaseConfig:
    """Everything that decides the weights (with the data digests and BUILDER_VERSION)."""

    vocab_size: int = 1024
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 256
    max_positions: int = 256
    steps: int = 1800
    batch_size: int = 16
    lr: float = 4e-3
    seed: int = 0
    # One thread: on a CPU shared with other processes two OpenMP threads spin-wait on each
    # other (steps measured 2-10x slower under load), and a fixed count keeps sums bit-identical.
    threads: int = 1


@dataclass
class BaseBuild:
    path: Path
    sha256: str  # over the *.safetensors files, as bundle manifests record a base
    metrics: dict[str, float] = field(default_factory=dict)  # skill -> dev metric
    by_split: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> skill -> metric
    cached: bool = False
    seconds: float = 0.0


def _skills(skills_dir: Path | None) -> list[Skill]:
    skills = demo_skills(skills_dir or DEMO_SKILLS_DIR)
    missing = [name for name in SKILL_NAMES if name not in skills]
    if missing:
        raise JobError(
            f"demo skills missing: {', '.join(missing)}; run `python -m kernel_lifecycle.demo.generate_skills`"
        )
    return [skills[name] for name in SKILL_NAMES]


def build_environment() -> dict[str, str]:
    """What besides the config and data decides the weights: the libraries that train the
    tokenizer and the model, and the CPU kernels torch runs them with."""
    from importlib.metadata import version

    import torch

    return {"torch": torch.__version__, "transformers": version("transformers"), "tokenizers": version("tokenizers"),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def cache_key(config: BaseConfig, skills: list[Skill]) -> str:
    payload = {
        "builder": BUILDER_VERSION,
        "environment": build_environment(),
        "config": dataclasses.asdict(config),
        "data": {s.name: {split: s.digest(split) for split in ("train", *EVAL_SPLITS)} | {"pretrain": _pretrain_digest(s)}
                 for s in skills},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def pretrain_probes(skill: Skill) -> list[Probe]:
    """The skill's train split and its ``pretrain.jsonl`` (absent: none): what the base learns from."""
    path = skill.root / PRETRAIN_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return skill.probes("train") + [Probe.model_validate_json(line) for line in lines if line.strip()]


def _pretrain_digest(skill: Skill) -> str:
    path = skill.root / PRETRAIN_FILE
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _model(config: BaseConfig, tokenizer):  # noqa: ANN001, ANN202
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden,
        intermediate_size=config.intermediate,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return LlamaForCausalLM(llama)


def measure(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, skills: list[Skill], *, limit: int | None = None, split: str = "dev") -> dict[str, dict[str, float]]:
    """Greedy generation on each skill's ``split``, judged by its real scorer."""
    model.eval()
    out: dict[str, dict[str, float]] = {}
    for skill in skills:
        probes = skill.probes(split)[:limit]
        if not probes:
            continue
        gens = generate(model, tokenizer, [p.prompt for p in probes], max_new_tokens=EVAL_MAX_NEW_TOKENS,
                        batch_size=32)
        samples = [Sample(task_id=p.task_id, prompt=p.prompt, completion=g[0].text, test=p.test,
                          entry_point=p.entry_point) for p, g in zip(probes, gens)]
        verdicts = get_scorer(skill.scorer).score(samples)
        out[skill.name] = {
            "score": sum(v.passed for v in verdicts) / len(verdicts),
            "n": float(len(verdicts)),
            "truncated": sum(g[0].truncated for g in gens) / len(gens),
        }
    return out


def _train_into(
    staging: Path, config: BaseConfig, skills: list[Skill], *, eval_limit: int | None, display: Display,
    measured: list[Skill] | None = None, tokenizer_dir: Path | None = None,
) -> dict:
    """Train on ``skills``, measure ``measured`` (default: the same), save into ``staging``.
    ``tokenizer_dir``: reuse that base's tokenizer instead of training one (a retrain reference
    reads its relearning data as the same token ids as the kernels it is compared with)."""
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    corpus = {s.name: pretrain_probes(s) for s in skills}
    if tokenizer_dir is not None:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        tokenizer = train_bpe_tokenizer([p.prompt + p.canonical_solution for probes in corpus.values() for p in probes],
                                        vocab_size=config.vocab_size)
    model = _model(config, tokenizer)
    # One skill per batch, skills in turn: COBOL programs are ~4x longer than the others, and a
    # mixed batch pads every row to the longest, so this makes an average step ~2x cheaper.
    streams = [
        batches(encode_probes(corpus[s.name], tokenizer, max_length=config.max_positions, what=f"{s.name} train"),
                batch_size=config.batch_size, seed=config.seed + i, pad_id=pad_id_of(tokenizer))
        for i, s in enumerate(skills)
    ]
    stream = (next(streams[i % len(streams)]) for i in itertools.count())

    losses: list[float] = []
    with display.progress() as bar:
        # The step loop keeps one learning rate, so the decay is done in phases (a fresh AdamW
        # each): at a constant high rate the last weights are a noisy point, and greedy decoding
        # of long COBOL programs is the first thing to suffer.
        for i, (fraction, scale) in enumerate(LR_PHASES):
            left = config.steps - len(losses)
            n = min(left, max(1, round(config.steps * fraction))) if i < len(LR_PHASES) - 1 else left
            if n < 1:
                continue
            result = train(model, stream, loss_fn=ce_loss, steps=n, lr=config.lr * scale,
                           seed=config.seed + i, progress=bar)
            losses += result.losses
    train_seconds = time.perf_counter() - started

    measured = {split: measure(model, tokenizer, measured or skills, limit=eval_limit, split=split) for split in EVAL_SPLITS}
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if tokenizer_dir is not None:  # the origin's files as they are (measuring set a padding side on this copy)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(tokenizer_dir / name, staging / name)
    return {
        "builder": BUILDER_VERSION,
        "environment": build_environment(),
        "config": dataclasses.asdict(config),
        "data_digests": {s.name: s.digest("train") for s in skills},
        "pretrain_probes": {name: len(probes) for name, probes in corpus.items()},
        "metrics": {name: m["score"] for name, m in measured["dev"].items()},
        "metrics_by_split": {split: {name: m["score"] for name, m in m_split.items()} for split, m_split in measured.items()},
        "eval": {"split": "dev", "greedy": True, "max_new_tokens": EVAL_MAX_NEW_TOKENS, **measured["dev"]},
        "eval_by_split": measured,
        "steps": len(losses),
        "lr_phases": [list(p) for p in LR_PHASES],
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "cpu_load_1min": os.getloadavg()[0],
    }


def _torch_threads(n: int | None = None) -> int:
    """The current torch thread count; set it to ``n`` when given (the build restores it)."""
    import torch

    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()


SHIPPED_DIR = demo_base_dir()
SHIPPED_SHA256 = DEMO_BASE_SHA256  # a rebuild (`jobs build-base --force`) goes to the cache


def shipped_base(skills: list[Skill] | None = None) -> BaseBuild | None:
    """The demo base shipped with the package, its weights verified against ``SHIPPED_SHA256``;
    None when it is absent or was built from other train data than ``skills`` have now (the
    demo skills were regenerated: the caller builds instead). Damaged weights are refused."""
    info_path = SHIPPED_DIR / "build.json"
    if not info_path.is_file():
        return None
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if skills is not None and info.get("data_digests") != {s.name: s.digest("train") for s in skills}:
        return None
    sha = base_sha256(SHIPPED_DIR)
    if sha != SHIPPED_SHA256:
        raise JobError(
            f"the shipped demo base in {SHIPPED_DIR} is damaged (weights sha256 {sha[:12]}..., expected "
            f"{SHIPPED_SHA256[:12]}...): reinstall kernel-lifecycle, or build one with `kernel-lifecycle jobs build-base --force`"
        )
    return BaseBuild(SHIPPED_DIR, sha, info["metrics"], info.get("metrics_by_split", {}), cached=True, seconds=info["seconds"])


def shipped_reference(skill: str, skills: list[Skill]) -> BaseBuild | None:
    """The shipped demo base rebuilt without ``skill`` (``resources.demo_reference_dir``), its
    weights verified by ``boundary.reference``; None when none ships or the skills' data changed."""
    path = demo_reference_dir(skill)
    if not (path / "build.json").is_file():
        return None
    info = json.loads((path / "build.json").read_text(encoding="utf-8"))
    if info.get("data_digests") != {s.name: s.digest("train") for s in skills if s.name != skill}:
        return None
    found = shipped_retrain(DEMO_BASE_SHA256, skill)
    if found is None:
        return None
    return BaseBuild(found[0], found[1], info["metrics"], info.get("metrics_by_split", {}), cached=True, seconds=info["seconds"])


def build_demo_base(
    *,
    force: bool = False,
    steps: int | None = None,
    display: Display = SILENT,
    config: BaseConfig | None = None,
    eval_limit: int | None = None,
    skills_dir: Path | None = None,
    without: str | None = None,
) -> BaseBuild:
    """The demo base: the shipped one (the defaults, unless ``force``), else built, or reused
    from the cache entry of the same config, seed, data and environment.

    ``steps``/``config`` and ``eval_limit`` (problems per skill and measured split) are knobs for tests; the
    defaults are the real build, which must really have all three skills. ``force`` rebuilds it
    into the cache (weights differ from the shipped ones on another CPU or library release).

    ``without``: the same recipe without that skill's data (train split and pretraining text),
    on the base's own tokenizer: the *retrain reference* a downskill of that skill is judged
    against (``boundary.reference``), recorded in the reference index. Every skill is still
    measured, so its build.json shows what a model that never saw the skill scores.
    """
    config = config or BaseConfig()
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    skills = _skills(skills_dir)
    if without is not None:
        if config == BaseConfig() and eval_limit is None and not force:
            shipped = shipped_reference(without, skills)
            if shipped is not None:
                return shipped
        origin = build_demo_base(display=display, config=config, eval_limit=eval_limit, skills_dir=skills_dir)
        return _build_without(without, config=config, skills=skills, origin=origin, force=force, eval_limit=eval_limit, display=display)
    if config == BaseConfig() and eval_limit is None and not force:
        shipped = shipped_base(skills)
        if shipped is not None:
            return shipped
    key = cache_key(config, skills)
    if eval_limit is not None:  # a partial measurement is a different cache entry
        key = hashlib.sha256(f"{key}/eval{eval_limit}".encode()).hexdigest()
    return _cached_build(key, force=force, train=lambda staging: _train_into(
        staging, config, skills, eval_limit=eval_limit, display=display))


def _build_without(
    skill: str, *, config: BaseConfig, skills: list[Skill], origin: BaseBuild, force: bool, eval_limit: int | None,
    display: Display,
) -> BaseBuild:
    names = [s.name for s in skills]
    if skill not in names:
        raise JobError(f"cannot build the demo base without {skill!r}: not a demo skill (skills: {', '.join(names)})")
    kept = [s for s in skills if s.name != skill]
    key = hashlib.sha256(f"{cache_key(config, kept)}/without:{skill}/tokenizer-of:{origin.sha256}/eval{eval_limit}".encode()).hexdigest()

    def make(staging: Path) -> dict:
        info = _train_into(staging, config, kept, eval_limit=eval_limit, display=display, measured=skills, tokenizer_dir=origin.path)
        return {**info, "without": skill, "origin_sha256": origin.sha256}

    build = _cached_build(key, force=force, train=make)
    record_retrain(origin_sha256=origin.sha256, skill=skill, path=build.path, sha256=build.sha256, seconds=build.seconds)
    return build


def _cached_build(key: str, *, force: bool, train: Callable[[Path], dict]) -> BaseBuild:
    """The cache entry ``key``: reused, or trained into a staging folder and renamed into place."""
    root = get_settings().cache_dir / "base"
    final = root / key[:24]
    if final.is_dir() and force:
        shutil.rmtree(final)
    if (final / "build.json").is_file():
        info = json.loads((final / "build.json").read_text(encoding="utf-8"))
        return BaseBuild(final, base_sha256(final), info["metrics"], info.get("metrics_by_split", {}), cached=True,
                         seconds=info["seconds"])

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    threads = _torch_threads()
    try:
        info = train(staging)
        # build.json last: its presence marks a complete entry
        (staging / "build.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        try:
            staging.rename(final)
        except OSError:
            if not (final / "build.json").is_file():  # not a concurrent identical build: a real error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _torch_threads(threads)
    return BaseBuild(final, base_sha256(final), info["metrics"], info["metrics_by_split"], cached=False,
                     seconds=info["seconds"])

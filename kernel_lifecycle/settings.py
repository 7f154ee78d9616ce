"""Settings from the environment (prefix ``KL_``), validated by pydantic-settings.

Defaults are embedded SQLite files under ``KL_HOME``; a PostgreSQL URL works unchanged.
``get_settings()`` is cached; tests call ``get_settings.cache_clear()`` after changing the
environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# settings that take one of a few words
CHOICES = {"sandbox": ("bwrap", "none"), "executor": ("local", "ray"), "device": ("auto", "cpu", "cuda")}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KL_", extra="ignore")

    home: Path = Field(default=Path("./.kernel-lifecycle"))
    database_url: str | None = None
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "KL_MLFLOW_TRACKING_URI"),
    )
    # "bwrap" (default) isolates generated code with bubblewrap; "none" is the explicit,
    # weaker choice for machines without it (rlimits and a process group only).
    sandbox: str = "bwrap"
    actor: str | None = None
    # team mode: the lifecycle service (`kernel-lifecycle serve`) that runs every deciding action
    # under the principal MLflow's user store proves; set, the CLI sends those actions there and
    # refuses --actor
    api_url: str | None = None
    # a folder of skill folders (skill.json + <split>.jsonl for train/dev/test/fresh/relearn; a missing
    # split is empty); default: the demo skills
    skills_dir: Path | None = None
    # the guard: the HMAC secret MLflow signs its webhooks with (`guard install` registers it,
    # `guard serve` verifies it), and how often the scheduler runs `guard check --repair`
    # (seconds; 0 turns the interval check off)
    guard_secret: SecretStr | None = None
    guard_interval: float = Field(default=60.0, ge=0.0)
    # a running fire's lease: renewed every third of it; a lease another scheduler watched go
    # unrenewed this long is taken over (a fire whose scheduler died runs again within two)
    scheduler_lease_seconds: float = Field(default=60.0, ge=1.0)
    # where jobs and scoring batches run: "local" (in this process, no Ray needed) or "ray"
    executor: str = "local"
    # the Ray cluster of executor "ray" (ray.init's address: "host:6379", "ray://host:10001",
    # "auto"); unset: a local Ray instance that lives as long as the command
    ray_address: str | None = None
    # where tensors live: "auto" (CUDA when torch sees a GPU, else the CPU), "cpu" or "cuda"
    # (refused without a GPU); the dtype follows it (models.device.placement)
    device: str = "auto"

    @field_validator("sandbox", "executor", "device")
    @classmethod
    def _one_of(cls, value: str, info: ValidationInfo) -> str:
        allowed = CHOICES[info.field_name]
        if value not in allowed:
            raise ValueError(f"KL_{info.field_name.upper()} must be " + " or ".join(repr(a) for a in allowed))
        return value

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'lifecycle.db'}"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.home_dir / "mlartifacts"

    @property
    def cache_dir(self) -> Path:
        return self.home_dir / "cache"

    def ensure_home(self) -> Path:
        path = self.home_dir
        path.mkdir(parents=True, exist_ok=True)
        return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

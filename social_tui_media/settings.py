"""Settings from the environment and `.env`, read once and passed around as a frozen value.

Each setting names its environment variable and its default in one place: the field below.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import load_dotenv


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which variable to set."""


DEFAULT_SQLITE_PATH = Path("data/social_tui.db")
DEFAULT_SQLITE_URL = f"sqlite:///{DEFAULT_SQLITE_PATH}"
USE_HOME_ENV = "home"  # load_settings' default: the `.env` in the home
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def _from_env(variable: str, default: Any = None, *fallbacks: str, secret: bool = False) -> Any:
    """A settings field read from `variable` (then `fallbacks`), else `default`; a secret one
    never appears in the settings' repr (tracebacks, error reports)."""
    return field(default=default, repr=not secret, metadata={"env": (variable, *fallbacks)})


def default_home() -> Path:
    """Where `.env`, `data/`, `cache/` and `log/` live when SOCIAL_TUI_HOME is unset: the checkout
    the scripts are in (as the installation's scripts do), else, installed as a package, the
    user's data directory."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "manage_media.py").is_file():
        return checkout
    data = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(data) if data else Path.home() / ".local" / "share") / "social-tui"


@dataclass(frozen=True)
class Settings:
    home: Path = _from_env("SOCIAL_TUI_HOME", Path("."))
    database_url: str | None = _from_env("DATABASE_URL", None, "SUPABASE_DB_URL", secret=True)
    supabase_url: str | None = _from_env("SUPABASE_URL")
    supabase_api_key: str | None = _from_env("SUPABASE_API_KEY", secret=True)
    cache_dir: Path = _from_env("MEDIA_CACHE_DIR", Path("cache/media"))
    max_concurrent: int = _from_env("MEDIA_MAX_CONCURRENT", 5)
    download_timeout: float = _from_env("MEDIA_DOWNLOAD_TIMEOUT", 30.0)
    min_download_rate: int = _from_env("MEDIA_MIN_DOWNLOAD_RATE", 1024)  # bytes/s over the first minute on
    max_file_size: int = _from_env("MEDIA_MAX_FILE_SIZE", 104_857_600)
    cache_limit: int = _from_env("MEDIA_CACHE_LIMIT", 10_737_418_240)
    allow_private_hosts: Networks = _from_env("MEDIA_ALLOW_PRIVATE_HOSTS", ())
    s3_bucket: str | None = _from_env("AWS_S3_BUCKET")
    s3_region: str | None = _from_env("AWS_S3_REGION")
    s3_endpoint_url: str | None = _from_env("AWS_ENDPOINT_URL")
    openai_api_key: str | None = _from_env("OPENAI_API_KEY", secret=True)
    openai_base_url: str | None = _from_env("OPENAI_BASE_URL")
    ai_model: str = _from_env("MEDIA_AI_MODEL", "gpt-4o-mini")
    log_file: Path = _from_env("MEDIA_LOG_FILE", Path("log/media.log"))
    sentry_dsn: str | None = _from_env("SENTRY_DSN", secret=True)
    retention_days: int | None = _from_env("MEDIA_RETENTION_DAYS")  # None: no retention policy
    archive_transition_days: int = _from_env("MEDIA_ARCHIVE_TRANSITION_DAYS", 90)  # 0: no transition
    archive_storage_class: str = _from_env("MEDIA_ARCHIVE_STORAGE_CLASS", "GLACIER_IR")

    @property
    def store_url(self) -> str:
        """The database the store talks to: DATABASE_URL, else SUPABASE_DB_URL, else REST, else SQLite."""
        if self.database_url:
            return self.database_url
        if self.supabase_url and self.supabase_api_key:
            return "supabase-rest"
        return f"sqlite:///{_under(self.home, DEFAULT_SQLITE_PATH)}"

    @property
    def database_label(self) -> str:
        """The database in use as a person may see it: no password, no key, no query string."""
        url = self.store_url
        if url == "supabase-rest":
            return f"{self.supabase_url} (Supabase REST)"
        if url.startswith("sqlite:///"):
            return url
        parts = urlsplit(url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _positive(name: str, raw: str, kind: type) -> int | float:
    noun = "a whole number" if kind is int else "a number of seconds"
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {noun}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={raw!r} must be a finite number greater than zero")
    return value


URL_SETTINGS = ("SUPABASE_URL", "AWS_ENDPOINT_URL", "OPENAI_BASE_URL")
OPTIONAL_COUNTS = ("MEDIA_RETENTION_DAYS",)  # unset means off; set, a whole number above zero
# S3 storage classes a lifecycle rule may move archive copies to. GLACIER and DEEP_ARCHIVE
# objects must be restored before a GET: `url`, restores and eviction's checks then wait on it.
STORAGE_CLASSES = (
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
)
MIN_IA_DAYS = 30  # S3 refuses a transition to STANDARD_IA or ONEZONE_IA sooner


def _transition_days(name: str, raw: str) -> int:
    """MEDIA_ARCHIVE_TRANSITION_DAYS: days before archive copies change class; 0 turns it off."""
    if raw == "0":
        return 0
    return int(_positive(name, raw, int))


def _storage_class(name: str, raw: str) -> str:
    value = raw.upper()
    if value not in STORAGE_CLASSES:
        raise ConfigError(f"{name}={raw!r}: expected one of {', '.join(STORAGE_CLASSES)}")
    return value


def _url(name: str, raw: str) -> str:
    """An http(s) URL with a host, or ConfigError naming the variable."""
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL, e.g. https://host:port")
    return raw


def parse_networks(raw: str) -> Networks:
    """Parse a comma list of IPs/CIDRs (MEDIA_ALLOW_PRIVATE_HOSTS)."""
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"MEDIA_ALLOW_PRIVATE_HOSTS: {part!r} is not an IP address or CIDR") from None
    return tuple(networks)


def _parse(name: str, raw: str, default: Any) -> Any:
    """One variable's text as the type of its default."""
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if name in OPTIONAL_COUNTS:
        return _positive(name, raw, int)
    if name == "MEDIA_ARCHIVE_TRANSITION_DAYS":
        return _transition_days(name, raw)
    if name == "MEDIA_ARCHIVE_STORAGE_CLASS":
        return _storage_class(name, raw)
    if isinstance(default, int | float):
        return _positive(name, raw, type(default))
    if isinstance(default, Path):
        return Path(raw)
    if name in URL_SETTINGS:
        return _url(name, raw)
    if isinstance(default, tuple):
        return parse_networks(raw)
    return raw


def _home() -> Path:
    raw = os.environ.get("SOCIAL_TUI_HOME", "").strip()
    return Path(raw).expanduser().resolve() if raw else default_home()


def _under(home: Path, path: Path) -> Path:
    return path if path.is_absolute() else home / path


def _sqlite_under(home: Path, url: str) -> str:
    """A relative `sqlite:///path` resolved in the home, so the working directory never matters."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{_under(home, Path(url[len('sqlite:///') :]))}"
    return url


def _check_complete(settings: Settings) -> None:
    """A partial configuration is an error naming what is missing, never a silent fallback."""
    if bool(settings.supabase_url) != bool(settings.supabase_api_key) and not settings.database_url:
        missing = "SUPABASE_API_KEY" if settings.supabase_url else "SUPABASE_URL"
        raise ConfigError(
            f"{missing} is not set but {'SUPABASE_URL' if missing.endswith('KEY') else 'SUPABASE_API_KEY'} is: set both for the Supabase REST back end, or neither"
        )
    url = settings.store_url
    if url.startswith("sqlite:///") and settings.database_url:
        folder = Path(url[len("sqlite:///") :]).parent
        if not folder.is_dir():
            raise ConfigError(f"DATABASE_URL names a SQLite file in {folder}, which does not exist")
    ia = settings.archive_storage_class in ("STANDARD_IA", "ONEZONE_IA")
    if ia and 0 < settings.archive_transition_days < MIN_IA_DAYS:
        raise ConfigError(
            f"MEDIA_ARCHIVE_TRANSITION_DAYS={settings.archive_transition_days}: S3 moves objects to "
            f"{settings.archive_storage_class} after {MIN_IA_DAYS} days at the earliest"
        )
    if settings.cache_dir.exists() and not settings.cache_dir.is_dir():
        raise ConfigError(f"MEDIA_CACHE_DIR={str(settings.cache_dir)!r} is a file, not a directory")


def load_settings(env_file: str | os.PathLike[str] | None = USE_HOME_ENV) -> Settings:
    """Read settings from the environment, after loading `.env` (which never overrides): by
    default the one in the home. Relative paths resolve in the home (SOCIAL_TUI_HOME, else
    `default_home()`), whatever the working directory."""
    home = _home()
    env_path = home / ".env" if env_file == USE_HOME_ENV else env_file
    if env_path and Path(env_path).is_file():
        load_dotenv(env_path, override=False)
        home = _home()  # the .env may not set SOCIAL_TUI_HOME, but the environment may have
    values: dict[str, Any] = {}
    for spec in fields(Settings):
        for name in spec.metadata["env"]:
            raw = os.environ.get(name, "").strip()
            if raw:
                values[spec.name] = _parse(name, raw, spec.default)
                break
    values["home"] = home
    for key in ("cache_dir", "log_file"):
        values[key] = _under(home, values.get(key, getattr(Settings, key)))
    values["database_url"] = _sqlite_under(home, values.get("database_url") or "") or None
    settings = Settings(**values)
    _check_complete(settings)
    return settings

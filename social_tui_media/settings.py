"""Settings from the environment and `.env`, read once and passed around as a frozen value."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which variable to set."""


DEFAULT_SQLITE_URL = "sqlite:///data/social_tui.db"


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    supabase_url: str | None = None
    supabase_api_key: str | None = None
    cache_dir: Path = Path("cache/media")
    max_concurrent: int = 5
    download_timeout: float = 30.0
    max_file_size: int = 104_857_600
    cache_limit: int = 10_737_418_240
    allow_private_hosts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    s3_bucket: str | None = None
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    ai_model: str = "gpt-4o-mini"
    log_file: Path = Path("log/media.log")
    sentry_dsn: str | None = None

    @property
    def store_url(self) -> str:
        """The database the store talks to: DATABASE_URL, else SUPABASE_DB_URL, else REST, else SQLite."""
        if self.database_url:
            return self.database_url
        if self.supabase_url and self.supabase_api_key:
            return "supabase-rest"
        return DEFAULT_SQLITE_URL


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than zero")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than zero")
    return value


def parse_networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
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


def _str(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read settings from the environment, after loading `.env` (which never overrides)."""
    if env_file and Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    return Settings(
        database_url=_str("DATABASE_URL") or _str("SUPABASE_DB_URL"),
        supabase_url=_str("SUPABASE_URL"),
        supabase_api_key=_str("SUPABASE_API_KEY"),
        cache_dir=Path(_str("MEDIA_CACHE_DIR") or "cache/media"),
        max_concurrent=_int("MEDIA_MAX_CONCURRENT", 5),
        download_timeout=_float("MEDIA_DOWNLOAD_TIMEOUT", 30.0),
        max_file_size=_int("MEDIA_MAX_FILE_SIZE", 104_857_600),
        cache_limit=_int("MEDIA_CACHE_LIMIT", 10_737_418_240),
        allow_private_hosts=parse_networks(os.environ.get("MEDIA_ALLOW_PRIVATE_HOSTS", "")),
        s3_bucket=_str("AWS_S3_BUCKET"),
        s3_region=_str("AWS_S3_REGION"),
        s3_endpoint_url=_str("AWS_ENDPOINT_URL"),
        openai_api_key=_str("OPENAI_API_KEY"),
        openai_base_url=_str("OPENAI_BASE_URL"),
        ai_model=_str("MEDIA_AI_MODEL") or "gpt-4o-mini",
        log_file=Path(_str("MEDIA_LOG_FILE") or "log/media.log"),
        sentry_dsn=_str("SENTRY_DSN"),
    )

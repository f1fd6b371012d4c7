"""`get_supabase_client()`, as the installation's scripts import it: a supabase-py client for
SUPABASE_URL and SUPABASE_API_KEY, read from the environment and the `.env` beside this file."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

from social_tui_media.settings import ConfigError
from supabase import Client, create_client

ENV_FILE = Path(__file__).resolve().with_name(".env")


def get_supabase_client() -> Client:
    """A client for the project the environment names; ConfigError saying which variable is missing."""
    load_dotenv(ENV_FILE, override=False)
    url, key = os.environ.get("SUPABASE_URL", "").strip(), os.environ.get("SUPABASE_API_KEY", "").strip()
    missing = [name for name, value in (("SUPABASE_URL", url), ("SUPABASE_API_KEY", key)) if not value]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set: add them to {ENV_FILE}")
    return create_client(url, key)

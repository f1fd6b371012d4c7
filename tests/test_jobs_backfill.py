"""Backfill completes each stored post's media: every slot its raw JSON implies and no row
holds is added, whether the post has no rows or some; a second run adds nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter

import pytest

from social_tui_media.jobs.backfill import backfill_media
from social_tui_media.jobs.import_posts import import_path
from social_tui_media.store.rest import RestStore
from social_tui_media.store.sqlite import SQLiteStore
from tests.conftest import ROOT, scrape


def delete_rows(store, media_ids: list[str]) -> None:
    """Rows the older scripts never wrote, removed behind the store's back."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                f"DELETE FROM post_media WHERE media_id IN ({','.join('?' * len(media_ids))})", media_ids
            )
    elif isinstance(store, RestStore):  # a filtered DELETE, as Supabase's safeupdate requires
        store._client.table("post_media").delete(returning="minimal").in_("media_id", media_ids).execute()
    else:
        store._conn.execute("DELETE FROM post_media WHERE media_id = ANY(%s)", (media_ids,))


def partly_stored(store, samples_dir) -> tuple[list[dict], list[dict]]:
    """The sample scrape imported, then one slot of a post that keeps others, and every slot
    of another post, deleted. Returns (rows kept, rows deleted)."""
    import_path(store, scrape(samples_dir, 1))
    rows = store.list_media()
    per_post = Counter(r["post_id"] for r in rows)
    several = next(p for p, n in per_post.items() if n >= 2)
    single = next(p for p, n in per_post.items() if n == 1)
    gone = [next(r for r in rows if r["post_id"] == several), next(r for r in rows if r["post_id"] == single)]
    delete_rows(store, [r["media_id"] for r in gone])
    return [r for r in rows if r not in gone], gone


def slots(rows) -> set[tuple[str, str]]:
    return {(r["post_id"], r["slot_key"]) for r in rows}


def test_media_slot_keys_are_every_stored_slot_of_the_posts_asked(store, samples_dir):
    import_path(store, scrape(samples_dir, 1))
    rows = store.list_media()
    some_posts = sorted({r["post_id"] for r in rows})[:3]
    assert store.media_slot_keys(some_posts) == slots(r for r in rows if r["post_id"] in some_posts)
    assert store.media_slot_keys(["p-nobody"]) == set()


def test_backfill_adds_the_missing_slots_of_posts_with_some_rows_and_with_none(store, samples_dir):
    kept, gone = partly_stored(store, samples_dir)
    report = backfill_media(store)
    assert (report.posts_without_media, report.media_found, len(report.media_ids)) == (2, 2, 2)
    after = store.list_media()
    assert slots(after) == slots(kept) | slots(gone) and len(after) == len(kept) + 2
    assert {r["media_id"] for r in kept} <= {r["media_id"] for r in after}  # nothing stored was touched
    again = backfill_media(store)
    assert (again.posts_without_media, again.media_found) == (0, 0) and len(store.list_media()) == len(after)


def test_a_dry_run_lists_what_would_be_added_and_writes_nothing(store, samples_dir):
    kept, gone = partly_stored(store, samples_dir)
    report = backfill_media(store, dry_run=True)
    assert {(s.post_id, s.slot_key) for s in report.missing} == slots(gone)
    assert report.media_ids == [] and slots(store.list_media()) == slots(kept)


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_cli_dry_run_prints_each_missing_slot_without_its_signature(store, cli_env, samples_dir, tmp_path):
    _, gone = partly_stored(store, samples_dir)
    result = subprocess.run(
        [sys.executable, str(ROOT / "backfill_media.py"), "--dry-run", "--json"],
        env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    listed = [line.split() for line in result.stderr.splitlines() if line.startswith("  p-")]
    assert {(post_id, key) for post_id, _, _, key in listed} == slots(gone)  # slot keys: no signature

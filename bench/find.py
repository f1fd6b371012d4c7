"""Find it (issue 14): local text extraction, search latency, duplicates found.

    python bench/find.py [--rows 100000] [--out bench/FIND.md]

1. Extraction on this machine: ms per image (OCR of a generated slide, 960x540), per PDF page
   with a text layer (pdfium) and per scanned page (rendered and OCR'd), with the real engine.
2. Search latency over N media rows (default 100,000; 33,334 posts, three media each, one in
   ten re-sharing another's bytes; text from 20,000 Zipf-distributed words and 70 topic words) on SQLite (FTS5), PostgreSQL (tsvector + GIN, pg_trgm) and the
   REST back end (the loopback PostgREST stand-in on the same PostgreSQL): the median of 5 runs
   of each query through the store, collapse and snippets included.
3. Duplicates on a corpus with re-shares: unique slides, their identical re-shares and their
   re-encoded, resized copies run through extract-text: OCR calls made against rows, and the
   rows a duplicate-aware analysis would not send (every group member but one). The analysis
   side: analyze shares a result over exactly these groups (`shareable_analysis`; tested in
   tests/test_jobs_analyze_batch.py), so the rows outside one analysed copy per group are its saving.

Timings on a shared 2-core machine are noisy; the goal is < 100 ms on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import throwaway_postgres  # noqa: E402
from devtools import text_media  # noqa: E402

WORDS = (
    "cloud graviton lambda serverless dynamodb aurora bedrock keynote launch stage expo venetian hall "
    "cost anomaly budget savings region latency throughput cluster kubernetes container storage network "
    "security identity policy compliance analytics streaming pipeline warehouse lakehouse model agent "
    "inference training dataset benchmark migration modernization mainframe observability tracing "
    "logging metrics dashboard alarm incident resilience failover backup archive glacier"
).split()
QUERIES = [
    ("one common word", "cloud"),
    ("two words", "keynote venetian"),
    ("phrase", '"cost anomaly"'),
    ("prefix", "observ*"),
    ("negation", "graviton -lambda"),
    ("field: text", "dynamodb", {"field": "text"}),
    ("author + type filter", "budget", {"author": "author7", "media_type": "image"}),
    ("rare word", "mainframe glacier failover"),
    ("misspelling (PostgreSQL: trigram fallback)", "venetain"),
]


FILLER = [f"w{i}" for i in range(20_000)]  # other words, Zipf-distributed as in real text
FILLER_WEIGHTS = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(FILLER))))


def phrase(rng: random.Random, n: int) -> str:
    """n words: one in six from the topic list (each then in a few percent of documents)."""
    return " ".join(
        rng.choice(WORDS) if rng.random() < 1 / 6 else rng.choices(FILLER, cum_weights=FILLER_WEIGHTS)[0]
        for _ in range(n)
    )


def corpus_rows(rows: int, seed: int = 7) -> tuple[list[tuple], list[tuple]]:
    """(posts, media) rows for a direct insert: posts of 3 media each."""
    rng = random.Random(seed)
    posts, media = [], []
    n_posts = (rows + 2) // 3
    for p in range(n_posts):
        post_id = f"p-{p:08x}"
        posts.append((post_id, f"urn:li:activity:{p}", 1_700_000_000_000 + p * 60_000, f"author{p % 500}",
                      phrase(rng, 12), f"https://www.linkedin.com/posts/{p}"))  # fmt: skip
        for i in range(3):
            if len(media) >= rows:
                break
            n = len(media)
            md5 = f"{(n if rng.random() > 0.1 else rng.randrange(max(n, 1))):032x}"
            analysis = {"description": phrase(rng, 10), "tags": [rng.choice(WORDS) for _ in range(3)],
                        "text_in_image": phrase(rng, 4)}  # fmt: skip
            media.append((f"med-{n:010x}", post_id, "image" if i < 2 else "document", md5,
                          json.dumps(analysis), phrase(rng, 8), f"/cache/{md5}", i))  # fmt: skip
    return posts, media


POST_SQL = """INSERT INTO posts (post_id, urn, posted_at_timestamp, author_username, text_content, url)
              VALUES ({0},{0},{0},{0},{0},{0})"""
MEDIA_SQL = """INSERT INTO post_media (media_id, post_id, media_type, media_url, slot_key, md5_sum, ai_analysis,
                   extracted_text, local_file_path, position, download_status, ai_analysis_status, text_status)
               VALUES ({0},{0},{0},'https://x/'||{0},'https://x/'||{0},{0},{0},{0},{0},{0},'downloaded',
                       'completed','completed')"""


def seed_sqlite(path: Path, rows: int) -> None:
    from social_tui_media.store.sqlite import SQLiteStore

    SQLiteStore(path).close()
    import sqlite3

    posts, media = corpus_rows(rows)
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(POST_SQL.format("?"), posts)
        conn.executemany(MEDIA_SQL.format("?"), [(m[0], m[1], m[2], m[0], m[0], *m[3:]) for m in media])
    conn.close()


def seed_postgres(url: str, rows: int) -> None:
    import psycopg

    posts, media = corpus_rows(rows)
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY posts (post_id, urn, posted_at_timestamp, author_username, text_content, url) FROM STDIN"
        ) as cp:
            for row in posts:
                cp.write_row(row)
        cur.execute("CREATE TEMP TABLE m (media_id text, post_id text, media_type text, md5_sum text, ai_analysis text,"
                    " extracted_text text, local_file_path text, position int)")  # fmt: skip
        with cur.copy("COPY m FROM STDIN") as cp:
            for row in media:
                cp.write_row(row)
        cur.execute(
            """INSERT INTO post_media (media_id, post_id, media_type, media_url, slot_key, md5_sum, ai_analysis,
                   extracted_text, local_file_path, position, download_status, ai_analysis_status, text_status)
               SELECT media_id, post_id, media_type, 'https://x/' || media_id, 'https://x/' || media_id, md5_sum,
                      ai_analysis, extracted_text, local_file_path, position, 'downloaded', 'completed', 'completed'
                 FROM m"""
        )
        cur.execute("ANALYZE")


def time_queries(store, label: str) -> list[tuple[str, str, float, int]]:
    from social_tui_media.store.search import SearchQuery, parse_search

    results = []
    for name, text, *options in QUERIES:
        query = SearchQuery(parse_search(text), **(options[0] if options else {}))
        store.search_media(query)  # warm
        times, hits = [], 0
        for _ in range(5):
            started = time.perf_counter()
            hits = len(store.search_media(query))
            times.append(time.perf_counter() - started)
        results.append((label, name, statistics.median(times) * 1000, hits))
    return results


def bench_search(rows: int) -> list[tuple[str, str, float, int]]:
    from devtools.postgrest_server import PostgrestTestServer
    from social_tui_media.store.postgres import PostgresStore
    from social_tui_media.store.rest import RestStore
    from social_tui_media.store.sqlite import SQLiteStore

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        seed_sqlite(path, rows)
        print(f"seeded SQLite with {rows} media in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        store = SQLiteStore(path)
        results += time_queries(store, "SQLite (FTS5)")
        store.close()
    with throwaway_postgres() as url:
        started = time.perf_counter()
        seed_postgres(url, rows)
        print(
            f"seeded PostgreSQL with {rows} media in {time.perf_counter() - started:.1f} s", file=sys.stderr
        )
        store = PostgresStore(url)
        results += time_queries(store, "PostgreSQL (tsvector, pg_trgm)")
        store.close()
        with PostgrestTestServer(url) as server:
            store = RestStore(server.url, server.service_key)
            results += time_queries(store, "REST (loopback PostgREST stand-in)")
            store.close()
    return results


def bench_extraction(engine) -> list[tuple[str, float]]:
    from social_tui_media.media.text_extract import extract_text

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        slides = [text_media.jpeg(text_media.slide([f"Slide {i}", "Serverless at scale", "Cost anomaly"]), 80)
                  for i in range(5)]  # fmt: skip
        times = []
        for i, data in enumerate(slides):
            (tmp_path / f"{i}.jpg").write_bytes(data)
            started = time.perf_counter()
            extract_text(tmp_path / f"{i}.jpg", "image/jpeg", engine)
            times.append(time.perf_counter() - started)
        out.append(("image (960x540 slide, OCR)", statistics.median(times) * 1000))
        layer = text_media.pdf_with_text([[f"Page {i}", "Quarterly budget review"] for i in range(20)])
        (tmp_path / "layer.pdf").write_bytes(layer)
        started = time.perf_counter()
        extract_text(tmp_path / "layer.pdf", "application/pdf", engine)
        out.append(("PDF page with a text layer (pdfium)", (time.perf_counter() - started) * 1000 / 20))
        scan = text_media.pdf_scanned([text_media.slide([f"Scanned page {i}"]) for i in range(3)])
        (tmp_path / "scan.pdf").write_bytes(scan)
        started = time.perf_counter()
        extract_text(tmp_path / "scan.pdf", "application/pdf", engine)
        out.append(("scanned PDF page (rendered, OCR)", (time.perf_counter() - started) * 1000 / 3))
    return out


def bench_duplicates(engine) -> dict:
    """Unique slides, identical re-shares and re-encoded resized copies through extract-text."""
    import io

    from PIL import Image

    from devtools.text_media import RememberingEngine
    from social_tui_media.jobs.extract_text import extract_pending
    from social_tui_media.settings import Settings
    from social_tui_media.store.interface import (
        DownloadClaim,
        DownloadOutcome,
        MediaSlotRow,
        PostRecord,
        make_event,
    )
    from social_tui_media.store.sqlite import SQLiteStore

    counting = RememberingEngine(engine)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "cache" / "media"
        (cache / "images").mkdir(parents=True)
        store = SQLiteStore(root / "d.db")
        files = []
        for i in range(10):
            picture = text_media.banner(f"Launch day {i} keynote", text_media.photo(seed=i))
            original = text_media.jpeg(picture, 85)
            files.append(original)
            files.append(original)  # identical re-share
            if i < 5:  # a re-encoded, resized re-share
                files.append(text_media.jpeg(Image.open(io.BytesIO(original)).resize((720, 480)), 50))
        import hashlib

        for n, data in enumerate(files):
            md5 = hashlib.md5(data).hexdigest()
            path = cache / "images" / f"{md5}.jpg"
            path.write_bytes(data)
            [(post_id, _)] = store.upsert_posts(
                [PostRecord(f"urn:{n}", None, n, f"a{n}", None, "", None, None, "{}")]
            )
            url = f"https://x/{n}"
            [m] = store.upsert_media(
                [MediaSlotRow(f"med-{n:04d}", post_id, "image", url, url, "image", 0, None)]
            )
            store.claim_downloads(DownloadClaim("d", 1, media_ids=[m.media_id]))
            store.finish_downloads("d", [DownloadOutcome(m.media_id, "downloaded", make_event("media_downloaded"),
                                                         md5_sum=md5, file_size=len(data), mime_type="image/jpeg",
                                                         local_file_path=str(path), attempts=1)])  # fmt: skip
        settings = Settings(database_url=f"sqlite:///{root / 'd.db'}", cache_dir=cache)
        started = time.perf_counter()
        report = extract_pending(store, settings, engine=counting)
        elapsed = time.perf_counter() - started
        groups: dict[str, int] = {}
        for row in store.iter_duplicate_groups():
            groups[row["group_key"]] = groups.get(row["group_key"], 0) + 1
        store.close()
    rows = len(files)
    saved = sum(size - 1 for size in groups.values())
    return {
        "rows": rows, "ocr_reads": counting.reads, "extract_seconds": elapsed, "groups": len(groups),
        "analysis_calls_saved": saved, "share_saved": saved / rows, "completed": report.completed,
        "shared": report.shared + report.reused, "near_grouped": report.near_grouped,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "FIND.md"))
    args = parser.parse_args()
    from social_tui_media.media.ocr import load_engine

    engine = load_engine()
    lines = ["# Find it: extraction, search and duplicates", "", f"`python bench/find.py --rows {args.rows}`; "
             "a shared 2-core machine, other work running: timings are noisy.", ""]  # fmt: skip
    lines += [f"## Extraction ({engine.name})", "", "| what | ms each |", "|---|---|"]
    lines += [f"| {what} | {ms:.0f} |" for what, ms in bench_extraction(engine)]
    lines += ["", f"## Search over {args.rows:,} media rows (median of 5)", "", "| back end | query | ms | hits |",
              "|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| {backend} | {name} | {ms:.1f} | {hits} |" for backend, name, ms, hits in bench_search(args.rows)
    ]
    d = bench_duplicates(engine)
    lines += [
        "", "## Duplicates on a corpus with re-shares", "",
        f"{d['rows']} image rows: 10 banners over photos, each re-shared as the same bytes, 5 also as a "
        "re-encoded (JPEG 50) resized copy.", "",
        f"- OCR calls: {d['ocr_reads']} for {d['rows']} rows ({d['extract_seconds']:.1f} s); "
        f"{d['shared']} rows got the text of identical bytes without reading them",
        f"- duplicate groups: {d['groups']}; rows put in confirmed near-duplicate groups: {d['near_grouped']}",
        f"- analysis calls a duplicate-aware analysis skips: {d['analysis_calls_saved']} of {d['rows']} "
        f"({d['share_saved']:.0%}): analyze takes them from another copy (`shareable_analysis`)",
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

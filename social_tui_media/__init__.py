"""social-tui media: finds the media in scraped posts, caches, archives and analyses them.

The tree reads like the pipeline:
    posts/   scraped post files -> post rows and media slots (pure)
    store/   one store interface; SQLite, PostgreSQL and Supabase REST back ends; migrations
    media/   one file's tools: safe fetch, type sniffing, the cache, the S3 archive, vision
    jobs/    import, download, verify, evict, backfill, archive, analyze: claim, work, write back
    cli/     manage_media / manage_data: parse arguments, run a job, present its report
"""

__version__ = "0.2.0"

"""Scenario 6c: the Supabase REST back end, through the loopback PostgREST stand-in
(`devtools.postgrest_server.PostgrestTestServer`) on a throwaway PostgreSQL database.

The stand-in is a small Python server, not PostgREST itself: its row is a reference for the
shape of the back end's traffic (how many requests an import makes), not Supabase's speed.
"""

from __future__ import annotations

from bench.common import (
    Context,
    check_stored,
    log,
    project_cli,
    project_env,
    raw_insert_floor,
    run_measured,
    throwaway_postgres,
)


def measure(ctx: Context, name: str, count: int, media: int, directory, make_row):
    from devtools.postgrest_server import PostgrestTestServer

    ws = ctx.ws.dir("posts", "rest")
    log(f"posts: import --no-media of {count:,} posts through Supabase REST (loopback PostgREST stand-in)")
    with throwaway_postgres() as url, PostgrestTestServer(url) as server:
        env = project_env(ws, "", SUPABASE_URL=server.url, SUPABASE_API_KEY=server.service_key)
        env.pop("DATABASE_URL")
        ours = run_measured(
            project_cli("manage_data.py", "import", "--no-media", str(directory)),
            env=env,
            cwd=ws,
            timeout=900,
        )
        requests = len(server.requests)
        import psycopg

        with psycopg.connect(url) as conn:
            check_stored(conn, count, media, "REST import")
        theirs = raw_insert_floor("postgres", url, directory, ws)
    row = make_row(name[2:] if name.startswith("6c") else name, count, media, ours, theirs,
                   "psycopg `COPY` straight into the same PostgreSQL")  # fmt: skip
    row.scenario = name
    row.notes.append(f"{requests} HTTP requests to the PostgREST stand-in (a Python server, not PostgREST)")
    row.data["requests"] = requests
    return row

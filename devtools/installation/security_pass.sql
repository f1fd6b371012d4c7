-- The dashboard security pass of a social-tui installation: row-level security on all nine
-- tables, read for everyone, writes for authenticated users, views run as the caller.
-- Plain PostgreSQL lacks Supabase's roles and auth.role(): minimal stand-ins are created
-- first when missing. Every statement is safe to run again.

DO $$
DECLARE
    role_name TEXT;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN %s', role_name,
                               CASE WHEN role_name = 'service_role' THEN 'BYPASSRLS' ELSE '' END);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another session created it meanwhile (roles are cluster-wide)
            END;
        END IF;
    END LOOP;
END $$;

CREATE SCHEMA IF NOT EXISTS auth;

DO $$
BEGIN
    IF to_regprocedure('auth.role()') IS NULL THEN
        -- Supabase's definition: the role claim of the request's JWT, as PostgREST sets it.
        CREATE FUNCTION auth.role() RETURNS TEXT LANGUAGE sql STABLE AS $fn$
            SELECT COALESCE(NULLIF(current_setting('request.jwt.claim.role', true), ''),
                            NULLIF(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')::text
        $fn$;
    END IF;
END $$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO anon, authenticated, service_role;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, service_role;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['posts', 'download_runs', 'data_downloads', 'profiles', 'tags',
                             'profile_tags', 'post_tags', 'action_queue', 'post_media'] LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS "Allow read access" ON public.%I', t);
        EXECUTE format('CREATE POLICY "Allow read access" ON public.%I FOR SELECT USING (true)', t);
        EXECUTE format('DROP POLICY IF EXISTS "Allow authenticated insert" ON public.%I', t);
        EXECUTE format('CREATE POLICY "Allow authenticated insert" ON public.%I FOR INSERT'
                       ' WITH CHECK (auth.role() = ''authenticated'')', t);
        EXECUTE format('DROP POLICY IF EXISTS "Allow authenticated update" ON public.%I', t);
        EXECUTE format('CREATE POLICY "Allow authenticated update" ON public.%I FOR UPDATE'
                       ' USING (auth.role() = ''authenticated'') WITH CHECK (auth.role() = ''authenticated'')', t);
        EXECUTE format('DROP POLICY IF EXISTS "Allow authenticated delete" ON public.%I', t);
        EXECUTE format('CREATE POLICY "Allow authenticated delete" ON public.%I FOR DELETE'
                       ' USING (auth.role() = ''authenticated'')', t);
    END LOOP;
END $$;

ALTER VIEW public.v_post_engagement_history SET (security_invoker = on);
ALTER VIEW public.v_main_post_view SET (security_invoker = on);
ALTER VIEW public.v_profiles_with_stats SET (security_invoker = on);

-- How many slots the next download run would take (claims held by live workers aside):
-- pending ones and transient failures, plus permanent failures (403/404/410) with
-- p_retry_failed. The same status rule as media_claim_downloads; counted up front so a
-- progress bar knows the run's total before the first claim.
CREATE OR REPLACE FUNCTION media_download_backlog(p_retry_failed BOOLEAN DEFAULT FALSE) RETURNS BIGINT
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT count(*) FROM post_media
     WHERE download_status = 'pending'
        OR (download_status = 'failed' AND (p_retry_failed OR NOT download_permanent));
$$;

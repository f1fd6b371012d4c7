"""Loopback stand-ins for the outside world (a media CDN, an OpenAI-compatible vision server,
Supabase's PostgREST) used by the tests, the benchmarks and the offline demo. Never imported by
product code."""

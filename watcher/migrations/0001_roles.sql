-- epochwatch migration 0001: the API roles Supabase has, for plain PostgreSQL.
-- On Supabase these roles already exist and this file changes nothing; on a bare
-- PostgreSQL (tests, self-hosting) it creates them the way Supabase defines them:
-- `anon` (the anonymous key), `authenticated` (signed-in users) and `service_role`
-- (the service key, which bypasses row level security).
-- Safe to run again: every statement checks before it acts.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

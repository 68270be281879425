-- The upgrade function goes; vexil_has_timescale() answers as 0001 defined it. A database already
-- converted stays on TimescaleDB (its hypertables and continuous aggregates are 0010/0011/0031's).
DROP FUNCTION IF EXISTS vexil_timescale_upgrade();
CREATE OR REPLACE FUNCTION vexil_has_timescale() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') $$;

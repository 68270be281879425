DROP TABLE IF EXISTS stream_commands;
DROP TABLE IF EXISTS events;
DROP FUNCTION IF EXISTS vexil_has_timescale();

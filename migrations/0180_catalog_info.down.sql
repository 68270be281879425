DROP FUNCTION IF EXISTS vexil_flag_info(jsonb);
DROP FUNCTION IF EXISTS vexil_segment_info(jsonb);
DROP FUNCTION IF EXISTS vexil_clause_segments(jsonb);
ALTER TABLE rm_segments DROP COLUMN IF EXISTS info, DROP COLUMN IF EXISTS info_version;
ALTER TABLE rm_flags DROP COLUMN IF EXISTS info, DROP COLUMN IF EXISTS info_version;

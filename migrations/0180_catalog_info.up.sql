-- The compact reference data write-side validation reads (domain.FlagInfo / domain.SegmentInfo):
-- a flag's type, variation keys, archived, prerequisites per environment and the segments its
-- rules name; a segment's archived and the segments its clauses name. Every flag or segment write
-- validates references against the whole project, so it reads these instead of decoding every
-- folded state (issue 19, docs/write-path.md).
--
-- info_version is the version info was computed at. A row whose info_version differs from its
-- version (written by a binary that predates this column, during a rolling upgrade) is read from
-- state instead, so info can never be stale, only absent.
ALTER TABLE rm_flags ADD COLUMN info jsonb, ADD COLUMN info_version bigint;
ALTER TABLE rm_segments ADD COLUMN info jsonb, ADD COLUMN info_version bigint;

-- The same extraction as domain.FlagInfoOf, over the folded state the projection stores, for the
-- backfill below (a test checks both agree on every row it writes): environments in byte order,
-- segments deduplicated in order of first appearance, JSON null for an empty list as Go encodes a
-- nil slice.
CREATE FUNCTION vexil_clause_segments(clauses jsonb) RETURNS jsonb AS $$
  SELECT jsonb_agg(s ORDER BY first)
  FROM (SELECT s, min(n) AS first
        FROM (SELECT x.v AS s, row_number() OVER (ORDER BY c.i, x.j) AS n
              FROM jsonb_array_elements(CASE jsonb_typeof(clauses) WHEN 'array' THEN clauses ELSE '[]' END) WITH ORDINALITY c(clause, i),
                   jsonb_array_elements(CASE jsonb_typeof(c.clause->'values') WHEN 'array' THEN c.clause->'values' ELSE '[]' END) WITH ORDINALITY x(v, j)
              WHERE c.clause->>'op' = 'in_segment' AND jsonb_typeof(x.v) = 'string') o
        GROUP BY s) d
$$ LANGUAGE sql IMMUTABLE;

CREATE FUNCTION vexil_segment_info(state jsonb) RETURNS jsonb AS $$
  SELECT jsonb_build_object('archived', coalesce(state->'archived', 'false'),
    'segments', vexil_clause_segments(state->'clauses'))
$$ LANGUAGE sql IMMUTABLE;

CREATE FUNCTION vexil_flag_info(state jsonb) RETURNS jsonb AS $$
  WITH envs AS (
    SELECT e.key, e.value AS t
    FROM jsonb_each(CASE jsonb_typeof(state->'environments') WHEN 'object' THEN state->'environments' ELSE '{}' END) e
    WHERE jsonb_typeof(e.value) = 'object'
  ), segs AS (
    SELECT s AS seg, row_number() OVER (ORDER BY envs.key COLLATE "C", r.i, x.j) AS n
    FROM envs,
         jsonb_array_elements(CASE jsonb_typeof(envs.t->'rules') WHEN 'array' THEN envs.t->'rules' ELSE '[]' END) WITH ORDINALITY r(rule, i),
         jsonb_array_elements(coalesce(vexil_clause_segments(r.rule->'clauses'), '[]')) WITH ORDINALITY x(s, j)
  )
  SELECT jsonb_build_object(
    'type', state->'type',
    'variations', (SELECT jsonb_agg(v->'key' ORDER BY i)
                   FROM jsonb_array_elements(CASE jsonb_typeof(state->'variations') WHEN 'array' THEN state->'variations' ELSE '[]' END) WITH ORDINALITY a(v, i)),
    'archived', coalesce(state->'archived', 'false'),
    'prerequisites', coalesce((SELECT jsonb_object_agg(key, t->'prerequisites') FROM envs
                               WHERE jsonb_typeof(t->'prerequisites') = 'array' AND jsonb_array_length(t->'prerequisites') > 0), '{}'),
    'segments', (SELECT jsonb_agg(seg ORDER BY first) FROM (SELECT seg, min(n) AS first FROM segs GROUP BY seg) d))
$$ LANGUAGE sql IMMUTABLE;

UPDATE rm_flags SET info = vexil_flag_info(state), info_version = version;
UPDATE rm_segments SET info = vexil_segment_info(state), info_version = version;

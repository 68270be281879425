-- Stored results carry what a report needs without the experiment's current definition: the
-- goal's direction and role (primary, secondary, guardrail) per result row, and the analysis
-- settings, unknown variations and guardrail findings per analysis (issue 21).
ALTER TABLE experiment_results ADD COLUMN direction text NOT NULL DEFAULT '';
ALTER TABLE experiment_results ADD COLUMN role text NOT NULL DEFAULT '';
ALTER TABLE experiment_analyses ADD COLUMN details jsonb NOT NULL DEFAULT '{}';

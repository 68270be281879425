ALTER TABLE experiment_analyses DROP COLUMN details;
ALTER TABLE experiment_results DROP COLUMN role;
ALTER TABLE experiment_results DROP COLUMN direction;

DROP TABLE IF EXISTS rm_ruleset_experiments;

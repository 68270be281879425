DROP TABLE IF EXISTS rm_audit_log, rm_ruleset_flag_states, rm_ruleset_segments, rm_ruleset_flags,
  rm_rulesets, rm_api_tokens, rm_sdk_keys, rm_segments, rm_flags, rm_environments, rm_projects;

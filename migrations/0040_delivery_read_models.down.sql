DROP TABLE IF EXISTS rm_delivery_triggers;
DROP TABLE IF EXISTS rm_delivery_autoops_firings;
DROP TABLE IF EXISTS rm_delivery_autoops_rules;
DROP TABLE IF EXISTS rm_delivery_rollouts;
DROP TABLE IF EXISTS rm_delivery_schedules;
DELETE FROM projection_checkpoints WHERE projection = 'delivery';

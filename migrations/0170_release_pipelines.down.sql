DROP TABLE IF EXISTS rm_delivery_releases;
DROP TABLE IF EXISTS rm_delivery_pipelines;

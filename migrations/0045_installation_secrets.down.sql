DROP TABLE IF EXISTS installation_secrets;

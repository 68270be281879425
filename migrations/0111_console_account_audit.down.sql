DROP TABLE IF EXISTS console_account_audit;

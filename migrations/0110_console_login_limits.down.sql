DROP TABLE IF EXISTS console_login_limits;

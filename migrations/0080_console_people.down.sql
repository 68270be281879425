DROP TABLE IF EXISTS console_sessions;
DROP TABLE IF EXISTS console_members;
DROP TABLE IF EXISTS console_users;

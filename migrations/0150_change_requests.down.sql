DROP TABLE IF EXISTS rm_change_requests;
DELETE FROM projection_checkpoints WHERE projection = 'changerequests';

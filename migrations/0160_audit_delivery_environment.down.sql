-- Nothing to undo: the environment filled in by 0160 is what the audit projection writes for
-- those events from now on, and an older binary reads the column as it is.
SELECT 1;

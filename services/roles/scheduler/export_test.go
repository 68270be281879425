package scheduler

// SetCrashHook makes the scheduler call f between the two appends of each change ("schedule",
// "rollout", "rollback", "autoops"); an error from f stops the change there, as a crash would.
func SetCrashHook(s *Scheduler, f func(stage, id string) error) { s.crash = f }

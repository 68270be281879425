package scaleout_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest has the kernel kill a role process when the test process dies, so a test killed by
// its -timeout (no cleanup runs then) leaves no role running on the shared machine.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

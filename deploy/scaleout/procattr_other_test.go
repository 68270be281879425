//go:build !linux

package scaleout_test

import "os/exec"

// dieWithTest: only Linux can tie a child's life to its parent's (see procattr_linux_test.go).
func dieWithTest(*exec.Cmd) {}

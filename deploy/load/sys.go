package main

import (
	"bytes"
	"fmt"
	_ "net/http/pprof" // -serve-only -pprof
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// processCPU is this process's CPU time (user+system) in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// pidCPU is another process's CPU time in seconds, from /proc/<pid>/stat (0 if unreadable).
func pidCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// raiseNoFile raises RLIMIT_NOFILE to at least want if it can (the hard limit too, which needs
// CAP_SYS_RESOURCE), else to the hard limit. It returns the resulting soft limit and a note.
func raiseNoFile(want uint64) (uint64, string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, "getrlimit: " + err.Error()
	}
	before := lim
	var hardErr error
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if hardErr = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); hardErr == nil {
			return want, fmt.Sprintf("RLIMIT_NOFILE %d/%d -> %d/%d (hard limit raised)", before.Cur, before.Max, want, want)
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return before.Cur, "setrlimit: " + err.Error()
	}
	note := fmt.Sprintf("RLIMIT_NOFILE %d/%d -> %d/%d", before.Cur, before.Max, lim.Cur, lim.Max)
	if lim.Cur < want {
		note += fmt.Sprintf(" (below the %d needed", want)
		if hardErr != nil {
			// Raising the hard limit takes CAP_SYS_RESOURCE, which containers often drop even for
			// root (CapEff in /proc/self/status lacks bit 24).
			note += fmt.Sprintf("; raising the hard limit: %v: run with a higher `ulimit -Hn`, or with CAP_SYS_RESOURCE", hardErr)
		}
		note += ")"
	}
	return lim.Cur, note
}

// memSnapshot is the Go heap and stacks in use after a full GC, and the process RSS.
type memSnapshot struct {
	heapInuse, stackInuse, sys uint64
	rss                        uint64
	goroutines                 int
}

func (m memSnapshot) inuse() uint64 { return m.heapInuse + m.stackInuse }

func readMem() memSnapshot {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, sys: ms.Sys, rss: rss(),
		goroutines: runtime.NumGoroutine()}
}

// rss is the resident set size in bytes (VmRSS).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// tcpMemPages is the kernel's TCP buffer memory in pages (/proc/net/sockstat "TCP: ... mem N").
func tcpMemPages() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "mem" {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				return n
			}
		}
	}
	return -1
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }

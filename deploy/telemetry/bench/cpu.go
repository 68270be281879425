package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// cpuSampler accounts the CPU time of this process and of the PostgreSQL backends serving the
// benchmark database (read from /proc: PostgreSQL runs on this machine), so the figures say
// where the cores went.
type cpuSampler struct {
	pool     *pgxpool.Pool
	database string
	backends map[int]float64 // pid -> CPU seconds at first sight
	last     map[int]float64 // pid -> CPU seconds last seen
	self0    float64
	stop     chan struct{}
	done     chan struct{}
}

func procCPU(pid int) (float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, true // USER_HZ is 100 on Linux
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func startCPUSampler(pool *pgxpool.Pool, database string) *cpuSampler {
	s := &cpuSampler{pool: pool, database: database, backends: map[int]float64{}, last: map[int]float64{},
		self0: selfCPU(), stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *cpuSampler) sample() {
	rows, err := s.pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = $1`, s.database)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			continue
		}
		if c, ok := procCPU(pid); ok {
			if _, seen := s.backends[pid]; !seen {
				s.backends[pid] = c
			}
			s.last[pid] = c
		}
	}
}

// result returns the CPU seconds of this process and of the database's backends since the start.
func (s *cpuSampler) result() (self, postgres float64) {
	close(s.stop)
	<-s.done
	for pid, c := range s.last {
		postgres += c - s.backends[pid]
	}
	return selfCPU() - s.self0, postgres
}

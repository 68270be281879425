package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/deploy/load/fixture"
	"github.com/vexil-flags/vexil/domain"
)

// sseClient is one SSE connection, read by one goroutine that records the last event id it saw
// and when.
type sseClient struct {
	conn    net.Conn
	lastVer atomic.Int64
	lastAt  atomic.Int64 // wall clock, Unix nanoseconds (comparable across processes)
	events  atomic.Int64
}

func sseRequest(addr, key string) []byte {
	return []byte("GET /sdk/v1/stream?key=" + key + " HTTP/1.1\r\nHost: " + addr +
		"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: vexil-load\r\n\r\n")
}

// dialSSE connects from the loopback source address src (nil: the system's choice), sends the
// stream request and reads until the server's first comment (the stream is open and subscribed),
// then hands the connection to a reader goroutine.
func dialSSE(addr string, src net.IP, req []byte) (*sseClient, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	cl := &sseClient{conn: c}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 512)
	line, err := br.ReadSlice('\n')
	if err != nil {
		c.Close()
		return nil, err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
		c.Close()
		return nil, fmt.Errorf("stream answered %q", bytes.TrimSpace(line))
	}
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if bytes.HasPrefix(line, []byte(": connected")) {
			break
		}
	}
	_ = c.SetDeadline(time.Time{})
	go cl.read(br)
	return cl, nil
}

func (cl *sseClient) read(br *bufio.Reader) {
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a long data line: only id lines matter
		}
		if err != nil {
			return
		}
		if bytes.HasPrefix(line, []byte("id: ")) {
			v, err := strconv.ParseInt(string(bytes.TrimSpace(line[4:])), 10, 64)
			if err == nil {
				cl.lastAt.Store(time.Now().UnixNano())
				cl.lastVer.Store(v)
				cl.events.Add(1)
			}
		}
	}
}

// sourceAddrs is how many loopback source addresses n connections to one server address need:
// each source address has the ephemeral port range (ip_local_port_range, 28,232 ports by
// default) to itself; 20,000 per address leaves room for other processes' connections.
func sourceAddrs(n int) int { return max(1, (n+19999)/20000) }

// sourceAddr is the source address of connection i out of sources: 127.0.0.1, 127.0.0.2, ...
// (all of 127.0.0.0/8 is the loopback interface's on Linux, with no configuration).
func sourceAddr(i, sources int) net.IP {
	if sources <= 1 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(1+i%sources))
}

// openSSE opens n streams with a bounded number of concurrent dialers, spread over sources
// loopback source addresses.
func openSSE(ctx context.Context, addr, key string, n, dialers, sources int) ([]*sseClient, error) {
	req := sseRequest(addr, key)
	out := make([]*sseClient, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var failed atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() || ctx.Err() != nil {
					return
				}
				cl, err := dialSSE(addr, sourceAddr(i, sources), req)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err) })
					failed.Store(true)
					return
				}
				out[i] = cl
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		closeSSE(out)
		return nil, firstErr
	}
	return out, nil
}

func closeSSE(cs []*sseClient) {
	for _, c := range cs {
		if c != nil {
			c.conn.Close()
		}
	}
}

// nullStreamServer accepts streams, answers the SSE preamble, and keeps the connections with no
// goroutine or buffer: connecting the same clients to it measures what the clients themselves
// cost, to subtract from the real run.
type nullStreamServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newNullStreamServer() (*nullStreamServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &nullStreamServer{ln: ln}
	chunk := "retry: 2000\n: connected to null at version 1\n\n"
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
		strconv.FormatInt(int64(len(chunk)), 16) + "\r\n" + chunk + "\r\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 1024)
				n := 0
				for n < len(buf) {
					m, err := c.Read(buf[n:])
					if err != nil {
						c.Close()
						return
					}
					n += m
					if bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
						break
					}
				}
				if _, err := c.Write(resp); err != nil {
					c.Close()
					return
				}
				s.mu.Lock()
				s.conns = append(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

func (s *nullStreamServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
}

func gaugeValue(reg prometheus.Gatherer, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue()
		}
		return sum
	}
	return -1
}

func counterValue(reg prometheus.Gatherer, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return -1
}

// pushesDone returns a channel that receives when the server has written want more events than
// base (vexil_sdk_stream_pushes_total), or -1 when timeout passes first: the server's share of a
// delivery, apart from the clients' reading.
func pushesDone(reg prometheus.Gatherer, base, want float64, timeout time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if counterValue(reg, "vexil_sdk_stream_pushes_total")-base >= want {
				out <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		out <- time.Time{}
	}()
	return out
}

// streamClients are the N client ends, in this process or in a child process.
type streamClients interface {
	// wait waits until every stream saw an event of version or later, or timeout, and returns
	// the arrival times (Unix ns) of those that did.
	wait(version int64, timeout time.Duration) ([]int64, error)
	close()
}

type localClients []*sseClient

func (cs localClients) wait(version int64, timeout time.Duration) ([]int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		got := 0
		for _, c := range cs {
			if c.lastVer.Load() >= version {
				got++
			}
		}
		if got == len(cs) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var out []int64
	for _, c := range cs {
		if c.lastVer.Load() >= version {
			out = append(out, c.lastAt.Load())
		}
	}
	return out, nil
}

func (cs localClients) close() { closeSSE(cs) }

// childClients runs the client ends in a child process (this program's hidden "sse-client"
// scenario), talking over its stdin and stdout: so the server process holds only server ends
// (its memory is the server's, and N streams need N file descriptors, not 2N).
type childClients struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mem float64 // the child's Go heap+stacks per connection
}

func startChildClients(addr, key string, n, dialers, sources int) (*childClients, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "sse-client", "-addr", addr, "-key", key, "-conns", strconv.Itoa(n), "-dialers", strconv.Itoa(dialers),
		"-sources", strconv.Itoa(sources))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childClients{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	line, err := c.out.ReadString('\n')
	if err != nil {
		c.close()
		return nil, fmt.Errorf("sse client process: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "OPEN" {
		c.close()
		return nil, fmt.Errorf("sse client process: %s", strings.TrimSpace(line))
	}
	c.mem, _ = strconv.ParseFloat(f[2], 64)
	return c, nil
}

func (c *childClients) wait(version int64, timeout time.Duration) ([]int64, error) {
	if _, err := fmt.Fprintf(c.in, "WAIT %d %d\n", version, timeout.Milliseconds()); err != nil {
		return nil, err
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return nil, err
	}
	f := strings.Fields(line)
	if len(f) < 1 || f[0] != "DONE" {
		return nil, fmt.Errorf("sse client process: %s", strings.TrimSpace(line))
	}
	out := make([]int64, 0, len(f)-1)
	for _, x := range f[1:] {
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (c *childClients) close() {
	c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// runSSEClient is the child side of childClients.
func runSSEClient(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sse-client", flag.ExitOnError)
	addr := fs.String("addr", "", "server host:port (loopback)")
	key := fs.String("key", "", "SDK key")
	n := fs.Int("conns", 0, "connections")
	dialers := fs.Int("dialers", 64, "concurrent dialers")
	sources := fs.Int("sources", 1, "loopback source addresses to spread the connections over")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	if host, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("sse-client: %q is not a loopback address", *addr)
	}
	raiseNoFile(uint64(*n + 1024))
	m0 := readMem()
	cs, err := openSSE(ctx, *addr, *key, *n, *dialers, *sources)
	if err != nil {
		fmt.Printf("ERR %v\n", err)
		return err
	}
	defer closeSSE(cs)
	m1 := readMem()
	fmt.Printf("OPEN %d %.0f\n", len(cs), float64(int64(m1.inuse())-int64(m0.inuse()))/float64(len(cs)))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 3 || f[0] != "WAIT" {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		ms, _ := strconv.ParseInt(f[2], 10, 64)
		arrivals, _ := localClients(cs).wait(v, time.Duration(ms)*time.Millisecond)
		var b strings.Builder
		b.WriteString("DONE")
		for _, a := range arrivals {
			b.WriteByte(' ')
			b.WriteString(strconv.FormatInt(a, 10))
		}
		b.WriteByte('\n')
		os.Stdout.WriteString(b.String())
	}
	return nil
}

func runSSE(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("sse", flag.ExitOnError)
	conns := fs.Int("conns", 50000, "SSE connections")
	rounds := fs.Int("rounds", 3, "flag changes to time")
	nFlags := fs.Int("flags", 20, "flags in the environment")
	dialers := fs.Int("dialers", 64, "connections opened concurrently")
	timeout := fs.Duration("timeout", 10*time.Second, "how long a change may take to reach every connection")
	clientProc := fs.String("client-proc", "yes", "run the client ends in a child process: yes, no, or auto (when both ends do not fit in this process's file descriptor limit)")
	sources := fs.Int("sources", 0, "loopback source addresses (127.0.0.1, .2, ...) to spread the client ends over; 0: one per 20,000 connections")
	calibrate := fs.Bool("calibrate", true, "with the clients in this process: first connect them to a null server, to tell the client's memory from the server's")
	heartbeat := fs.Duration("heartbeat", 15*time.Second, "SSE heartbeat interval of the server")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the server; the clients run in the child) during the change rounds")
	db := fs.String("db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (loopback only); a fresh database is created on it and dropped")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	n := *conns
	if *sources <= 0 {
		*sources = sourceAddrs(n)
	}

	want := uint64(2*n + 1024) // client and server ends of every connection, plus slack
	limit, note := raiseNoFile(want)
	fmt.Println(note)
	child := false
	switch *clientProc {
	case "yes":
		child = true
	case "no":
	case "auto":
		child = limit < want
	default:
		return fmt.Errorf("-client-proc must be yes, no or auto")
	}
	if child {
		fmt.Printf("the client ends run in a child process: this process holds only the %d server ends\n", n)
		if limit < uint64(n+1024) {
			n = int(limit) - 1024
			fmt.Printf("WARNING: only %d connections fit in %d file descriptors\n", n, limit)
		}
	} else if limit < want {
		fit := int((limit - 1024) / 2)
		fmt.Printf("WARNING: %d connections do not fit in %d file descriptors (client and server are in this process); using %d\n", n, limit, fit)
		n = fit
	}

	fmt.Fprintf(os.Stderr, "creating the database and %d flags ...\n", *nFlags)
	d, err := newDatabase(ctx, *db, log)
	if err != nil {
		return err
	}
	defer d.drop()
	seed, err := d.seedProject(ctx, "sse", *nFlags)
	if err != nil {
		return err
	}
	if err := d.project(ctx); err != nil {
		return err
	}
	api, err := newSDKAPI(ctx, d, log, *heartbeat)
	if err != nil {
		return err
	}
	defer api.stop()
	srv, err := serve(api.echo)
	if err != nil {
		return err
	}
	defer srv.close()

	fmt.Printf("load average before: %s\n", loadAverage())
	var clientCost float64 = -1
	if *calibrate && !child {
		null, err := newNullStreamServer()
		if err != nil {
			return err
		}
		m0 := readMem()
		cs, err := openSSE(ctx, null.ln.Addr().String(), seed.clientKey, n, *dialers, *sources)
		if err != nil {
			null.close()
			return fmt.Errorf("calibration: %w", err)
		}
		m1 := readMem()
		clientCost = float64(int64(m1.inuse())-int64(m0.inuse())) / float64(n)
		closeSSE(cs)
		null.close()
		for i := 0; i < 100 && readMem().goroutines > m0.goroutines+10; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Printf("calibration: %d client connections to a null server use %s of Go heap+stacks: %s per connection (the load generator's share)\n",
			n, mib(float64(m1.inuse())-float64(m0.inuse())), kib(clientCost))
	}

	m0 := readMem()
	tcp0 := tcpMemPages()
	t0 := time.Now()
	var clients streamClients
	if child {
		cc, err := startChildClients(srv.addr, seed.clientKey, n, *dialers, *sources)
		if err != nil {
			return err
		}
		clients = cc
		clientCost = cc.mem
	} else {
		cs, err := openSSE(ctx, srv.addr, seed.clientKey, n, *dialers, *sources)
		if err != nil {
			return err
		}
		clients = localClients(cs)
	}
	defer clients.close()
	opened := time.Since(t0)
	time.Sleep(200 * time.Millisecond)
	m1 := readMem()
	tcp1 := tcpMemPages()
	open := gaugeValue(api.reg, "vexil_sdk_stream_connections")
	total := float64(int64(m1.inuse()) - int64(m0.inuse()))
	ends := "client and server ends"
	if child {
		ends = "server ends only"
	}
	fmt.Printf("\n%d SSE connections opened in %v (%.0f/s) from %d loopback source address(es); the server reports %.0f open streams\n", n,
		opened.Round(time.Millisecond), float64(n)/opened.Seconds(), *sources, open)
	fmt.Printf("memory of this process, Go heap+stacks in use after GC: %s before, %s after: %s for the %s\n",
		mib(float64(m0.inuse())), mib(float64(m1.inuse())), mib(total), ends)
	fmt.Printf("  per connection (%s): %s (heap %s, stacks %s)\n", ends, kib(total/float64(n)),
		kib(float64(int64(m1.heapInuse)-int64(m0.heapInuse))/float64(n)), kib(float64(int64(m1.stackInuse)-int64(m0.stackInuse))/float64(n)))
	serverPerConn := -1.0
	switch {
	case child:
		serverPerConn = total / float64(n)
		fmt.Printf("  per connection, server side:      %s (the client process's own ends: %s each)\n", kib(serverPerConn), kib(clientCost))
	case clientCost >= 0:
		serverPerConn = total/float64(n) - clientCost
		fmt.Printf("  per connection, server side:      %s (both ends minus the calibrated client)\n", kib(serverPerConn))
	}
	fmt.Printf("  goroutines: %d -> %d (%.1f per connection, %s)\n", m0.goroutines, m1.goroutines,
		float64(m1.goroutines-m0.goroutines)/float64(n), ends)
	fmt.Printf("  process RSS: %s -> %s (%s per connection, %s)\n", mib(float64(m0.rss)), mib(float64(m1.rss)),
		kib(float64(int64(m1.rss)-int64(m0.rss))/float64(n)), ends)
	if tcp0 >= 0 && tcp1 >= 0 {
		fmt.Printf("  kernel TCP buffers, whole machine (sockstat): %d -> %d pages (idle streams hold next to none)\n", tcp0, tcp1)
	}

	fmt.Printf("\nchange delivery: toggle a flag (event store append), projector ApplyStream, api Notify -> every stream\n")
	fmt.Printf("%-6s %-26s %9s %9s %9s %9s %9s %9s %11s  %s\n", "round", "flag", "append", "project", "p50", "p90", "p99", "max",
		"received", "after Notify p50/max, server wrote all")
	cat := domain.NewCatalog()
	cat.AddProject(seed.p)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	allOK := true
	all := &hist{} // every arrival of every round
	for r := 1; r <= *rounds; r++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The streams use the client-side key: only a change of a client-side flag is theirs to
		// hear (a server-only flag moves nothing they can see, and they are rightly not told).
		key := seed.clientFlags[(r*7)%len(seed.clientFlags)]
		stream := domain.FlagStream(seed.project, key)
		events, err := d.store.Load(ctx, stream)
		if err != nil {
			return err
		}
		f, err := domain.FoldFlag(events)
		if err != nil {
			return err
		}
		on := f.Environments[fixture.Environment] != nil && f.Environments[fixture.Environment].On
		change, err := f.Toggle(fixture.Environment, !on, cat)
		if err != nil {
			return err
		}
		start := time.Now()
		rec, err := d.store.Append(ctx, stream, f.Version, domain.Metadata{Actor: "system:load", Reason: "sse delivery test"}, change...)
		if err != nil {
			return err
		}
		appended := time.Since(start)
		if err := d.runner.ApplyStream(ctx, stream); err != nil {
			return err
		}
		projected := time.Since(start) - appended
		var version int64
		if err := d.pool.QueryRow(ctx, `SELECT version FROM rm_rulesets WHERE project = $1 AND environment = $2`,
			seed.project, fixture.Environment).Scan(&version); err != nil {
			return err
		}
		pushes0 := counterValue(api.reg, "vexil_sdk_stream_pushes_total")
		notified := time.Now()
		wrote := pushesDone(api.reg, pushes0, float64(n), *timeout)
		api.server.Notify(stream, rec[len(rec)-1].Version)
		arrivals, err := clients.wait(version, *timeout)
		if err != nil {
			return err
		}
		h, hn := &hist{}, &hist{}
		for _, at := range arrivals {
			h.record(time.Duration(at - start.UnixNano()))
			all.record(time.Duration(at - start.UnixNano()))
			hn.record(time.Duration(at - notified.UnixNano()))
		}
		ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/1e6) }
		wroteAll := "-"
		if at := <-wrote; !at.IsZero() {
			wroteAll = ms(at.Sub(notified))
		}
		fmt.Printf("%-6d %-26s %9s %9s %9s %9s %9s %9s %5d/%-5d  %s / %s, %s\n", r, fmt.Sprintf("%s on=%v", key, !on),
			ms(appended), ms(projected), ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)),
			ms(time.Duration(h.max)), len(arrivals), n, ms(hn.quantile(0.5)), ms(time.Duration(hn.max)), wroteAll)
		if len(arrivals) < n || h.quantile(0.99) >= 500*time.Millisecond {
			allOK = false
		}
		time.Sleep(500 * time.Millisecond)
	}
	verdict := func(ok bool) string {
		if ok {
			return "MET"
		}
		return "MISSED"
	}
	fmt.Printf("\nall rounds: a change reached the streams in p50 %.1f ms, p99 %.1f ms, max %.1f ms (from before the append)\n",
		float64(all.quantile(0.5))/1e6, float64(all.quantile(0.99))/1e6, float64(all.max)/1e6)
	fmt.Printf("goal: %d concurrent streams on one process, a change reaches all of them with p99 < 500 ms in every round: %s\n",
		n, verdict(allOK && n >= *conns))
	if serverPerConn >= 0 {
		fmt.Printf("goal: at most 10 KiB of server memory (Go heap+stacks) per stream: %s per stream: %s\n",
			kib(serverPerConn), verdict(serverPerConn <= 10<<10))
	}
	fmt.Printf("load average after: %s\n", loadAverage())
	return nil
}

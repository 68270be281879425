package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// target is one thing to load: a set of pre-built requests (raw HTTP/1.1 bytes and the same
// request for net/http), chosen at random per request.
type target struct {
	name string
	addr string // host:port, loopback
	reqs []prebuilt
}

type prebuilt struct {
	raw    []byte // the whole HTTP/1.1 request
	method string
	url    string
	header http.Header
	body   []byte
}

// newTarget pre-builds n requests; path and body are chosen by the caller per index.
func newTarget(name, addr string, n int, build func(i int) (path string, header http.Header, body []byte)) *target {
	t := &target{name: name, addr: addr}
	for i := 0; i < n; i++ {
		path, header, body := build(i)
		var b bytes.Buffer
		fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vexil-load\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, addr, len(body))
		for k, vs := range header {
			for _, v := range vs {
				fmt.Fprintf(&b, "%s: %s\r\n", k, v)
			}
		}
		b.WriteString("\r\n")
		b.Write(body)
		h := header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Content-Type", "application/json")
		t.reqs = append(t.reqs, prebuilt{raw: b.Bytes(), method: http.MethodPost, url: "http://" + addr + path, header: h, body: body})
	}
	return t
}

// doer sends one request and reads the whole answer.
type doer interface {
	do(p *prebuilt) (status int, err error)
	close()
}

// rawConn is a minimal keep-alive HTTP/1.1 client over one connection: it writes pre-built
// request bytes and parses just enough of the answer (status, Content-Length or chunked, Connection:
// close) to discard the body without allocating. It is much lighter than net/http's client, which
// matters when client and server share two cores.
type rawConn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
}

func newRawConn(addr string) (*rawConn, error) {
	rc := &rawConn{addr: addr}
	return rc, rc.dial()
}

func (rc *rawConn) dial() error {
	c, err := net.DialTimeout("tcp", rc.addr, 5*time.Second)
	if err != nil {
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	rc.c = c
	if rc.br == nil {
		rc.br = bufio.NewReaderSize(c, 16<<10)
	} else {
		rc.br.Reset(c)
	}
	return nil
}

func (rc *rawConn) close() {
	if rc.c != nil {
		rc.c.Close()
	}
}

var errMalformed = errors.New("malformed HTTP response")

func (rc *rawConn) do(p *prebuilt) (int, error) {
	if rc.c == nil {
		if err := rc.dial(); err != nil {
			return 0, err
		}
	}
	if _, err := rc.c.Write(p.raw); err != nil {
		rc.close()
		rc.c = nil
		return 0, err
	}
	status, keep, err := rc.readResponse()
	if err != nil || !keep {
		rc.close()
		rc.c = nil
	}
	return status, err
}

// hasPrefixFold reports whether line starts with lower-case prefix, ignoring ASCII case.
func hasPrefixFold(line []byte, prefix string) bool {
	if len(line) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := line[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

func trimValue(line []byte, skip int) []byte {
	return bytes.TrimSpace(line[skip:])
}

func (rc *rawConn) readResponse() (status int, keep bool, err error) {
	line, err := rc.br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errMalformed
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errMalformed
	}
	contentLength, chunked := -1, false
	keep = true
	for {
		line, err = rc.br.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		if len(line) <= 2 {
			break
		}
		switch {
		case hasPrefixFold(line, "content-length:"):
			n, perr := strconv.Atoi(string(trimValue(line, len("content-length:"))))
			if perr != nil {
				return status, false, errMalformed
			}
			contentLength = n
		case hasPrefixFold(line, "transfer-encoding:"):
			chunked = bytes.Contains(bytes.ToLower(line), []byte("chunked"))
		case hasPrefixFold(line, "connection:"):
			if bytes.Contains(bytes.ToLower(line), []byte("close")) {
				keep = false
			}
		}
	}
	switch {
	case chunked:
		for {
			line, err = rc.br.ReadSlice('\n')
			if err != nil {
				return status, false, err
			}
			sz := bytes.TrimSpace(line)
			if i := bytes.IndexByte(sz, ';'); i >= 0 {
				sz = sz[:i]
			}
			n, perr := strconv.ParseInt(string(sz), 16, 64)
			if perr != nil {
				return status, false, errMalformed
			}
			if n == 0 {
				for { // trailers, then the empty line
					line, err = rc.br.ReadSlice('\n')
					if err != nil {
						return status, false, err
					}
					if len(line) <= 2 {
						return status, keep, nil
					}
				}
			}
			if _, err := rc.br.Discard(int(n) + 2); err != nil {
				return status, false, err
			}
		}
	case contentLength >= 0:
		_, err = rc.br.Discard(contentLength)
		return status, keep && err == nil, err
	default:
		_, err = io.Copy(io.Discard, rc.br)
		return status, false, err
	}
}

// stdConn uses net/http's client (one shared, keep-alive tuned Transport).
type stdConn struct{ c *http.Client }

func newStdClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns,
		MaxConnsPerHost: conns, DisableCompression: true, IdleConnTimeout: time.Minute}}
}

func (s *stdConn) do(p *prebuilt) (int, error) {
	req, err := http.NewRequest(p.method, p.url, bytes.NewReader(p.body))
	if err != nil {
		return 0, err
	}
	req.Header = p.header
	resp, err := s.c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func (s *stdConn) close() {}

// loadResult is what one target measured.
type loadResult struct {
	name      string
	requests  uint64
	errors    uint64 // transport errors and non-2xx answers
	statuses  map[int]uint64
	elapsed   time.Duration
	lat       *hist
	cpu       float64 // process CPU seconds during the measurement (user+sys)
	rate      float64 // open-loop target rate, 0 for closed loop
	firstErr  string
	clientKin string
}

func (r *loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// runLoad drives t with conns connections: closed loop (each connection sends its next request
// when the previous answer is read) unless rate > 0, in which case each connection sends on a
// fixed schedule of rate/conns requests per second and latency is measured from the intended send
// time (no coordinated omission). It warms up, then measures for duration.
func runLoad(t *target, client string, conns int, warmup, duration time.Duration, rate float64) (*loadResult, error) {
	res := &loadResult{name: t.name, statuses: map[int]uint64{}, lat: &hist{}, rate: rate, clientKin: client}
	var std *http.Client
	if client == "nethttp" {
		std = newStdClient(conns)
		defer std.CloseIdleConnections()
	}
	doers := make([]doer, conns)
	for i := range doers {
		if std != nil {
			doers[i] = &stdConn{c: std}
			continue
		}
		rc, err := newRawConn(t.addr)
		if err != nil {
			for _, d := range doers[:i] {
				d.close()
			}
			return nil, fmt.Errorf("connect %s: %w", t.addr, err)
		}
		doers[i] = rc
	}
	defer func() {
		for _, d := range doers {
			d.close()
		}
	}()

	const (
		phaseWarm = iota
		phaseMeasure
		phaseStop
	)
	var phase atomic.Int32
	type connStats struct {
		lat      hist
		n, errs  uint64
		statuses map[int]uint64
		firstErr string
	}
	stats := make([]*connStats, conns)
	var wg sync.WaitGroup
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(conns) / rate * float64(time.Second))
	}
	for i := range doers {
		st := &connStats{statuses: map[int]uint64{}}
		stats[i] = st
		wg.Add(1)
		go func(d doer, seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed*7+1))
			next := start.Add(time.Duration(rng.Int64N(int64(max(interval, 1)))))
			for {
				ph := phase.Load()
				if ph == phaseStop {
					return
				}
				var t0 time.Time
				if interval > 0 {
					if w := time.Until(next); w > 0 {
						time.Sleep(w)
					}
					t0 = next // latency from the intended send time
					next = next.Add(interval)
				} else {
					t0 = time.Now()
				}
				p := &t.reqs[rng.IntN(len(t.reqs))]
				status, err := d.do(p)
				lat := time.Since(t0)
				if ph != phaseMeasure || phase.Load() != phaseMeasure {
					if err != nil {
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				st.n++
				if err != nil {
					st.errs++
					if st.firstErr == "" {
						st.firstErr = err.Error()
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				st.statuses[status]++
				if status < 200 || status > 299 {
					st.errs++
				}
				st.lat.record(lat)
			}
		}(doers[i], uint64(i)+uint64(time.Now().UnixNano()))
	}
	time.Sleep(warmup)
	cpu0 := processCPU()
	t0 := time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(duration)
	phase.Store(phaseStop)
	res.elapsed = time.Since(t0)
	res.cpu = processCPU() - cpu0
	wg.Wait()
	for _, st := range stats {
		res.lat.merge(&st.lat)
		res.requests += st.n - st.errs
		res.errors += st.errs
		for s, n := range st.statuses {
			res.statuses[s] += n
		}
		if res.firstErr == "" && st.firstErr != "" {
			res.firstErr = st.firstErr
		}
	}
	return res, nil
}

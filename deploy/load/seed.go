package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/deploy/load/fixture"
	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/roles/projector"
)

// database is a fresh database of the load test, dropped by drop.
type database struct {
	admin  string // URL of the server's maintenance database
	name   string
	url    string
	pool   *pgxpool.Pool
	store  *postgres.EventStore
	runner *projector.Runner
	log    *slog.Logger
}

// checkLoopback refuses any database URL that is not on the loopback interface.
func checkLoopback(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	host := u.Hostname()
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("database url %s: only a loopback server is allowed", u.Redacted())
		}
	}
	return u, nil
}

// newDatabase creates and migrates a database with a unique name on the server of adminURL.
func newDatabase(ctx context.Context, adminURL string, log *slog.Logger) (*database, error) {
	u, err := checkLoopback(adminURL)
	if err != nil {
		return nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "vexil_load_" + hex.EncodeToString(b[:])
	dbu := *u
	dbu.Path = "/" + name
	d := &database{admin: u.String(), name: name, url: dbu.String(), log: log}
	if err := postgres.EnsureDatabase(ctx, d.url); err != nil {
		return nil, err
	}
	m, err := postgres.NewMigrator(d.url)
	if err != nil {
		d.drop()
		return nil, err
	}
	err = m.Up()
	m.Close()
	if err != nil {
		d.drop()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if d.pool, err = postgres.Open(ctx, d.url); err != nil {
		d.drop()
		return nil, err
	}
	if d.store, err = postgres.NewEventStore(d.pool, postgres.WithInlineProjections(access.Projection{}), postgres.WithLogger(log)); err != nil {
		d.drop()
		return nil, err
	}
	if d.runner, err = projector.New(projector.Config{Pool: d.pool, Store: d.store, Projections: platform.ReadModels(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		d.drop()
		return nil, err
	}
	return d, nil
}

// drop closes the pool and drops the database.
func (d *database) drop() {
	if d.pool != nil {
		d.pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		d.log.Error("drop database: connect", "database", d.name, "err", err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)"); err != nil {
		d.log.Error("drop database", "database", d.name, "err", err)
	}
}

// seeded is a project written to the event store.
type seeded struct {
	project              string
	clientKey, serverKey string
	flags                []string
	clientFlags          []string
	built                *fixture.Built
	p                    *domain.Project
}

var loadMeta = domain.Metadata{Actor: "system:load", Reason: "load test data"}

func sdkKey(kind string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return kind + "-" + hex.EncodeToString(b[:])
}

// seedProject appends a project with nFlags fixture flags (and the fixture's segments) through
// the domain commands, four streams at a time.
func (d *database) seedProject(ctx context.Context, project string, nFlags int) (*seeded, error) {
	p, err := fixture.Project(project, sdkKey(domain.ClientSideKey), sdkKey(domain.ServerSideKey))
	if err != nil {
		return nil, err
	}
	evs, err := domain.CreateProject(p.Key, p.Name, "", []domain.NewEnvironment{{Key: fixture.Environment, Name: "Production"}},
		func(kind string) string {
			if kind == domain.ClientSideKey {
				return p.Environments[fixture.Environment].ClientKey
			}
			return p.Environments[fixture.Environment].ServerKey
		})
	if err != nil {
		return nil, err
	}
	if _, err := d.store.Append(ctx, domain.ProjectStream(project), 0, loadMeta, evs...); err != nil {
		return nil, fmt.Errorf("append project: %w", err)
	}
	set := fixture.New(project, nFlags)
	built, err := set.Build(p)
	if err != nil {
		return nil, err
	}
	// Segments first (flags refer to them), then flags in parallel.
	work := make(chan fixture.Stream)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				if _, err := d.store.Append(ctx, s.ID, 0, loadMeta, s.Events...); err != nil {
					select {
					case errs <- fmt.Errorf("append %s: %w", s.ID, err):
					default:
					}
				}
			}
		}()
	}
	for _, s := range built.Streams {
		work <- s
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	env := p.Environments[fixture.Environment]
	out := &seeded{project: project, clientKey: env.ClientKey, serverKey: env.ServerKey, built: built, p: p}
	for i := range set.Flags {
		out.flags = append(out.flags, fixture.FlagKey(i))
		if fixture.ClientSide(i) {
			out.clientFlags = append(out.clientFlags, fixture.FlagKey(i))
		}
	}
	return out, nil
}

// project builds the read models (rulesets, SDK keys, catalog, audit) of everything appended, as
// the projector does on start-up.
func (d *database) project(ctx context.Context) error {
	return d.runner.CatchUp(ctx, "")
}

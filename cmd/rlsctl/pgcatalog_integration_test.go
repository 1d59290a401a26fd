package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/pgtest"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// leadRE is the line an rlsd logs when it starts sending the site's soft
// state from a shared catalog.
var leadRE = regexp.MustCompile(`now sends the site's soft state`)

// TestSharedPostgresCatalog runs two rlsd of one site on one PostgreSQL
// catalog (a real, durable server): a write through either is read through
// the other; exactly one sends the site's soft state, so the index hears
// the site from one endpoint; when that one is killed (-9) the other takes
// over within 10 s; and a PostgreSQL restart in the middle of a load loses
// no acknowledged write, fails the others with UNAVAILABLE (rlsctl exit
// 5), and rlsd serves again by itself once the server is back.
func TestSharedPostgresCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and rlsd")
	}
	pg := pgtest.Start(t, pgtest.Options{})
	dsn := sharedCatalogDB(t, pg)
	rli := startRLI(t, "rli")
	args := []string{"--catalog-dsn", dsn, "--update-interval", "1s"}
	n := []*node{startLRC(t, "jsoc", "delta", []*node{rli}, args...), startLRC(t, "jsoc", "delta", []*node{rli}, args...)}

	// Writes through one are read through the other.
	n[0].create(t, "100")
	n[1].create(t, "101")
	for i, lfn := range []string{"101", "100"} {
		resp, err := n[i].catalog().QueryLFN(ctxT(t), &rlsv1.NameRequest{Name: lfn})
		if err != nil || len(resp.GetNames()) != 1 || resp.GetNames()[0] != "/jsoc/D"+lfn {
			t.Fatalf("rlsd %d: query %s: %v, %v", i, lfn, resp.GetNames(), err)
		}
	}

	// Exactly one sends: the index knows the site at the sender's endpoint,
	// through several updates.
	lead, standby := leader(t, n)
	wantWhere(t, rli, 10*time.Second, []string{"100", "101"}, "jsoc/list", "jsoc/list")
	seen := siteUpdates(t, rli, "jsoc", 3)
	for _, s := range seen {
		if s != lead.Addr {
			t.Fatalf("the index heard jsoc from %v; only the sender %s should send (standby %s)", seen, lead.Addr, standby.Addr)
		}
	}
	if code, out, errs := runCLI(t, "", "--server", standby.Addr, "admin", "update"); code == 0 {
		t.Fatalf("admin update on the standby sent soft state: %s %s", out, errs)
	}

	// kill -9 the sender: the standby takes over within 10 s.
	logAt := standby.LogLen()
	lead.Kill()
	standby.WaitLog(t, logAt, leadRE, 10*time.Second)
	rlsdtest.Eventually(t, 10*time.Second, func() error {
		if got := siteUpdates(t, rli, "jsoc", 1); got[0] != standby.Addr {
			return fmt.Errorf("the index hears jsoc from %s, want the new sender %s", got[0], standby.Addr)
		}
		return nil
	})
	standby.create(t, "102")
	wantWhere(t, rli, 10*time.Second, []string{"100", "102"}, "jsoc/list", "jsoc/list")

	// PostgreSQL restarts in the middle of a load: no acknowledged write
	// is lost, the others fail with UNAVAILABLE, and writes go through
	// again once it is back.
	acked := loadThroughRestart(t, standby, pg)
	for _, lfn := range acked {
		resp, err := standby.catalog().QueryLFN(ctxT(t), &rlsv1.NameRequest{Name: lfn})
		if err != nil || len(resp.GetNames()) != 1 {
			t.Fatalf("acknowledged write of %s lost after the PostgreSQL restart: %v, %v", lfn, resp.GetNames(), err)
		}
	}

	// While PostgreSQL is down, rlsctl exits 5 (UNAVAILABLE); after, 0.
	if err := pg.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "", "--server", standby.Addr, "lrc", "query", "lfn", "100"); code != 5 {
		t.Fatalf("rlsctl with PostgreSQL down: exit %d, %s %s; want exit 5", code, out, errs)
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	rlsdtest.Eventually(t, 20*time.Second, func() error {
		if code, out, errs := runCLI(t, "", "--server", standby.Addr, "lrc", "query", "lfn", "100"); code != 0 {
			return fmt.Errorf("rlsctl after PostgreSQL came back: exit %d, %s %s", code, out, errs)
		}
		return nil
	})
}

// sharedCatalogDB creates the database the rlsd share.
func sharedCatalogDB(t *testing.T, pg *pgtest.Server) string {
	t.Helper()
	conn, err := pgx.Connect(ctxT(t), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctxT(t), "CREATE DATABASE rls"); err != nil {
		t.Fatal(err)
	}
	return pg.DSNFor("rls")
}

// leader waits until one of the rlsd says it sends, and returns it and the
// other.
func leader(t *testing.T, n []*node) (lead, standby *node) {
	t.Helper()
	rlsdtest.Eventually(t, 10*time.Second, func() error {
		for i, p := range n {
			if leadRE.MatchString(p.Log()) {
				lead, standby = p, n[1-i]
				return nil
			}
		}
		return fmt.Errorf("no rlsd sends the site's soft state")
	})
	if leadRE.MatchString(standby.Log()) {
		t.Fatal("both rlsd say they send the site's soft state")
	}
	return lead, standby
}

// siteUpdates watches the index's entry for site until it has seen count
// new updates (generation or receipt time changed) and returns the
// endpoint each came from. The index keys sites by name, so a site that
// two rlsd sent for would flip between their endpoints.
func siteUpdates(t *testing.T, rli *node, site string, count int) []string {
	t.Helper()
	var out []string
	var last string
	deadline := time.Now().Add(time.Duration(count)*5*time.Second + 5*time.Second)
	for len(out) < count {
		if time.Now().After(deadline) {
			t.Fatalf("the index saw %d updates of %s, want %d", len(out), site, count)
		}
		resp, err := rli.index().Sites(ctxT(t), &rlsv1.SitesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, s := range resp.GetSites() {
			if s.GetSite() != site {
				continue
			}
			found++
			key := s.GetReceived().AsTime().String() + "/" + strconv.FormatUint(s.GetGeneration(), 10)
			if key != last {
				if last != "" {
					out = append(out, s.GetEndpoint())
				}
				last = key
			}
		}
		if found > 1 {
			t.Fatalf("the index lists site %s %d times", site, found)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

// loadThroughRestart creates LFNs through p from 4 clients while PostgreSQL
// restarts once, and returns those whose creates were acknowledged. A
// failed create must be UNAVAILABLE (or time out), and creates must go
// through again after the restart.
func loadThroughRestart(t *testing.T, p *node, pg *pgtest.Server) []string {
	t.Helper()
	const clients, perClient = 4, 150
	var (
		mu       sync.Mutex
		acked    []string
		failures = map[codes.Code]int{}
		wg       sync.WaitGroup
		started  = make(chan struct{}, clients*perClient)
	)
	restarted := make(chan struct{})
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				lfn := fmt.Sprintf("load-%d-%d", c, i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := p.catalog().Create(ctx, &rlsv1.MappingRequest{Lfn: lfn, Pfn: "/jsoc/D" + lfn})
				cancel()
				mu.Lock()
				if err == nil {
					acked = append(acked, lfn)
				} else {
					failures[status.Code(err)]++
				}
				mu.Unlock()
				started <- struct{}{}
				if i == perClient/3 {
					<-restarted // the rest of the load runs after the restart
				}
			}
		}()
	}
	for range clients * 20 {
		<-started
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	close(restarted)
	wg.Wait()
	for code, n := range failures {
		if code != codes.Unavailable && code != codes.DeadlineExceeded {
			t.Errorf("%d creates failed with %v during the PostgreSQL restart, want UNAVAILABLE", n, code)
		}
	}
	if len(acked) < clients*perClient/2 {
		t.Fatalf("only %d of %d creates acknowledged (failures %v): rlsd did not reconnect", len(acked), clients*perClient, failures)
	}
	t.Logf("PostgreSQL restarted mid-load: %d creates acknowledged, failures %v", len(acked), failures)
	return acked
}

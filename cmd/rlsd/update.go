package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/index"
)

// targetConfig is one entry of update-targets: in the configuration file,
// an index to send soft state to, with settings of its own. Unset settings
// take the update-* values.
type targetConfig struct {
	Addr       string        `yaml:"addr"`
	Mode       string        `yaml:"mode"`
	Deltas     *bool         `yaml:"deltas"`
	Interval   time.Duration `yaml:"interval"`
	Validity   time.Duration `yaml:"validity"`
	DeltaDelay time.Duration `yaml:"delta-delay"`
	BloomFP    float64       `yaml:"bloom-fp"`
	Patterns   []string      `yaml:"patterns"`
}

// updateTargets returns the index targets of the configuration: those of
// update-targets, then one per update-to address with the update-*
// settings. Its errors are usageErrors naming the target and the setting.
func (c *config) updateTargets() ([]index.Target, error) {
	if len(c.UpdateTargets) == 0 && len(c.UpdateTo) == 0 {
		return nil, nil
	}
	if !slices.Contains(c.Roles, "lrc") && !slices.Contains(c.Roles, "rli") {
		return nil, usageErrorf("update-to and update-targets send the catalog's state (role lrc) or the index's (role rli, forwarding) to indexes: they need one of these roles")
	}
	if len(c.Site) > 255 {
		return nil, usageErrorf("site: longer than 255 bytes, which an index refuses")
	}
	if err := catalog.ValidateName("site", c.Site); err != nil {
		return nil, usageErrorf("site %q: %v", c.Site, err)
	}
	if c.Advertise == "" {
		if host, _, err := net.SplitHostPort(c.Listen); err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				return nil, usageErrorf("listen %s binds every interface, so it is no address for other sites: set advertise (--advertise, RLSD_ADVERTISE or advertise: in the config file) to the HOST:PORT they reach this site at", c.Listen)
			}
		}
	}
	mode, err := index.ParseMode(c.UpdateMode)
	if err != nil {
		return nil, usageErrorf("update-mode: %v", err)
	}
	deflt := index.Target{
		Mode: mode, Deltas: c.UpdateDeltas, Interval: c.UpdateInterval, Validity: c.UpdateValidity,
		DeltaDelay: c.UpdateDeltaDelay, FalsePositiveRate: c.UpdateBloomFP,
	}
	var out []index.Target
	for i, tc := range c.UpdateTargets {
		t := deflt
		t.Addr = tc.Addr
		if tc.Addr == "" {
			return nil, usageErrorf("update-targets[%d]: missing addr (the index's HOST:PORT)", i)
		}
		if tc.Mode != "" {
			if t.Mode, err = index.ParseMode(tc.Mode); err != nil {
				return nil, usageErrorf("update-targets[%d] (%s): mode: %v", i, tc.Addr, err)
			}
		}
		if tc.Deltas != nil {
			t.Deltas = *tc.Deltas
		}
		if tc.Interval != 0 {
			t.Interval = tc.Interval
		}
		if tc.Validity != 0 {
			t.Validity = tc.Validity
		}
		if tc.DeltaDelay != 0 {
			t.DeltaDelay = tc.DeltaDelay
		}
		if tc.BloomFP != 0 {
			t.FalsePositiveRate = tc.BloomFP
		}
		for _, p := range tc.Patterns {
			cp, err := catalog.CompilePattern(p)
			if err != nil {
				return nil, usageErrorf("update-targets[%d] (%s): pattern %q: %v", i, tc.Addr, p, err)
			}
			t.Patterns = append(t.Patterns, cp)
		}
		out = append(out, t)
	}
	for _, addr := range c.UpdateTo {
		t := deflt
		t.Addr = addr
		out = append(out, t)
	}
	for i, t := range out {
		if err := t.Check(); err != nil {
			return nil, usageError{err}
		}
		if slices.ContainsFunc(out[:i], func(o index.Target) bool { return o.Addr == t.Addr }) {
			return nil, usageErrorf("update target %s is configured twice", t.Addr)
		}
	}
	return out, nil
}

// retargeter is a sender or forwarder, whose targets SIGHUP replaces.
type retargeter interface {
	SetTargets([]index.Target) error
}

// startSender sends the catalog's soft state to the configured indexes, if
// any, from a goroutine that serve runs once it serves, and answers
// Admin.Update with it. The sender exists even without targets, so that a
// reload can give it some.
func startSender(d *daemon, cat catalog.Store) error {
	targets, _ := d.cfg.updateTargets() // validated
	endpoint := d.cfg.Advertise
	if endpoint == "" {
		endpoint = d.addr
	}
	log := d.log.With("role", "lrc", "component", "sender")
	s, err := index.NewSender(cat, d.cfg.Site, endpoint, targets, index.SenderOptions{
		Logger: log, Registerer: d.metrics, Dialer: api.NewIndexDialer(d.sec.dialer),
	})
	if err != nil && len(targets) == 0 {
		// Nothing to send now; a reload cannot add targets (it would
		// be refused for the same reason: site and endpoint need a
		// restart).
		log.Warn("no soft-state sender: update targets need a restart to apply", "error", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("lrc: %w", err)
	}
	d.onClose(s.Close)
	d.retargeters = append(d.retargeters, s)
	d.page.Senders = append(d.page.Senders, senderStatus{s})
	run := func(ctx context.Context) error {
		for _, t := range targets {
			log.Info("sending soft state", "target", t.Addr, "mode", t.Mode, "deltas", t.Deltas || t.Mode == index.ModeDelta,
				"interval", t.Interval, "validity", t.Validity, "endpoint", endpoint)
		}
		if err := s.Run(ctx); ctx.Err() == nil {
			return err
		}
		return nil
	}
	ex, shared := cat.(exclusiveRunner)
	if !shared {
		d.addUpdater(s)
		d.run(run)
		return nil
	}
	// Several rlsd may serve one shared catalog: the one holding the
	// catalog's sender lock sends, the others stand by to take over.
	lead := &leadingSender{Sender: s}
	d.addUpdater(lead)
	d.run(func(ctx context.Context) error {
		err := ex.Exclusive(ctx, "soft-state-sender", time.Second, func(ctx context.Context) error {
			log.Info("this rlsd now sends the site's soft state (it holds the catalog's sender lock)")
			lead.leading.Store(true)
			defer lead.leading.Store(false)
			err := run(ctx)
			if ctx.Err() != nil {
				log.Info("this rlsd stopped sending the site's soft state (sender lock lost or shutting down)")
			}
			return err
		})
		if ctx.Err() != nil {
			return nil
		}
		return err
	})
	return nil
}

// exclusiveRunner is a shared catalog (pgcatalog) on which one process at a
// time runs a task.
type exclusiveRunner interface {
	Exclusive(ctx context.Context, name string, interval time.Duration, fn func(ctx context.Context) error) error
}

// leadingSender answers Admin.Update only while this rlsd sends the site's
// soft state; a standby refuses, so that an index hears the site from one
// rlsd.
type leadingSender struct {
	*index.Sender
	leading atomic.Bool
}

func (l *leadingSender) UpdateNow(ctx context.Context, addr string) ([]index.Result, error) {
	if !l.leading.Load() {
		return nil, fmt.Errorf("%w: this rlsd is a standby: another rlsd sharing the catalog sends the site's soft state", catalog.ErrPrecondition)
	}
	return l.Sender.UpdateNow(ctx, addr)
}

// startForwarder forwards what the index holds to the configured parent
// indexes, if any, from a goroutine that serve runs once it serves. The
// forwarder exists even without parents, so that a reload can give it some.
func startForwarder(d *daemon, x *index.Index) error {
	targets, _ := d.cfg.updateTargets() // validated
	log := d.log.With("role", "rli", "component", "forwarder")
	f, err := index.NewForwarder(x, d.cfg.Site, parents(targets), index.ForwarderOptions{
		Logger: log, Dialer: api.NewIndexDialer(d.sec.dialer),
	})
	if err != nil {
		return fmt.Errorf("rli: %w", err)
	}
	d.addUpdater(f)
	d.retargeters = append(d.retargeters, forwarderTargets{f})
	d.run(func(ctx context.Context) error {
		for _, t := range targets {
			log.Info("forwarding the index", "parent", t.Addr, "interval", t.Interval, "patterns", len(t.Patterns))
		}
		return f.Run(ctx)
	})
	return nil
}

// parents are the forwarding targets of the update targets: their address,
// interval, delta delay and patterns (the mode and validity are each
// site's own).
func parents(targets []index.Target) []index.Parent {
	out := make([]index.Parent, len(targets))
	for i, t := range targets {
		out[i] = index.Parent{Addr: t.Addr, Interval: t.Interval, DeltaDelay: t.DeltaDelay, Patterns: t.Patterns}
	}
	return out
}

// forwarderTargets is a forwarder as a retargeter.
type forwarderTargets struct{ f *index.Forwarder }

func (f forwarderTargets) SetTargets(targets []index.Target) error {
	return f.f.SetTargets(parents(targets))
}

// updaters is the Admin.Update of a daemon that both sends its catalog's
// state and forwards its index's: each target's results, from both.
type updaters []api.Updater

func (us updaters) UpdateNow(ctx context.Context, addr string) ([]index.Result, error) {
	var (
		out     []index.Result
		unknown error
	)
	for _, u := range us {
		rs, err := u.UpdateNow(ctx, addr)
		switch {
		case errors.Is(err, index.ErrNoTargets):
			if unknown == nil {
				unknown = err
			}
		case errors.Is(err, index.ErrUnknownTarget):
			unknown = err
		case err != nil:
			return nil, err
		}
		out = append(out, rs...)
	}
	if len(out) == 0 && unknown != nil {
		return nil, unknown
	}
	return out, nil
}

func (d *daemon) addUpdater(u api.Updater) {
	switch cur := d.admin.Updater.(type) {
	case nil:
		d.admin.Updater = u
	case updaters:
		d.admin.Updater = append(cur, u)
	default:
		d.admin.Updater = updaters{cur, u}
	}
}

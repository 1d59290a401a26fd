package main

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/solar-archive/rls/internal/secure"
)

// security is what the daemon's settings tls-cert, tls-key, tls-client-ca
// and acl make: the TLS material of both listeners and of every outgoing
// call, the authorizer of every incoming call, and the one dialer.
type security struct {
	tls    *secure.Store // nil: plaintext
	auth   *secure.Authorizer
	dialer *secure.Dialer
}

// securityConfig is the security settings, checked: the TLS files loaded
// (into a Store of their own) and the ACL compiled.
type securityConfig struct {
	files  secure.Files
	policy *secure.Policy
}

func (c *config) tlsFiles() secure.Files {
	return secure.Files{Cert: c.TLSCert, Key: c.TLSKey, CA: c.TLSClientCA}
}

// loadSecurity checks the security settings by loading the TLS files and
// compiling the ACL; its errors are usageErrors.
func (c *config) loadSecurity() (securityConfig, error) {
	f := c.tlsFiles()
	if f.Enabled() && (f.Cert == "" || f.Key == "") {
		return securityConfig{}, usageErrorf("tls-cert and tls-key go together, and tls-client-ca needs them")
	}
	st, err := secure.Load(f)
	if err != nil {
		return securityConfig{}, usageErrorf("tls: %v", err)
	}
	p, err := secure.NewPolicy(c.ACL, st.MutualTLS())
	if err != nil {
		return securityConfig{}, usageErrorf("%v", err)
	}
	return securityConfig{files: f, policy: p}, nil
}

func newSecurity(c config, log *slog.Logger) (*security, error) {
	sc, err := c.loadSecurity()
	if err != nil {
		return nil, err
	}
	st, err := secure.Load(sc.files)
	if err != nil {
		return nil, usageErrorf("tls: %v", err)
	}
	return &security{
		tls:    st,
		auth:   secure.NewAuthorizer(sc.policy, log.With("component", "auth")),
		dialer: secure.NewDialer(st),
	}, nil
}

// reloadable are the settings a SIGHUP applies; a change of any other
// setting is logged as needing a restart.
var reloadable = []string{"tls-cert", "tls-key", "tls-client-ca", "acl"}

// reloadableUpdates are the soft-state update settings, which a SIGHUP
// applies to a daemon with a sender (role lrc) or a forwarder (role rli).
var reloadableUpdates = []string{
	"update-to", "update-mode", "update-deltas", "update-interval", "update-validity",
	"update-delta-delay", "update-bloom-fp", "update-targets",
}

// reloader applies SIGHUPs: it reads the configuration again (file and
// environment, under the same command-line flags) and applies the ACL,
// the TLS certificates and the update targets, or refuses the whole change
// and keeps the old one. Connections and calls in flight are not touched:
// new calls are checked by the new ACL, new connections use the new
// certificates; an update in flight to a removed target completes. It is
// used by one goroutine.
type reloader struct {
	sec *security
	// targets are the daemon's senders and forwarders, if any.
	targets []retargeter
	cur     config
	load    func() (config, error)
	log     *slog.Logger
}

// applies returns the settings r applies.
func (r *reloader) applies() []string {
	if len(r.targets) == 0 {
		return reloadable
	}
	return slices.Concat(reloadable, reloadableUpdates)
}

// run reloads at each signal on hup until ctx is done.
func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload()
		}
	}
}

func (r *reloader) reload() {
	refuse := func(err error) {
		r.log.Error("config reload refused; the running configuration stays", "error", err)
	}
	next, err := r.load()
	if err != nil {
		refuse(err)
		return
	}
	sc, err := next.loadSecurity()
	if err != nil {
		refuse(err)
		return
	}
	targets, err := next.updateTargets()
	if err != nil {
		refuse(err)
		return
	}
	// TLS first: it is the one step that can still fail, and the policy
	// depends on whether client certificates are required, which it does
	// not let change. (SetTargets, checked above, fails only if an
	// address cannot be parsed for dialing; see below.)
	if err := r.sec.tls.Reload(sc.files); err != nil {
		refuse(err)
		return
	}
	r.sec.auth.SetPolicy(sc.policy)
	applied := r.applies()
	for _, t := range r.targets {
		if err := t.SetTargets(targets); err != nil {
			// This sender or forwarder keeps its old targets; the
			// rest of the change is applied, and the next reload
			// tries again.
			r.log.Error("config reload: update targets not applied; the running ones stay", "error", err)
			applied = reloadable
		}
	}
	restart := changedSettings(r.cur, next, applied)
	r.cur = next
	attrs := []any{"applied", strings.Join(applied, ","), "acl_rules", len(next.ACL)}
	if len(r.targets) > 0 {
		attrs = append(attrs, "update_targets", len(targets))
	}
	if len(restart) > 0 {
		attrs = append(attrs, "needs_restart", strings.Join(restart, ","))
		r.log.Warn("config reloaded; some changed settings apply only after a restart", attrs...)
		return
	}
	r.log.Info("config reloaded", attrs...)
}

package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/solar-archive/rls/internal/secure"
)

func newCertCommand(g *globalOptions) *cobra.Command {
	return groupCommand("cert", "Make a local CA and site or user certificates for mutual TLS",
		newCertCACommand(g),
		newCertIssueCommand(g),
	)
}

// certOptions are the flags both cert commands share.
type certOptions struct {
	dir      string
	org      string
	validity time.Duration
}

func (o *certOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.dir, "dir", ".", "directory to write the PEM files to (created if missing)")
	cmd.Flags().StringVar(&o.org, "org", "rls", "organization (O=) in the subject")
	cmd.Flags().DurationVar(&o.validity, "validity", 0, "how long the certificate is valid (default 1 year; 10 years for a CA)")
}

func newCertCACommand(g *globalOptions) *cobra.Command {
	var (
		o    certOptions
		name string
	)
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Make a CA: DIR/ca.pem and DIR/ca-key.pem (ECDSA P-256)",
		Long: `Make a self-signed CA certificate and key, DIR/ca.pem and DIR/ca-key.pem,
to sign site and user certificates with "rlsctl cert issue". Give ca.pem to
rlsd as --tls-client-ca and to rlsctl as --ca. Existing files are replaced.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := secure.MakeCA(secure.CertRequest{CommonName: name, Organization: o.org, Validity: o.validity})
			if err != nil {
				return usageErrorf("%v", err)
			}
			return o.write(g, "ca", p)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&name, "name", "rls local CA", "the CA's common name")
	return cmd
}

func newCertIssueCommand(g *globalOptions) *cobra.Command {
	var (
		o             certOptions
		caCert, caKey string
		dns           []string
		ips           []net.IP
	)
	cmd := &cobra.Command{
		Use:   "issue NAME",
		Short: "Make a certificate for a site or a user: DIR/NAME.pem and DIR/NAME-key.pem",
		Long: `Make a certificate signed by the CA, for a site or a user named NAME:
subject CN=NAME,O=ORG, DNS name NAME, IP addresses 127.0.0.1 and ::1 (plus
--dns and --ip), usable as server and client certificate. A site's rlsd
uses it as --tls-cert/--tls-key; its CN (or DNS name) is the site it may
send soft state for by default. Existing files are replaced.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkName("name", name); err != nil || filepath.Base(name) != name {
				return usageErrorf("name %q: want a site or user name usable as a file name", name)
			}
			if caCert == "" {
				caCert = filepath.Join(o.dir, "ca.pem")
			}
			if caKey == "" {
				caKey = filepath.Join(o.dir, "ca-key.pem")
			}
			ca, err := secure.ReadPEM(caCert, caKey)
			if err != nil {
				return usageErrorf("CA: %v (make one with rlsctl cert ca)", err)
			}
			req := secure.SiteRequest(name, o.org)
			req.DNSNames = append(req.DNSNames, dns...)
			req.IPs = append(req.IPs, ips...)
			req.Validity = o.validity
			p, err := secure.Issue(ca, req)
			if err != nil {
				return usageErrorf("%v", err)
			}
			return o.write(g, name, p)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&caCert, "ca-cert", "", "the CA's certificate (default DIR/ca.pem)")
	cmd.Flags().StringVar(&caKey, "ca-key", "", "the CA's key (default DIR/ca-key.pem)")
	cmd.Flags().StringSliceVar(&dns, "dns", nil, "more DNS names (comma-separated)")
	cmd.Flags().IPSliceVar(&ips, "ip", nil, "more IP addresses (comma-separated)")
	return cmd
}

func (o *certOptions) write(g *globalOptions, name string, p secure.PEM) error {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	r := certResult{Cert: filepath.Join(o.dir, name+".pem"), Key: filepath.Join(o.dir, name+"-key.pem")}
	if err := p.Write(r.Cert, r.Key); err != nil {
		return err
	}
	b, _ := pem.Decode(p.Cert)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err
	}
	r.Subject, r.NotAfter = c.Subject.String(), c.NotAfter.UTC().Format(time.RFC3339)
	r.DNSNames = nonNil(c.DNSNames)
	for _, ip := range c.IPAddresses {
		r.IPs = append(r.IPs, ip.String())
	}
	r.IPs = nonNil(r.IPs)
	return g.printer().print(r)
}

// certResult answers "cert ca" and "cert issue":
// {"cert":"d/nso.pem","key":"d/nso-key.pem","subject":"CN=nso,O=rls",...}.
type certResult struct {
	Cert     string   `json:"cert"`
	Key      string   `json:"key"`
	Subject  string   `json:"subject"`
	DNSNames []string `json:"dns_names"`
	IPs      []string `json:"ips"`
	NotAfter string   `json:"not_after"`
}

func (r certResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "%s (key %s): %s, valid until %s\n", r.Cert, r.Key, r.Subject, r.NotAfter)
}

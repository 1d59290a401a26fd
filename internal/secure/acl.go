package secure

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/solar-archive/rls/api/rlsv1"
)

// Permission is what an ACL rule grants.
type Permission string

// The permissions, as in Globus RLS plus rls's own roles. All grants every
// other one.
const (
	LRCRead      Permission = "lrc_read"
	LRCUpdate    Permission = "lrc_update"
	RLIRead      Permission = "rli_read"
	RLIUpdate    Permission = "rli_update"
	TransferRead Permission = "transfer_read"
	Mirror       Permission = "mirror"
	Admin        Permission = "admin"
	Stats        Permission = "stats"
	All          Permission = "all"

	// open marks a method anyone may call: health and reflection.
	open Permission = ""
)

// Permissions lists the permissions a rule may grant.
func Permissions() []Permission {
	return []Permission{LRCRead, LRCUpdate, RLIRead, RLIUpdate, TransferRead, Mirror, Admin, Stats, All}
}

// Anonymous is the identity of a caller without a verified client
// certificate (and of every caller without TLS).
const Anonymous = "anonymous"

// methodPermission maps every gRPC method served by rlsd to the permission
// it needs: the one table of it. A method of a service listed in
// servicePermission and not here needs the service's permission; any other
// method is refused to everyone (a new method must be added here).
var methodPermission = map[string]Permission{
	rlsv1.Catalog_Create_FullMethodName:            LRCUpdate,
	rlsv1.Catalog_Add_FullMethodName:               LRCUpdate,
	rlsv1.Catalog_Delete_FullMethodName:            LRCUpdate,
	rlsv1.Catalog_Exists_FullMethodName:            LRCRead,
	rlsv1.Catalog_QueryLFN_FullMethodName:          LRCRead,
	rlsv1.Catalog_QueryPFN_FullMethodName:          LRCRead,
	rlsv1.Catalog_QueryWildcard_FullMethodName:     LRCRead,
	rlsv1.Catalog_RenameLFN_FullMethodName:         LRCUpdate,
	rlsv1.Catalog_RenamePFN_FullMethodName:         LRCUpdate,
	rlsv1.Catalog_BulkWrite_FullMethodName:         LRCUpdate,
	rlsv1.Catalog_BulkRename_FullMethodName:        LRCUpdate,
	rlsv1.Catalog_BulkQuery_FullMethodName:         LRCRead,
	rlsv1.Catalog_BulkExists_FullMethodName:        LRCRead,
	rlsv1.Catalog_DefineAttribute_FullMethodName:   LRCUpdate,
	rlsv1.Catalog_UndefineAttribute_FullMethodName: LRCUpdate,
	rlsv1.Catalog_ListAttributes_FullMethodName:    LRCRead,
	rlsv1.Catalog_SetAttribute_FullMethodName:      LRCUpdate,
	rlsv1.Catalog_RemoveAttribute_FullMethodName:   LRCUpdate,
	rlsv1.Catalog_GetAttributes_FullMethodName:     LRCRead,
	rlsv1.Catalog_SearchAttribute_FullMethodName:   LRCRead,
	rlsv1.Catalog_BulkSetAttributes_FullMethodName: LRCUpdate,
	rlsv1.Catalog_BulkGetAttributes_FullMethodName: LRCRead,

	rlsv1.Index_Update_FullMethodName:        RLIUpdate,
	rlsv1.Index_Locate_FullMethodName:        RLIRead,
	rlsv1.Index_Sites_FullMethodName:         RLIRead,
	rlsv1.Index_QueryWildcard_FullMethodName: RLIRead,

	rlsv1.Transfer_Manifest_FullMethodName: TransferRead,
	rlsv1.Transfer_Read_FullMethodName:     TransferRead,

	rlsv1.Admin_Ping_FullMethodName:   open,
	rlsv1.Admin_Stats_FullMethodName:  Stats,
	rlsv1.Admin_Update_FullMethodName: Admin,
}

// servicePermission gives the permission of the methods of whole services:
// the mirror's (every call needs mirror), and those open to all.
var servicePermission = map[string]Permission{
	"rls.v1.Mirror":                            Mirror,
	"grpc.health.v1.Health":                    open,
	"grpc.reflection.v1.ServerReflection":      open,
	"grpc.reflection.v1alpha.ServerReflection": open,
}

// MethodPermission returns the permission a gRPC method (/pkg.Service/Method)
// needs, "" with open true for a method open to all, and ok false for a
// method this table does not know (refused to everyone).
func MethodPermission(fullMethod string) (perm Permission, isOpen, ok bool) {
	if p, ok := methodPermission[fullMethod]; ok {
		return p, p == open, true
	}
	svc := strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndexByte(svc, '/'); i >= 0 {
		svc = svc[:i]
	}
	if p, ok := servicePermission[svc]; ok {
		return p, p == open, true
	}
	return "", false, false
}

// Rule is one ACL rule as written in the configuration file:
//
//	acl:
//	  - identity: "CN=nso,O=rls"        # regexp, whole identity
//	    permissions: [lrc_read, rli_update]
//	    speak_for: "nso|nso-.*"         # optional regexp, whole site name
//
// Identity matches the client certificate's subject in RFC 2253 form
// ("CN=nso,O=rls"), any of its DNS or URI subject alternative names, or
// "anonymous" for a caller without one (so a rule matches anonymous
// callers only if its pattern matches that word). Patterns are anchored:
// they match whole identities. The rule's speak_for widens the
// sites the identity may send soft state for (by default the one named by
// its certificate's common name or a DNS name).
type Rule struct {
	Identity    string       `yaml:"identity"`
	Permissions []Permission `yaml:"permissions"`
	SpeakFor    string       `yaml:"speak_for"`
}

// rule is a compiled Rule.
type rule struct {
	index    int    // position in the configuration, from 0
	text     string // the identity pattern, for messages
	identity *regexp.Regexp
	perms    []Permission
	speakFor *regexp.Regexp // nil: the default
	// loopbackOnly restricts a built-in default rule to loopback peers,
	// verifiedOnly to peers with a verified certificate.
	loopbackOnly, verifiedOnly bool
}

func (r *rule) String() string {
	if r.index < 0 {
		return "default: " + r.text
	}
	return fmt.Sprintf("acl[%d] (identity %q)", r.index, r.text)
}

func (r *rule) grants(p Permission) bool {
	return slices.Contains(r.perms, p) || slices.Contains(r.perms, All)
}

// Policy is a compiled set of rules. It never changes once made; the
// Authorizer swaps whole policies.
type Policy struct {
	rules []*rule
	// configured is false for the built-in defaults.
	configured bool
}

// NewPolicy compiles rules, in order. Without rules, the default applies:
// with mutual TLS, any identity with a verified client certificate is
// granted all (speaking for its own name only) and anonymous callers
// nothing; without, anonymous callers from loopback are granted all and
// may speak for any site, and remote callers nothing. Errors name the rule
// and what is wrong with it.
func NewPolicy(rules []Rule, mutualTLS bool) (*Policy, error) {
	if len(rules) == 0 {
		if mutualTLS {
			return &Policy{rules: []*rule{{
				index: -1, text: "any verified client certificate (mutual TLS, no acl configured)",
				identity: regexp.MustCompile(`^(?:.+)$`), perms: []Permission{All}, verifiedOnly: true,
			}}}, nil
		}
		return &Policy{rules: []*rule{{
			index: -1, text: "anonymous from loopback only (no TLS, no acl configured)",
			identity: regexp.MustCompile(`^(?:anonymous)$`), perms: []Permission{All},
			speakFor: regexp.MustCompile(`^(?:.*)$`), loopbackOnly: true,
		}}}, nil
	}
	p := &Policy{configured: true}
	for i, r := range rules {
		if r.Identity == "" {
			return nil, fmt.Errorf("acl[%d]: missing identity (a regular expression)", i)
		}
		re, err := regexp.Compile(`^(?:` + r.Identity + `)$`)
		if err != nil {
			return nil, fmt.Errorf("acl[%d]: identity %q: %v", i, r.Identity, err)
		}
		cr := &rule{index: i, text: r.Identity, identity: re}
		if len(r.Permissions) == 0 {
			return nil, fmt.Errorf("acl[%d] (identity %q): no permissions (list some of %s, or [none] for a rule that denies)",
				i, r.Identity, joinPerms(Permissions()))
		}
		for _, perm := range r.Permissions {
			if perm == "none" {
				continue
			}
			if !slices.Contains(Permissions(), perm) {
				return nil, fmt.Errorf("acl[%d] (identity %q): unknown permission %q (want %s, or none)", i, r.Identity, perm, joinPerms(Permissions()))
			}
			cr.perms = append(cr.perms, perm)
		}
		if r.SpeakFor != "" {
			if cr.speakFor, err = regexp.Compile(`^(?:` + r.SpeakFor + `)$`); err != nil {
				return nil, fmt.Errorf("acl[%d] (identity %q): speak_for %q: %v", i, r.Identity, r.SpeakFor, err)
			}
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

func joinPerms(ps []Permission) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// match returns the first rule matching the peer, nil if none.
func (p *Policy) match(peer Peer) *rule {
	for _, r := range p.rules {
		if r.loopbackOnly && !peer.Loopback || r.verifiedOnly && peer.Anonymous() {
			continue
		}
		if slices.ContainsFunc(peer.Identities(), r.identity.MatchString) {
			return r
		}
	}
	return nil
}

package catalog

import (
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Bounds of a connector group's workload enrolment.
const (
	// DefaultWorkloadCredentialTTL is the lifetime of the credential a
	// connector gets by workload enrolment when the group does not say:
	// short, so that the identity of a pod that vanished dies within the
	// hour; the connector renews it at two thirds of its life.
	DefaultWorkloadCredentialTTL = time.Hour
	// MinWorkloadCredentialTTL and MaxWorkloadCredentialTTL bound
	// credential_ttl: long enough for a renewal to be retried, short
	// enough that a workload identity never outlives its pod by days.
	MinWorkloadCredentialTTL = 5 * time.Minute
	MaxWorkloadCredentialTTL = 24 * time.Hour
)

// WorkloadEnrollment lets a connector group's connectors enrol with a
// workload identity token (a Kubernetes projected ServiceAccount token)
// instead of a one-time enrolment token: the mesh accepts a token of
// Issuer whose aud names one of Audiences and whose sub is one of
// Subjects, and issues a credential of CredentialTTL.
type WorkloadEnrollment struct {
	// Issuer is the trusted issuer (the cluster's service-account issuer)
	// from the catalogue's issuers list.
	Issuer *Issuer
	// Audiences are the aud values accepted (a token must name one of
	// them), for example "postern". At least one.
	Audiences []string
	// Subjects are the sub values accepted, exactly, for example
	// "system:serviceaccount:postern:postern-connectord". At least one.
	Subjects []string
	// CredentialTTL is the lifetime of the credentials issued on such an
	// enrolment and of their renewals; never zero after parsing
	// (DefaultWorkloadCredentialTTL when absent).
	CredentialTTL time.Duration
	// Line is the line where the group's workload_enrollment section starts.
	Line int
}

// Bearer returns the issuer and audiences as a bearer-token acceptance,
// the form the token verifier (pkg/bearer) checks.
func (w *WorkloadEnrollment) Bearer() *WorkloadBearer {
	return &WorkloadBearer{Issuer: w.Issuer, Audiences: w.Audiences}
}

// workloadEnrollment decodes a group's workload_enrollment section.
func (p *parser) workloadEnrollment(v *yaml.Node, label string) *WorkloadEnrollment {
	const key = "workload_enrollment"
	w := &WorkloadEnrollment{Line: v.Line, CredentialTTL: DefaultWorkloadCredentialTTL}
	p.mapping(v, label+": "+key, []field{
		{Key: "issuer", Required: true, Decode: func(v *yaml.Node) {
			id, ok := p.str(v, label, key+": issuer")
			if !ok {
				return
			}
			if w.Issuer = p.issuerByID(id); w.Issuer == nil {
				p.add(v.Line, ErrValue, label, "%s: issuer %q: %s", key, id, p.knownIssuers())
			}
		}},
		{Key: "audiences", Required: true, Decode: func(v *yaml.Node) {
			if w.Audiences = p.names(v, label, key+": audiences"); len(w.Audiences) == 0 {
				p.add(v.Line, ErrValue, label, "%s: audiences: name at least one audience the tokens must carry (for example postern)", key)
			}
		}},
		{Key: "subjects", Required: true, Decode: func(v *yaml.Node) {
			w.Subjects = p.names(v, label, key+": subjects")
			if len(w.Subjects) == 0 {
				p.add(v.Line, ErrValue, label, "%s: subjects: name at least one subject, such as system:serviceaccount:NAMESPACE:NAME", key)
			}
			for _, s := range w.Subjects {
				if strings.ContainsAny(s, "*?") {
					p.add(v.Line, ErrValue, label, "%s: subjects: %q: subjects match exactly; wildcards are not supported", key, s)
				}
			}
		}},
		{Key: "credential_ttl", Decode: func(v *yaml.Node) {
			d := p.timeout(v, label, key+": credential_ttl")
			if d > 0 && (d < MinWorkloadCredentialTTL || d > MaxWorkloadCredentialTTL) {
				p.add(v.Line, ErrValue, label, "%s: credential_ttl %v: must be between %v and %v", key, d, MinWorkloadCredentialTTL, MaxWorkloadCredentialTTL)
			}
			if d > 0 {
				w.CredentialTTL = d
			}
		}},
	})
	if w.Issuer == nil || len(w.Audiences) == 0 || len(w.Subjects) == 0 {
		return nil
	}
	return w
}

// AcceptsSubject reports whether sub is one of the group's subjects.
func (w *WorkloadEnrollment) AcceptsSubject(sub string) bool { return slices.Contains(w.Subjects, sub) }

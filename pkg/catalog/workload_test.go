package catalog

import (
	"testing"
	"time"
)

// groupDoc is a catalogue with one connector group "k8s" whose entry
// ends with lines (the group starts at line 5), the issuer k8s and no
// apps.
func groupDoc(lines ...string) string {
	doc := "issuers:\n  - {id: k8s, issuer: https://oidc.k8s.example.com}\nconnector_groups:\n  - id: other\n  - id: k8s\n"
	for _, l := range lines {
		doc += l + "\n"
	}
	return doc + "apps: []\n"
}

func TestWorkloadEnrollment(t *testing.T) {
	c, err := Parse("catalog.yaml", []byte(groupDoc(
		"    workload_enrollment:",
		"      issuer: k8s",
		"      audiences: [postern]",
		"      subjects: [system:serviceaccount:postern:connectord, system:serviceaccount:edge:connectord]",
		"      credential_ttl: 30m",
	)))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := c.Group("k8s")
	w := g.Workload
	if w == nil || w.Issuer.ID != "k8s" || w.CredentialTTL != 30*time.Minute || w.Line != 7 {
		t.Fatalf("got %+v", w)
	}
	if !w.AcceptsSubject("system:serviceaccount:edge:connectord") || w.AcceptsSubject("system:serviceaccount:edge:other") || w.AcceptsSubject("") {
		t.Error("AcceptsSubject: wrong")
	}
	if b := w.Bearer(); b.Issuer != w.Issuer || len(b.Audiences) != 1 || b.Audiences[0] != "postern" {
		t.Errorf("Bearer: got %+v", b)
	}
	if o, _ := c.Group("other"); o.Workload != nil {
		t.Error("a group without workload_enrollment got one")
	}
	c, err = Parse("catalog.yaml", []byte(groupDoc("    workload_enrollment: {issuer: k8s, audiences: [postern], subjects: [s]}")))
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := c.Group("k8s"); g.Workload.CredentialTTL != DefaultWorkloadCredentialTTL {
		t.Errorf("default ttl: got %v", g.Workload.CredentialTTL)
	}
}

func TestWorkloadEnrollmentErrors(t *testing.T) {
	we := func(body string) string { return groupDoc("    workload_enrollment: " + body) }
	tests := []errCase{
		{"unknown issuer", we("{issuer: gke, audiences: [postern], subjects: [s]}"), []wantErr{{6, ErrValue, `workload_enrollment: issuer "gke": no such issuer (defined: k8s)`}}},
		{"no issuer", we("{audiences: [postern], subjects: [s]}"), []wantErr{{6, ErrMissing, `missing required key "issuer"`}}},
		{"no audiences", we("{issuer: k8s, audiences: [], subjects: [s]}"), []wantErr{{6, ErrValue, "audiences: name at least one audience"}}},
		{"no subjects", we("{issuer: k8s, audiences: [postern], subjects: []}"), []wantErr{{6, ErrValue, "subjects: name at least one subject"}}},
		{"wildcard subject", we("{issuer: k8s, audiences: [postern], subjects: [\"system:serviceaccount:postern:*\"]}"),
			[]wantErr{{6, ErrValue, "wildcards are not supported"}}},
		{"subject twice", we("{issuer: k8s, audiences: [postern], subjects: [s, s]}"), []wantErr{{6, ErrDuplicate, `"s" listed twice`}}},
		{"ttl too long", we("{issuer: k8s, audiences: [postern], subjects: [s], credential_ttl: 720h}"), []wantErr{{6, ErrValue, "credential_ttl 720h0m0s: must be between 5m0s and 24h0m0s"}}},
		{"ttl too short", we("{issuer: k8s, audiences: [postern], subjects: [s], credential_ttl: 1m}"), []wantErr{{6, ErrValue, "must be between"}}},
		{"ttl not a duration", we("{issuer: k8s, audiences: [postern], subjects: [s], credential_ttl: an hour}"), []wantErr{{6, ErrValue, "not a duration"}}},
		{"unknown key", we("{issuer: k8s, audiences: [postern], subjects: [s], audience: postern}"), []wantErr{{6, ErrUnknownKey, `unknown key "audience"`}}},
		{"not a mapping", we("yes"), []wantErr{{6, ErrType, "workload_enrollment"}}},
	}
	refuseAll(t, tests, nil)
}

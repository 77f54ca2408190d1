package harness

import (
	"fmt"
	"net/http"
	"time"

	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/devidp"
)

// The Kubernetes stand-in of a harness with Options.ServiceAccounts: a
// cluster's service-account issuer, and the connector groups that accept
// its tokens.
const (
	// PodsGroup is the connector group whose connectors enrol with the
	// issuer's ServiceAccount tokens (audience ServiceAccountAudience,
	// subject ServiceAccountSubject).
	PodsGroup = "pods"
	// OtherPodsGroup accepts the same issuer's tokens for another subject
	// (system:serviceaccount:other:connectord) only.
	OtherPodsGroup = "other-pods"
	// PodsAppHost is the sample app served through PodsGroup.
	PodsAppHost = "pods.localhost"
	// ServiceAccountNamespace and ServiceAccountName name the service
	// account PodsGroup accepts.
	ServiceAccountNamespace = "postern"
	ServiceAccountName      = "connectord"
	// ServiceAccountSubject is its tokens' sub.
	ServiceAccountSubject = "system:serviceaccount:" + ServiceAccountNamespace + ":" + ServiceAccountName
	// ServiceAccountAudience is the audience the groups accept.
	ServiceAccountAudience = "postern"
)

// startServiceAccountIssuer starts the stand-in for the cluster's
// service-account issuer (discovery and JWKS over HTTPS, as a Kubernetes
// API server with service-account-issuer discovery serves them).
func (h *Harness) startServiceAccountIssuer() error {
	is, err := devidp.ListenWorkloadIssuer("127.0.0.1:0", devcert.ServerTLS(h.cert), "https://kubernetes.localhost:{port}")
	if err != nil {
		return err
	}
	h.saIssuer, h.saClient = is, localClient(h.CA)
	return nil
}

// ServiceAccountIssuer returns the stand-in for the cluster's
// service-account issuer (Options.ServiceAccounts), to mint tokens.
func (h *Harness) ServiceAccountIssuer() *devidp.WorkloadIssuer { return h.saIssuer }

// ServiceAccountToken mints a projected ServiceAccount token of pod,
// running as service account sa in namespace ns, for audience aud, valid
// for ttl.
func (h *Harness) ServiceAccountToken(ns, sa, pod, aud string, ttl time.Duration) (string, error) {
	return h.saIssuer.Mint(devidp.KubernetesClaims(ns, sa, pod, aud), ttl)
}

// serviceAccountIssuerYAML is the issuers entry of the stand-in.
func (h *Harness) serviceAccountIssuerYAML() string {
	return fmt.Sprintf("  - id: cluster\n    issuer: %s\n", h.saIssuer.Issuer())
}

// serviceAccountGroupsYAML are the connector groups that accept its
// tokens.
func (h *Harness) serviceAccountGroupsYAML() string {
	return fmt.Sprintf(`  - id: %s
    region: local
    workload_enrollment: {issuer: cluster, audiences: [%s], subjects: ["%s"]}
  - id: %s
    region: local
    workload_enrollment: {issuer: cluster, audiences: [%s], subjects: ["system:serviceaccount:other:connectord"]}
`, PodsGroup, ServiceAccountAudience, ServiceAccountSubject, OtherPodsGroup, ServiceAccountAudience)
}

// serviceAccountAppYAML is the app served through PodsGroup.
func (h *Harness) serviceAccountAppYAML() string {
	return fmt.Sprintf("  - id: pods\n    host: %s\n    internal_url: %s\n    connector_group: %s\n    preauth: passthrough\n", PodsAppHost, h.App, PodsGroup)
}

// bearerClient is the mesh nodes' client for the trusted issuers: the
// auth system's, or the service-account issuer's.
func (h *Harness) bearerClient() *http.Client {
	if c := h.authClient(); c != nil {
		return c
	}
	return h.saClient
}

package meshnode

import (
	"context"
	"errors"
	"fmt"

	"github.com/postern/postern/pkg/bearer"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/enroll"
)

// Enrolment by workload identity: a connector group whose catalogue entry
// has a workload_enrollment section accepts, instead of a one-time token,
// a token of that section's issuer (a Kubernetes cluster's
// service-account issuer) naming one of its audiences and, exactly, one of
// its subjects. The token is verified by the same code and key sets as
// apps' trusted workload issuers (pkg/bearer), against the catalogue
// current at the request.

// workloads implements enroll.WorkloadVerifier with the catalogue's
// connector groups and the node's bearer-token verifier.
type workloads struct {
	cat      func() *catalog.Catalog
	verifier *bearer.Verifier
}

var _ enroll.WorkloadVerifier = workloads{}

// AllowsSubject implements enroll.WorkloadVerifier.
func (w workloads) AllowsSubject(group, sub string) bool {
	g, ok := w.cat().Group(group)
	return ok && g.Workload != nil && g.Workload.AcceptsSubject(sub)
}

// VerifyWorkload implements enroll.WorkloadVerifier.
func (w workloads) VerifyWorkload(ctx context.Context, group, token string) (enroll.WorkloadGrant, error) {
	g, ok := w.cat().Group(group)
	switch {
	case !ok:
		return enroll.WorkloadGrant{}, fmt.Errorf("meshnode: workload enrolment: %w: connector group %q is not in the catalogue", enroll.ErrWorkloadNotAllowed, group)
	case g.Workload == nil:
		return enroll.WorkloadGrant{}, fmt.Errorf("meshnode: workload enrolment: %w: connector group %q has no workload_enrollment", enroll.ErrWorkloadNotAllowed, group)
	}
	id, exp, err := w.verifier.VerifyWorkload(ctx, token, g.Workload.Bearer())
	switch {
	case errors.Is(err, bearer.ErrKeysUnavailable):
		return enroll.WorkloadGrant{}, fmt.Errorf("meshnode: workload enrolment: %w: %w", enroll.ErrWorkloadUnavailable, err)
	case errors.Is(err, bearer.ErrUnknownIssuer):
		// A valid token of another issuer is not this group's to accept.
		return enroll.WorkloadGrant{}, fmt.Errorf("meshnode: workload enrolment: %w: not a token of issuer %s: %w", enroll.ErrWorkloadNotAllowed, g.Workload.Issuer.ID, err)
	case err != nil:
		return enroll.WorkloadGrant{}, fmt.Errorf("meshnode: workload enrolment: %w: %w", enroll.ErrWorkloadToken, err)
	}
	sub := id.Claims["sub"]
	if !g.Workload.AcceptsSubject(sub) {
		return enroll.WorkloadGrant{Subject: sub}, fmt.Errorf("meshnode: workload enrolment: %w: subject %.200q is not one of connector group %s's subjects", enroll.ErrWorkloadNotAllowed, sub, group)
	}
	return enroll.WorkloadGrant{Subject: sub, Expires: exp, CredentialTTL: g.Workload.CredentialTTL}, nil
}

// Module build holds Postern's build and packaging tools and their tests,
// which need libraries the product must not link (go-containerregistry,
// Helm, the Kubernetes API types): container images (image,
// cmd/ociimage), the Helm chart's rendering test (chart), and the apt and
// yum repository metadata (repo, cmd/repometa). It is its own Go module, so
// that none of it enters the product module's graph; `task test` runs its
// tests too.
package build

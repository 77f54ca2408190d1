// Package chart holds the tests of Postern's Helm charts (infra/charts):
// each chart is rendered with Helm's own Go library for several value
// sets, and every object it produces is decoded strictly into the
// k8s.io/api types, so that a misspelt or misplaced field fails here and
// not at install time.
package chart

package wgnet

// PairNodes is pair for the external benchmarks (bench_test.go), which
// import pkg/wgnet/wgbench and so cannot be in package wgnet.
var PairNodes = pair

// PairNodesWithoutOffload is pairWithoutOffload for the benchmarks.
var PairNodesWithoutOffload = pairWithoutOffload

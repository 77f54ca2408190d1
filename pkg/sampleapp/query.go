package sampleapp

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// intParam parses the query parameter name as an integer in [lo, hi].
// A missing parameter yields def.
func intParam(q url.Values, name string, def, lo, hi int64) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("query parameter %q must be an integer from %d to %d", name, lo, hi)
	}
	return v, nil
}

// uintParam parses the query parameter name as an unsigned 64-bit integer.
// A missing parameter yields def.
func uintParam(q url.Values, name string, def uint64) (uint64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("query parameter %q must be an unsigned 64-bit integer", name)
	}
	return v, nil
}

// durationParam parses the query parameter name as a Go duration ("250ms",
// "2s") in [0, max]. A missing parameter yields def.
func durationParam(q url.Values, name string, def, max time.Duration) (time.Duration, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > max {
		return 0, fmt.Errorf("query parameter %q must be a duration such as 250ms or 2s, from 0 to %v", name, max)
	}
	return d, nil
}

// boolParam parses the query parameter name as "1"/"true" or "0"/"false".
// A missing parameter yields false.
func boolParam(q url.Values, name string) (bool, error) {
	s := q.Get(name)
	if s == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("query parameter %q must be 1, 0, true or false", name)
	}
	return v, nil
}

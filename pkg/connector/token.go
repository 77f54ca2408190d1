package connector

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// ReadToken picks the enrolment token from the --token flag's value, the
// --token-file ("-": stdin) or the POSTERN_ENROLL_TOKEN environment
// variable; exactly one of them must give it.
func ReadToken(flagValue, file, env string, stdin io.Reader) (string, error) {
	given := 0
	for _, v := range []string{flagValue, file, env} {
		if v != "" {
			given++
		}
	}
	switch {
	case given == 0:
		return "", fmt.Errorf("no enrolment token: set POSTERN_ENROLL_TOKEN, or pass --token-file FILE (- for standard input)")
	case given > 1:
		return "", fmt.Errorf("the enrolment token is given more than once (--token, --token-file, POSTERN_ENROLL_TOKEN): give it once")
	case flagValue != "":
		return flagValue, nil
	case env != "":
		return strings.TrimSpace(env), nil
	}
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 8<<10))
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s: empty", file)
	}
	return tok, nil
}

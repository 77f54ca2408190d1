package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

func TestWriterRecords(t *testing.T) {
	rec := httptest.NewRecorder()
	w := Wrap(rec)
	defer w.Release()
	w.WriteHeader(http.StatusTeapot)
	w.Write([]byte("abc"))
	w.Write([]byte("de"))
	if w.Status() != http.StatusTeapot || w.Bytes() != 5 {
		t.Fatalf("got status %d bytes %d, want 418 and 5", w.Status(), w.Bytes())
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Fatalf("flush through controller: %v", err)
	}
	if !rec.Flushed {
		t.Fatal("flush did not reach the recorder")
	}
}

func TestWriterImplicitOK(t *testing.T) {
	w := Wrap(httptest.NewRecorder())
	defer w.Release()
	w.Write([]byte("x"))
	if w.Status() != http.StatusOK {
		t.Fatalf("got %d, want 200", w.Status())
	}
}

func TestRecordCut(t *testing.T) {
	cut := errors.New("connection reset")
	for _, tc := range []struct {
		name string
		r    io.Reader
		want error
	}{
		{"whole body", strings.NewReader("hello"), nil},
		{"cut body", io.MultiReader(strings.NewReader("hel"), iotest.ErrReader(cut)), cut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got error
			io.Copy(io.Discard, RecordCut(io.NopCloser(tc.r), &got))
			if got != tc.want {
				t.Errorf("recorded %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLine(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	Line(context.Background(), l, "access", slog.String("request_id", "r1"), slog.Int("status", 200),
		slog.String("a", "1"), slog.String("b", "2"), slog.String("c", "3"), slog.String("d", "4"), slog.Bool("truncated", false))
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("line %q: %v", buf.String(), err)
	}
	want := map[string]any{"level": "INFO", "msg": "access", "request_id": "r1", "status": 200.0,
		"a": "1", "b": "2", "c": "3", "d": "4", "truncated": false}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, got[k], v, buf.String())
		}
	}
	if _, ok := got["time"]; !ok || len(got) != len(want)+1 {
		t.Errorf("line has %d fields, want %d and a time: %s", len(got), len(want)+1, buf.String())
	}

	buf.Reset()
	quiet := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	Line(context.Background(), quiet, "access", slog.String("request_id", "r2"))
	if buf.Len() != 0 {
		t.Errorf("a logger at warn wrote an access line: %s", buf.String())
	}
}

package accesslog

import (
	"errors"
	"io"
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

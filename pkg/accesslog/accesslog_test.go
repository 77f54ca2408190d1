package accesslog

import (
	"net/http"
	"net/http/httptest"
	"testing"
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

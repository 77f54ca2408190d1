package duplex

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReadsEndWithTheHandler: a reader that outlives the handler (as an
// http.Transport's write goroutine may) is ended when the handler
// returns — one blocked on the client at once, later ones with
// ErrHandlerDone — and the server is not disturbed.
func TestReadsEndWithTheHandler(t *testing.T) {
	readerDone := make(chan error, 1)
	var later io.Reader
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done := Serve(w, r)
		defer done()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		later = r.Body
		go func() { // the transport's writer: reads on after the answer
			_, err := io.Copy(io.Discard, r.Body)
			readerDone <- err
		}()
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "answered early")
	}))
	defer srv.Close()
	// A raw client that sends 5 of the 100 bytes it announced and keeps
	// the connection open: the rest of the upload never comes.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfirst"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "answered early" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	select {
	case err := <-readerDone:
		if err == nil {
			t.Fatal("the outliving read ended without an error, as if the upload were complete")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a read of the body still waits for the client after the handler returned")
	}
	if _, err := later.Read(make([]byte, 1)); !errors.Is(err, ErrHandlerDone) {
		t.Fatalf("a read after the handler returned: got %v, want ErrHandlerDone", err)
	}
	// The server still answers.
	resp, err = srv.Client().Post(srv.URL, "text/plain", strings.NewReader("12345"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("next request: got %d", resp.StatusCode)
	}
}

// TestNoBody: a request without a body is served full duplex and its body
// left alone.
func TestNoBody(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	done := Serve(w, r)
	done()
	if r.Body != http.NoBody && r.Body != nil {
		if _, ok := r.Body.(*body); ok {
			t.Fatal("a bodiless request got a guarded body")
		}
	}
}

// TestWholeBodyReadInHandler: a body read to its end inside the handler
// reads as usual.
func TestWholeBodyReadInHandler(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer Serve(w, r)()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	for range 3 {
		resp, err := srv.Client().Post(srv.URL, "text/plain", strings.NewReader("hello, duplex"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello, duplex" {
			t.Fatalf("got %q", b)
		}
	}
}

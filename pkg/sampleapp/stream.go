package sampleapp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// MaxDownload is the largest body /download serves: 16 GiB.
const MaxDownload = 16 << 30

// chunkSize is the size of the pieces in which Stream's WriteTo generates
// and writes the stream.
const chunkSize = 32 << 10

// Stream returns a reader of the first n bytes of the deterministic
// pseudo-random stream identified by seed: the body /download serves for
// the same seed and n. Tests hash it to get the expected digest of a
// download without buffering it. A negative n is treated as zero.
//
// The stream is AES-128-CTR keystream (key = seed, little-endian, padded
// with zeros; IV zero), chosen because it runs at several GB/s with AES-NI
// and so never limits a throughput benchmark. It is not secret.
func Stream(seed uint64, n int64) io.Reader {
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:8], seed)
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic("sampleapp: aes.NewCipher rejected a 16-byte key: " + err.Error())
	}
	var iv [aes.BlockSize]byte
	return &stream{ctr: cipher.NewCTR(block, iv[:]), left: max(n, 0)}
}

// stream is the reader returned by Stream.
type stream struct {
	ctr  cipher.Stream
	left int64
}

// Read fills p with the next bytes of the stream.
func (s *stream) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	clear(p)
	s.ctr.XORKeyStream(p, p)
	s.left -= int64(len(p))
	return len(p), nil
}

// WriteTo writes the rest of the stream to w in chunkSize pieces, so
// io.Copy needs no buffer of its own.
func (s *stream) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, min(s.left, chunkSize))
	var total int64
	for s.left > 0 {
		n, _ := s.Read(buf)
		m, err := w.Write(buf[:n])
		total += int64(m)
		if err != nil {
			return total, err
		}
		if m < n {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

func (a *App) serveDownload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("bytes") == "" {
		badRequest(w, `query parameter "bytes" is required`)
		return
	}
	n, err := intParam(q, "bytes", 0, 0, MaxDownload)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	seed, err := uintParam(q, "seed", 0)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	chunked, err := boolParam(q, "chunked")
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if !chunked {
		h.Set("Content-Length", strconv.FormatInt(n, 10))
	} else {
		// Sending the header now, without a length, makes HTTP/1.1 use
		// chunked encoding even for bodies that would fit in one buffer.
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
	}
	if r.Method == http.MethodHead {
		// The server would discard the body; do not generate it.
		return
	}
	sent, err := io.Copy(w, Stream(seed, n))
	if err != nil {
		a.logger.Debug("download aborted", "bytes_sent", sent, "bytes_total", n, "err", err)
	}
}

// UploadResult is the JSON document /upload answers with.
type UploadResult struct {
	// Bytes is the number of body bytes received.
	Bytes int64 `json:"bytes"`
	// SHA256 is the lower-case hex SHA-256 digest of the body.
	SHA256 string `json:"sha256"`
}

func (a *App) serveUpload(w http.ResponseWriter, r *http.Request) {
	sum := sha256.New()
	n, err := io.Copy(sum, r.Body)
	if err != nil {
		a.logger.Debug("upload aborted", "bytes_received", n, "err", err)
		badRequest(w, "read request body: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, UploadResult{Bytes: n, SHA256: hex.EncodeToString(sum.Sum(nil))})
}

// MaxEcho is the largest body /echo accepts: 8 MiB.
const MaxEcho = 8 << 20

// serveEcho answers with the request body. By default it reads the whole
// body first, as a backend that parses a request before it responds does;
// bodies larger than MaxEcho get 413. With ?duplex=1 it streams each piece
// back as it arrives (HTTP/1.1 full duplex, of any length), as a backend
// that answers while the client is still sending does.
func (a *App) serveEcho(w http.ResponseWriter, r *http.Request) {
	duplex, err := boolParam(r.URL.Query(), "duplex")
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if duplex {
		a.echoDuplex(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEcho))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body larger than 8 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		a.logger.Debug("echo aborted", "bytes_received", len(body), "err", err)
		badRequest(w, "read request body: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// echoDuplex writes each piece of the request body back as soon as it is
// read, flushing it, so the response starts before the request ends.
func (a *App) echoDuplex(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex() // HTTP/2 is always full duplex; ErrNotSupported there
	// No Content-Length: a response of unknown length is streamed (and
	// flushed by proxies) piece by piece.
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, chunkSize)
	var total int64
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				a.logger.Debug("echo aborted", "bytes_echoed", total, "err", werr)
				return
			}
			rc.Flush()
			total += int64(n)
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			a.logger.Debug("echo aborted", "bytes_echoed", total, "err", err)
			panic(http.ErrAbortHandler) // the status is sent: cut the response
		}
	}
}

package catalog

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/awsapi"
	"github.com/postern/postern/pkg/awsapi/awstest"
	"github.com/postern/postern/pkg/testkit"
)

// TestStoreFromS3 reads the catalogue from an S3 object (the stand-in
// speaks S3's wire format and checks the signature), reloads it live when
// the object changes, asks only for a newer version in between (304), and
// keeps the catalogue in force when the object turns invalid or S3 fails.
func TestStoreFromS3(t *testing.T) {
	s3 := awstest.New(t)
	s3.Put("postern-config", "mesh/catalog.yaml", []byte(catalogWithApps(1)))
	c, err := awsapi.New(awsapi.Config{Region: "eu-west-1", Endpoint: s3.URL, Credentials: awstest.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	src, err := awsapi.NewS3Source(c, "s3://postern-config/mesh/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	store, err := NewStoreFrom(t.Context(), src, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); store.Watch(ctx, 10*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done })

	testkit.WaitFor(t, 10*time.Second, "a conditional GET answered 304", func() bool { return strings.Contains(strings.Join(s3.Requests(), "\n"), " 304") })
	s3.Put("postern-config", "mesh/catalog.yaml", []byte(catalogWithApps(3)))
	testkit.WaitFor(t, 10*time.Second, "the new catalogue", func() bool { return len(store.Current().Apps()) == 3 })

	s3.Put("postern-config", "mesh/catalog.yaml", []byte(catalogWithApps(3)+"  - nonsense\n"))
	testkit.WaitFor(t, 10*time.Second, "the invalid catalogue logged", func() bool { return strings.Contains(logs.String(), "catalog_reload_failed") })
	logged, polls := strings.Count(logs.String(), "catalog_reload_failed"), len(s3.Requests())
	testkit.WaitFor(t, 10*time.Second, "five more polls", func() bool { return len(s3.Requests()) >= polls+5 })
	if n := strings.Count(logs.String(), "catalog_reload_failed"); n != logged {
		t.Errorf("the same invalid object was logged %d times over five polls, want once", n-logged+1)
	}
	s3.FailNext(3)
	testkit.WaitFor(t, 10*time.Second, "S3 failing logged", func() bool { return strings.Contains(logs.String(), "SlowDown") })
	if n := len(store.Current().Apps()); n != 3 {
		t.Fatalf("after an invalid object and S3 errors: %d apps, want the 3 in force", n)
	}
	s3.Put("postern-config", "mesh/catalog.yaml", []byte(catalogWithApps(2)))
	testkit.WaitFor(t, 10*time.Second, "the fixed catalogue", func() bool { return len(store.Current().Apps()) == 2 })
	if !strings.Contains(logs.String(), `"source":"s3://postern-config/mesh/catalog.yaml"`) {
		t.Errorf("logs do not name the source: %s", logs)
	}
}

package pool

import (
	"testing"

	"github.com/postern/postern/pkg/testkit"
)

// TestMain fails the package's run if a test leaves a goroutine behind.
func TestMain(m *testing.M) { testkit.Main(m) }

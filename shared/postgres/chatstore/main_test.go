package chatstore_test

import (
	"os"
	"testing"

	"github.com/helixhq/helix/shared/pgtest"
)

// pg gives each test its own fresh, migrated and seeded database.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

package homeserver

import (
	"context"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/storage"
)

// openGraph picks the relationship store: Neo4j when graph.neo4j_url is
// set, else tables in the main store.
func openGraph(ctx context.Context, cfg config.Config, store *storage.Store) (graph.Store, error) {
	return nil, nil // filled in when graph's implementations land
}

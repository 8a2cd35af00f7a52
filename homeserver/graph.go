package homeserver

import (
	"context"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/storage"
)

// openGraph picks the relationship store: Neo4j when graph.neo4j_url is
// set, else tables in the main store, so the embedded default needs
// nothing installed. A configured Neo4j that cannot be reached stops the
// start: an operator who asked for it should hear at once, not at the first
// friend request.
func openGraph(ctx context.Context, cfg config.Config, store *storage.Store) (graph.Store, error) {
	if cfg.Graph.Neo4jURL == "" {
		return graph.NewSQL(store), nil
	}
	return graph.OpenNeo4j(ctx, graph.Neo4jOptions{URL: cfg.Graph.Neo4jURL, User: cfg.Graph.Neo4jUser, Password: cfg.Graph.Neo4jPassword})
}

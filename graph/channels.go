package graph

// A broadcast channel is followed through the graph as a follow edge to
// its ID ("~local:server", package channels). Channels are not users: the
// user lists (following) leave them out here, so every caller of the graph
// sees the same thing.

// isChannel reports whether id is a channel's rather than a user's.
func isChannel(id string) bool { return len(id) > 0 && id[0] == '~' }

// withoutChannels wraps a user-list fetch so channel IDs are skipped while
// pages stay full: it fetches on past skipped IDs until it has n or the
// list ends.
func withoutChannels(fetch func(after string, n int) ([]string, error)) func(after string, n int) ([]string, error) {
	return func(after string, n int) ([]string, error) {
		var out []string
		for {
			ids, err := fetch(after, n)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				if !isChannel(id) {
					out = append(out, id)
				}
			}
			if len(ids) < n || len(out) >= n {
				if len(out) > n {
					out = out[:n]
				}
				return out, nil
			}
			after = ids[len(ids)-1]
		}
	}
}

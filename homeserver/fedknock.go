package homeserver

import (
	"context"

	"github.com/parley-im/parley/clientapi"
)

// Knocks across servers (issue 11): the client API's /knock on a room this
// server is not in goes through the joiner (federation/membership).

var _ clientapi.RemoteKnocker = (*fedMembership)(nil)

// Knock implements clientapi.RemoteKnocker.
func (f *fedMembership) Knock(ctx context.Context, roomID, user string, servers []string, content map[string]any) (string, error) {
	if f.j == nil {
		return "", errFedNotStarted
	}
	return f.j.Knock(ctx, roomID, user, servers, content)
}

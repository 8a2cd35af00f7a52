// Package graph will own the relationship chain: follows, friend requests,
// friendships and blocks, behind one small interface with a Neo4j and a SQL
// implementation. Until it lands, clientapi's invite checks are the hook
// where block and friends-only policies will apply.
package graph

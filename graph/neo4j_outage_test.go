package graph_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/homeserver/hstest"
)

// TestNeo4jOutage cuts Neo4j off in the middle of a Block, after the block
// itself is written and before the friendship is removed. The operation must
// fail with ErrUnavailable within a bound, leave nothing of itself behind,
// and the same store must work again once Neo4j is back.
func TestNeo4jOutage(t *testing.T) {
	target := neo4jTarget(t)
	u, err := url.Parse(target.URL)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 1500 * time.Millisecond
	// The driver gives up at the timeout; the rest is slack for a busy machine.
	const bound = timeout + 2*time.Second
	observer := openNeo4j(t, target) // straight to Neo4j, never through the proxy

	cases := []struct {
		name string
		mode hstest.ProxyMode
	}{
		{"connection lost", hstest.Refusing},
		{"server stops answering", hstest.Stalled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			proxy := hstest.StartFaultProxy(t, u.Host)
			viaProxy := target
			viaProxy.URL, viaProxy.Timeout = "bolt://"+proxy.Addr(), timeout
			s := openNeo4j(t, viaProxy)

			ns := newNamespace()
			a, b := ns.user("a"), ns.user("b")
			befriend(t, s, a, b)
			must(s.Follow(ctx, a, b))(t)
			must(s.Follow(ctx, b, a))(t)
			before := must(observer.Relationship(ctx, a, b))(t)

			// Block merges the block, then deletes the friendship: trip there.
			proxy.ArmTrip("DELETE", c.mode)
			start := time.Now()
			_, err := s.Block(ctx, a, b)
			elapsed := time.Since(start)
			if !errors.Is(err, graph.ErrUnavailable) || elapsed > bound {
				t.Fatalf("Block while cut off = %v after %v, want ErrUnavailable within %v", err, elapsed, bound)
			}
			t.Logf("Block while cut off failed after %v: %v", elapsed.Round(time.Millisecond), err)
			start = time.Now()
			if _, err := s.Relationship(ctx, a, b); !errors.Is(err, graph.ErrUnavailable) || time.Since(start) > bound {
				t.Errorf("Relationship while cut off = %v after %v, want ErrUnavailable within %v", err, time.Since(start), bound)
			}

			proxy.Restore()
			if after := must(observer.Relationship(ctx, a, b))(t); after != before {
				t.Errorf("after the failed Block: %+v, want it unchanged: %+v", after, before)
			}
			got := must(s.Block(ctx, a, b))(t)
			want := graph.BlockEffects{Changed: true, Unfriended: true, Unfollowed: true, LostFollower: true}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Block after recovery = %+v, want %+v", got, want)
			}
		})
	}
}

// TestOpenNeo4jUnreachable needs no Neo4j: a server that is not there, or
// that accepts connections and never answers, must give ErrUnavailable at
// start, within the timeout.
func TestOpenNeo4jUnreachable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, unanswered, until the test ends
		}
	}()

	const timeout = 500 * time.Millisecond
	for _, c := range []struct{ name, addr string }{
		{"nothing listening", closedAddr},
		{"accepts and says nothing", mute.Addr().String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			s, err := graph.OpenNeo4j(context.Background(), graph.Neo4jOptions{URL: "bolt://" + c.addr, Timeout: timeout})
			if err == nil {
				s.Close(context.Background())
			}
			if elapsed := time.Since(start); !errors.Is(err, graph.ErrUnavailable) || elapsed > timeout+2*time.Second {
				t.Errorf("OpenNeo4j = %v after %v, want ErrUnavailable within %v", err, elapsed, timeout+2*time.Second)
			}
		})
	}
}

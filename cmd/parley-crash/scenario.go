package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"golang.org/x/sync/errgroup"
)

// groupSize is the membership of a group room; DMs have two members.
const groupSize = 10

// user is one sending client: a goroutine that owns one or two devices.
type user struct {
	idx     int
	name    string
	two     bool // logs in a second device, so "every device" means more than one per user
	devices []*device
	rooms   []*room
}

type room struct {
	idx     int
	id      string
	dm      bool
	members []*user
}

// sendRecord is one message: planned before the sending starts, then
// updated only by its client's goroutine until the sending is over.
type sendRecord struct {
	client, seq int
	room        *room
	dev         *device // every attempt uses this device, so retries deduplicate
	txn, body   string
	eventID     string // set once acknowledged
	attempts    int
	rejected    bool  // refused with a 4xx three times: given up
	firstFail   int64 // Unix ms when an attempt first failed; 0 if none did
}

// scenario is the layout of users, devices and rooms and the message plan.
type scenario struct {
	users []*user
	rooms []*room
	sends [][]*sendRecord // per client, in send order
}

// planLayout decides, from the seed alone, who is in which room and who
// has two devices. Half the rooms (rounded down) are DMs, the others groups
// of up to ten; members are dealt from a shuffled deck so that every user
// lands in some room whenever there are enough seats.
func planLayout(cfg config) *scenario {
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	sc := &scenario{}
	for i := range cfg.Clients {
		sc.users = append(sc.users, &user{idx: i, name: fmt.Sprintf("crash%03d", i)})
	}
	twos := max(3, cfg.Clients/5)
	for _, i := range rng.Perm(cfg.Clients)[:min(twos, cfg.Clients)] {
		sc.users[i].two = true
	}
	deck, next := rng.Perm(cfg.Clients), 0
	var groups []*room
	for i := range cfg.Rooms {
		r := &room{idx: i, dm: i%2 == 1}
		n := min(groupSize, cfg.Clients)
		if r.dm {
			n = 2
		} else {
			groups = append(groups, r)
		}
		for range n { // n consecutive cards of a cyclic deck are distinct
			r.add(sc.users[deck[next%cfg.Clients]])
			next++
		}
		sc.rooms = append(sc.rooms, r)
	}
	for i, u := range sc.users { // too few seats: seat the rest in groups
		if len(u.rooms) == 0 {
			groups[i%len(groups)].add(u)
		}
	}
	return sc
}

func (r *room) add(u *user) {
	r.members = append(r.members, u)
	u.rooms = append(u.rooms, r)
}

// planSends shares the messages between the clients and picks each
// message's room and device with the client's own seeded generator.
func (sc *scenario) planSends(cfg config) {
	sc.sends = make([][]*sendRecord, len(sc.users))
	for _, u := range sc.users {
		rng := rand.New(rand.NewPCG(cfg.Seed, 100+uint64(u.idx)))
		share := cfg.Sends / cfg.Clients
		if u.idx < cfg.Sends%cfg.Clients {
			share++
		}
		for seq := range share {
			sc.sends[u.idx] = append(sc.sends[u.idx], &sendRecord{
				client: u.idx,
				seq:    seq,
				room:   u.rooms[rng.IntN(len(u.rooms))],
				dev:    u.devices[seq%len(u.devices)],
				txn:    fmt.Sprintf("crash-%d-%d-%d", cfg.Seed, u.idx, seq),
				body:   fmt.Sprintf("parley-crash seed=%d client=%d seq=%d", cfg.Seed, u.idx, seq),
			})
		}
	}
}

// setup registers the users, logs in second devices, creates the rooms
// with invites and has every invitee join, all before any kill.
func (sc *scenario) setup(ctx context.Context, a *api) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, u := range sc.users {
		g.Go(func() error {
			d, err := a.register(gctx, u.name)
			if err != nil {
				return err
			}
			u.devices = []*device{d}
			if u.two {
				d2, err := a.login(gctx, u.name)
				if err != nil {
					return err
				}
				u.devices = append(u.devices, d2)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("setup users: %w", err)
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, r := range sc.rooms {
		g.Go(func() error {
			creator := r.members[0].devices[0]
			var invite []string
			for _, m := range r.members[1:] {
				invite = append(invite, m.devices[0].userID)
			}
			kind := "group"
			if r.dm {
				kind = "dm"
			}
			id, err := a.createRoom(gctx, creator, fmt.Sprintf("crash %s %d", kind, r.idx), invite, r.dm)
			if err != nil {
				return err
			}
			r.id = id
			for _, m := range r.members[1:] {
				if err := a.join(gctx, m.devices[0], id); err != nil {
					return fmt.Errorf("%s joins %s: %w", m.name, id, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("setup rooms: %w", err)
	}
	return nil
}

func (sc *scenario) devices() int {
	n := 0
	for _, u := range sc.users {
		n += len(u.devices)
	}
	return n
}

func (sc *scenario) dms() int {
	n := 0
	for _, r := range sc.rooms {
		if r.dm {
			n++
		}
	}
	return n
}

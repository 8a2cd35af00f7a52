package authrules

import (
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
)

// checkMember is rule 4, for m.room.member events.
func (s *state) checkMember() error {
	ev := s.ev
	membership := gjson.GetBytes(ev.Content, "membership")
	if !ev.IsState() || !membership.Exists() {
		return deny("m.room.member needs a state key and a membership")
	}
	target := *ev.StateKey
	// Rule 4.2: signature *presence* only; see Check.
	if via := gjson.GetBytes(ev.Content, "join_authorised_via_users_server"); via.Exists() {
		if via.Type != gjson.String || !plausibleUserID(via.Str) {
			return deny("join_authorised_via_users_server %s is not a user ID", via.Raw)
		}
		if server := pdu.Domain(via.Str); len(ev.SignatureKeyIDs(server)) == 0 {
			return deny("the join is not signed by %s, the server of %s who authorised it", server, via.Str)
		}
	}
	senderLevel := s.pl.UserLevel(ev.Sender)
	switch membership.Str {
	case "join":
		return s.checkJoin(target)
	case "invite":
		if tpi := gjson.GetBytes(ev.Content, "third_party_invite"); tpi.Exists() {
			return s.checkThirdPartyInvite(target, tpi)
		}
		switch {
		case s.membership(ev.Sender) != "join":
			return deny("%s cannot invite without being in the room", ev.Sender)
		case s.membership(target) == "join":
			return deny("%s is already in the room", target)
		case s.membership(target) == "ban":
			return deny("%s is banned from the room", target)
		case senderLevel < s.pl.Invite:
			return deny("sender's power level %d is below %d needed to invite", senderLevel, s.pl.Invite)
		}
		return nil
	case "leave":
		if ev.Sender == target {
			switch m := s.membership(target); m {
			case "invite", "join", "knock":
				return nil
			default:
				return deny("%s cannot leave a room they are not in (membership is %s)", target, m)
			}
		}
		targetLevel := s.pl.UserLevel(target)
		switch {
		case s.membership(ev.Sender) != "join":
			return deny("%s cannot kick without being in the room", ev.Sender)
		case s.pl.IsCreator(target):
			return deny("cannot kick %s, a room creator", target)
		case s.membership(target) == "ban" && senderLevel < s.pl.Ban:
			return deny("sender's power level %d is below %d needed to unban", senderLevel, s.pl.Ban)
		case senderLevel < s.pl.Kick:
			return deny("sender's power level %d is below %d needed to kick", senderLevel, s.pl.Kick)
		case targetLevel >= senderLevel:
			return deny("cannot kick %s, whose power level %d is not below the sender's %d", target, targetLevel, senderLevel)
		}
		return nil
	case "ban":
		targetLevel := s.pl.UserLevel(target)
		switch {
		case s.membership(ev.Sender) != "join":
			return deny("%s cannot ban without being in the room", ev.Sender)
		case s.pl.IsCreator(target):
			return deny("cannot ban %s, a room creator", target)
		case senderLevel < s.pl.Ban:
			return deny("sender's power level %d is below %d needed to ban", senderLevel, s.pl.Ban)
		case targetLevel >= senderLevel:
			return deny("cannot ban %s, whose power level %d is not below the sender's %d", target, targetLevel, senderLevel)
		}
		return nil
	case "knock":
		switch jr := s.joinRule(); {
		case jr != "knock" && jr != "knock_restricted":
			return deny("the room's join rule %q does not allow knocking", jr)
		case ev.Sender != target:
			return deny("%s cannot knock on behalf of %s", ev.Sender, target)
		}
		switch m := s.membership(ev.Sender); m {
		case "ban", "invite", "join":
			return deny("%s cannot knock while their membership is %s", ev.Sender, m)
		}
		return nil
	}
	return deny("unknown membership %s", membership.Raw)
}

// checkJoin is rule 4.3.
func (s *state) checkJoin(target string) error {
	ev := s.ev
	if len(ev.PrevEvents) == 1 && ev.PrevEvents[0] == s.create.ID && target == s.creator() {
		return nil // the creator's own first join
	}
	if ev.Sender != target {
		return deny("%s cannot join on behalf of %s", ev.Sender, target)
	}
	current := s.membership(target)
	if current == "ban" {
		return deny("%s is banned from the room", target)
	}
	switch jr := s.joinRule(); jr {
	case "invite", "knock":
		if current == "invite" || current == "join" {
			return nil
		}
		return deny("the room's join rule is %s and %s has no invite", jr, target)
	case "restricted", "knock_restricted":
		if current == "invite" || current == "join" {
			return nil
		}
		via := gjson.GetBytes(ev.Content, "join_authorised_via_users_server").Str
		if via == "" {
			return deny("joining this restricted room needs an invite or join_authorised_via_users_server")
		}
		if m := s.membership(via); m != "join" {
			return deny("%s, who authorised the join, is not in the room", via)
		}
		if lvl := s.pl.UserLevel(via); lvl < s.pl.Invite {
			return deny("%s, who authorised the join, has power level %d, below %d needed to invite", via, lvl, s.pl.Invite)
		}
		return nil
	case "public":
		return nil
	default:
		return deny("the room's join rule %q does not let anyone join", jr)
	}
}

package rooms

// Departed reports whether the user is out of the room now, having left or
// been banned, and the position of that last membership change: a
// departed user reads the timeline only up to it, and ReadAccess refuses
// one who also forgot the room. Every read route asks this, so the rule
// lives here once.
func (v *Visibility) Departed() (pos int64, departed bool) {
	cur, pos := v.Current()
	if cur == "leave" || cur == "ban" {
		return pos, true
	}
	return 0, false
}

package inbox

import "sync"

// toDeviceAcks remembers the devices whose last sync delivered to-device
// messages. Those rows are deleted by the device's next sync, whose token
// acknowledges them (storage.ToDeviceFor deletes what the token acked), so
// that sync must read the to-device stream even when the notifier knows of
// no news for the user. Without this, the skip that spares a woken member
// of a big room its to-device query would leave delivered rows in the
// table until the next message or the retention sweep.
//
// An entry lives from a delivery to the acknowledging sync; the map holds
// at most one small entry per device with an acknowledgement outstanding.
// A restart forgets them: those rows then go with the next message to the
// device or with the retention sweep.
type toDeviceAcks struct {
	mu      sync.Mutex
	pending map[deviceKey]struct{} // guarded by mu
}

type deviceKey struct{ user, device string }

func (a *toDeviceAcks) isPending(user, device string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.pending[deviceKey{user, device}]
	return ok
}

// delivered records what a sync that read the to-device stream found: a
// non-empty delivery awaits its acknowledgement; an empty read has deleted
// everything the token acknowledged.
func (a *toDeviceAcks) delivered(user, device string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := deviceKey{user, device}
	if n == 0 {
		delete(a.pending, k)
		return
	}
	if a.pending == nil {
		a.pending = map[deviceKey]struct{}{}
	}
	a.pending[k] = struct{}{}
}

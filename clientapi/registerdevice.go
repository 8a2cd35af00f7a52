package clientapi

import (
	"strings"
	"time"

	"github.com/parley-im/parley/storage"
)

// newDeviceRow builds a new device with a fresh access token, for
// registration to write together with the account (storage.CreateAccount).
// It makes IDs and tokens the way newDevice does.
func newDeviceRow(userID, deviceID, name, ip string) (*storage.Device, string) {
	if deviceID == "" {
		deviceID = strings.ToUpper(randomToken(8))[:10]
	}
	token := "syt_" + randomToken(32)
	now := time.Now().UnixMilli()
	return &storage.Device{UserID: userID, DeviceID: deviceID, DisplayName: name,
		TokenHash: hashToken(token), CreatedTS: now, LastSeenTS: now, LastSeenIP: ip}, token
}

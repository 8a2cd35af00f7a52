package clientapi

import (
	"strings"
	"time"

	"github.com/parley-im/parley/storage"
)

// newDeviceRow builds a new device with a fresh access token: newDevice
// writes it alone (login), registration together with the account
// (storage.CreateAccount). An empty deviceID gets a generated one.
func newDeviceRow(userID, deviceID, name, ip string) (*storage.Device, string) {
	if deviceID == "" {
		deviceID = strings.ToUpper(randomToken(8))[:10]
	}
	token := "syt_" + randomToken(32)
	now := time.Now().UnixMilli()
	return &storage.Device{UserID: userID, DeviceID: deviceID, DisplayName: name,
		TokenHash: hashToken(token), CreatedTS: now, LastSeenTS: now, LastSeenIP: ip}, token
}

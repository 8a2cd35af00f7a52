package clientapi

import (
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/apierr"
)

// Device field limits. PUT /devices has always capped display names at 256
// bytes; login and registration now apply the same caps through
// validateDevice, so no route stores a larger device row.
const (
	// maxDeviceIDBytes bounds a client-chosen device ID. The spec sets no
	// limit; 255 matches Parley's other client-chosen IDs (txnId, state
	// key), and device IDs are repeated in every to-device and key row.
	maxDeviceIDBytes = 255
	// maxDeviceNameBytes bounds a device's display name, as PUT /devices.
	maxDeviceNameBytes = 256
)

// validateDevice checks a client-chosen device ID and display name before
// anything is written. An empty device ID means "make one up" and is fine.
// Every route that names or renames a device (login, registration, PUT
// /devices) calls it, so the limits live in one place.
func validateDevice(deviceID, displayName string) error {
	if len(deviceID) > maxDeviceIDBytes {
		return apierr.InvalidParam("device_id is too long")
	}
	if !utf8.ValidString(deviceID) || strings.ContainsFunc(deviceID, isControl) {
		return apierr.InvalidParam("device_id must be valid UTF-8 without control characters")
	}
	if len(displayName) > maxDeviceNameBytes {
		return apierr.InvalidParam("display_name is too long")
	}
	if !utf8.ValidString(displayName) || strings.ContainsRune(displayName, 0) {
		return apierr.InvalidParam("display_name must be valid UTF-8 without NUL")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

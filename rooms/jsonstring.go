package rooms

// AppendJSONString appends s as a JSON string, as client events write their
// strings (see appendJSONString). Sync uses it for the rest of a response,
// so one writer escapes every string a client reads, without json.Marshal's
// allocation per string.
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }

package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Paging of the fleet listings (GET /satellites, GET /script-packages).
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
	// MaxPageBytes bounds the JSON body of one listing page: a page ends
	// early, with a nextToken, rather than grow past it. Lambda limits a
	// response to 6 MB, and the body travels inside the response as a JSON
	// string, where every quote and backslash doubles: 1 MiB of body stays
	// under 2 MiB of response. The largest satellite view the API can hold
	// (50 tags of the longest keys and values, every character one JSON
	// escapes, a 2 KB sync error, 32 capabilities) is 131 KB, so a page
	// holds at least seven; a typical view (two tags, three capabilities,
	// a sync state) is about 600 bytes, so a page of MaxPageLimit (about
	// 600 KB) ends at its limit, not at this bound. Both figures are
	// measured by TestListingPagesStayUnderTheirByteBound.
	MaxPageBytes = 1 << 20
	// maxTokenBytes bounds a nextToken before it is decoded: the longest
	// token this API issues is under 250 bytes.
	maxTokenBytes = 512
)

// PageRequest is where a listing page starts and how long it may be.
type PageRequest struct {
	Limit int
	// After is the satellite id the page starts after ("" for the first
	// page), decoded from the nextToken of the page before.
	After string
}

// pageToken is the nextToken of a page whose next page starts after the
// satellite id after: base64url (unpadded) of {"after": id}, the position
// in the fleet index (whose sort key is the satellite's key) that the
// index's LastEvaluatedKey would carry. Clients treat it as opaque.
func pageToken(after string) string {
	if after == "" {
		return ""
	}
	b, _ := json.Marshal(tokenBody{After: after})
	return base64.RawURLEncoding.EncodeToString(b)
}

type tokenBody struct {
	After string `json:"after"`
}

// errBadToken is the answer to a nextToken this API did not issue.
var errBadToken = satellite.Errorf(satellite.EMALFORMED,
	"nextToken is not a token this API issued: pass the nextToken of the previous page unchanged, or none for the first page")

// parsePageToken returns the satellite id a nextToken starts after.
// EMALFORMED for anything pageToken does not produce.
func parsePageToken(tok string) (string, error) {
	if tok == "" || len(tok) > maxTokenBytes {
		return "", errBadToken
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil {
		return "", errBadToken
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var body tokenBody
	if err := dec.Decode(&body); err != nil {
		return "", errBadToken
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errBadToken
	}
	if !satellite.ValidSatelliteID(body.After) {
		return "", errBadToken
	}
	return body.After, nil
}

// decodePageRequest reads ?limit=&nextToken=.
func decodePageRequest(q map[string]string) (PageRequest, error) {
	p := PageRequest{Limit: DefaultPageLimit}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageLimit {
			return p, satellite.Errorf(satellite.EINVALID, "limit must be an integer from 1 to %d", MaxPageLimit)
		}
		p.Limit = n
	}
	if v, ok := q["nextToken"]; ok {
		after, err := parsePageToken(v)
		if err != nil {
			return p, err
		}
		p.After = after
	}
	return p, nil
}

// fitting returns how many of views, in order, fit in budget bytes of JSON
// array elements: at least one, so that every page makes progress.
func fitting[V any](views []V, budget int) int {
	used := 0
	for i, v := range views {
		b, _ := json.Marshal(v)
		used += len(b) + 1 // and its comma
		if used > budget && i > 0 {
			return i
		}
	}
	return len(views)
}

package gateway

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// managementPath recognises /@connections/{id} and /{stage}/@connections/{id}.
func (g *Gateway) managementPath(r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	p = strings.TrimPrefix(p, "/"+g.cfg.API.Stage)
	rest, ok := strings.CutPrefix(p, "/@connections/")
	if !ok {
		rest, ok = strings.CutPrefix(p, "/%40connections/")
	}
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	id, err := url.PathUnescape(rest)
	return id, err == nil
}

// managementError answers like the Management API: the error type in
// x-amzn-ErrorType, which the AWS SDK turns into its typed errors.
func managementError(w http.ResponseWriter, status int, errorType string) {
	w.Header().Set("X-Amzn-ErrorType", errorType)
	writeJSON(w, status, map[string]any{"message": nil})
}

func (g *Gateway) serveManagement(w http.ResponseWriter, r *http.Request, id string) {
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxMessageBytes+1))
		if err != nil {
			managementError(w, http.StatusBadRequest, "BadRequestException")
			return
		}
		if len(body) > MaxMessageBytes {
			managementError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException")
			return
		}
		c, ok := g.connection(id)
		if !ok || !c.send(body) {
			managementError(w, http.StatusGone, "GoneException")
			return
		}
		c.touch()
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		c, ok := g.connection(id)
		if !ok {
			managementError(w, http.StatusGone, "GoneException")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"connectedAt":  c.connectedAt.UTC().Format(time.RFC3339Nano),
			"lastActiveAt": time.Unix(0, c.lastActive.Load()).UTC().Format(time.RFC3339Nano),
			"identity":     map[string]string{"sourceIp": c.sourceIP, "userAgent": c.userAgent},
		})
	case http.MethodDelete:
		c, ok := g.connection(id)
		if !ok {
			managementError(w, http.StatusGone, "GoneException")
			return
		}
		c.close(websocket.StatusNormalClosure, "")
		w.WriteHeader(http.StatusNoContent)
	default:
		managementError(w, http.StatusMethodNotAllowed, "BadRequestException")
	}
}

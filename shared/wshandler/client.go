package wshandler

import (
	"net/netip"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/shared/endpoint"
)

// Headers CloudFront sets on the requests of the satellite endpoint's
// distribution.
const (
	// headerViewerAddress is the viewer's "ip:port"; the origin request
	// policy asks for it.
	headerViewerAddress = "CloudFront-Viewer-Address"
	// headerEdgeRequestID is CloudFront's id of the request.
	headerEdgeRequestID = "X-Amz-Cf-Id"
	headerForwardedFor  = "X-Forwarded-For"
)

// maxHeaderValue bounds what of a client-supplied header is used.
const maxHeaderValue = 256

// clientOf reads where a $connect comes from. Behind CloudFront the TCP
// peer API Gateway reports is an edge, and the satellite's address is in
// CloudFront-Viewer-Address (or, failing that, the last X-Forwarded-For
// entry CloudFront appended before the edge). Header names are matched
// without regard to case: API Gateway passes them as the client (here
// CloudFront) sent them.
func clientOf(req events.APIGatewayWebsocketProxyRequest) endpoint.Client {
	peer := req.RequestContext.Identity.SourceIP
	c := endpoint.Client{IP: peer, PeerIP: peer, UserAgent: clip(req.RequestContext.Identity.UserAgent)}
	edgeID := header(req, headerEdgeRequestID)
	if edgeID == "" {
		return c
	}
	c.EdgeRequestID = clip(edgeID)
	if ip, ok := viewerIP(header(req, headerViewerAddress)); ok {
		c.IP = ip
	} else if ip, ok := forwardedFor(header(req, headerForwardedFor), peer); ok {
		c.IP = ip
	}
	return c
}

// header returns a header's value, whatever the case of its name.
func header(req events.APIGatewayWebsocketProxyRequest, name string) string {
	for k, v := range req.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	for k, vs := range req.MultiValueHeaders {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return strings.Join(vs, ",")
		}
	}
	return ""
}

// viewerIP reads CloudFront-Viewer-Address: "198.51.100.10:46532",
// an IPv6 address and port, or either without the port.
func viewerIP(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > maxHeaderValue {
		return "", false
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap().String(), true
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return a.Unmap().String(), true
	}
	// An IPv6 address followed by ":port" without brackets.
	if i := strings.LastIndexByte(v, ':'); i > 0 {
		if a, err := netip.ParseAddr(v[:i]); err == nil && a.Is6() {
			return a.String(), true
		}
	}
	return "", false
}

// forwardedFor returns the last X-Forwarded-For entry that is not the
// peer: the address CloudFront appended (entries before it are the
// client's say).
func forwardedFor(v, peer string) (string, bool) {
	if len(v) > 4*maxHeaderValue {
		return "", false
	}
	entries := strings.Split(v, ",")
	for i := len(entries) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(entries[i]))
		if err != nil {
			return "", false
		}
		if ip := a.Unmap().String(); ip != peer {
			return ip, true
		}
	}
	return "", false
}

func clip(s string) string {
	if len(s) > maxHeaderValue {
		return s[:maxHeaderValue]
	}
	return s
}

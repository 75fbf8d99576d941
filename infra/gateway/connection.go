package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// connection is one client socket.
type connection struct {
	g           *Gateway
	id          string
	ws          *websocket.Conn // set before ready is closed; nil if the handshake failed
	ready       chan struct{}
	connectedAt time.Time
	sourceIP    string
	userAgent   string
	lastActive  atomic.Int64 // unix nanos

	writeMu sync.Mutex

	closeMu     sync.Mutex
	closeStatus websocket.StatusCode // set when the gateway closes it
	closeReason string
	closed      bool
}

func (c *connection) touch() { c.lastActive.Store(c.g.cfg.Now().UnixNano()) }

// accepted waits for the handshake and reports whether it succeeded.
func (c *connection) accepted() bool {
	<-c.ready
	return c.ws != nil
}

// send writes one text frame; false when the connection cannot take it.
func (c *connection) send(data []byte) bool {
	if !c.accepted() {
		return false
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, data) == nil
}

// close closes the socket from the gateway side with a status API Gateway
// would use; serve then runs $disconnect with it.
func (c *connection) close(status websocket.StatusCode, reason string) {
	if !c.accepted() {
		return
	}
	c.closeMu.Lock()
	if c.closed {
		c.closeMu.Unlock()
		return
	}
	c.closed, c.closeStatus, c.closeReason = true, status, reason
	c.closeMu.Unlock()
	go func() { _ = c.ws.Close(status, reason) }()
}

// serve reads frames until the socket closes, enforcing the idle timeout and
// the maximum duration, then runs $disconnect.
func (c *connection) serve() {
	defer c.g.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.watchdog(ctx)

	inFlight := c.g.cfg.MaxInFlight
	if inFlight <= 0 {
		inFlight = DefaultMaxInFlight
	}
	slots := make(chan struct{}, inFlight)
	status, reason := websocket.StatusNoStatusRcvd, ""
	for {
		// Read the next frame only when one may be handled: a client that
		// pipelines more waits on TCP flow control.
		slots <- struct{}{}
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			status, reason = closeStatus(err)
			break
		}
		now := c.g.cfg.Now()
		c.touch()
		c.g.wg.Add(1)
		go func() {
			defer func() { <-slots }()
			c.g.handleFrame(c, typ, data, now)
		}()
	}
	c.closeMu.Lock()
	if c.closed {
		status, reason = c.closeStatus, c.closeReason
	}
	c.closed = true
	c.closeMu.Unlock()
	c.g.remove(c)
	_ = c.ws.CloseNow()
	c.g.disconnect(c, int(status), reason)
}

// closeStatus reports why a read ended.
func closeStatus(err error) (websocket.StatusCode, string) {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		return websocket.StatusMessageTooBig, "Message too big"
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return websocket.StatusAbnormalClosure, "Connection closed abnormally"
}

func (c *connection) watchdog(ctx context.Context) {
	deadline := c.connectedAt.Add(c.g.cfg.MaxDuration)
	tick := time.NewTicker(min(c.g.cfg.IdleTimeout, c.g.cfg.MaxDuration) / 10)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.g.stop:
			return
		case <-tick.C:
			now := c.g.cfg.Now()
			idle := now.Sub(time.Unix(0, c.lastActive.Load()))
			switch {
			case !now.Before(deadline):
				c.close(websocket.StatusGoingAway, "Going away")
				return
			case idle >= c.g.cfg.IdleTimeout:
				c.close(websocket.StatusGoingAway, "Going away")
				return
			}
		}
	}
}

package localaws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3Server is an S3-compatible server (gofakes3, in memory) on a real port.
type S3Server struct {
	URL     string // http://127.0.0.1:port
	backend *s3mem.Backend
	server  *http.Server
}

// StartS3 serves S3 on addr ("127.0.0.1:0" for a free port).
func StartS3(addr string) (*S3Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("S3 server: %w", err)
	}
	backend := s3mem.New()
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false))
	s := &S3Server{
		URL:     "http://" + l.Addr().String(),
		backend: backend,
		server:  &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 10 * time.Second},
	}
	go func() {
		if err := s.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("S3 server stopped: %v\n", err)
		}
	}()
	return s, nil
}

// CreateBucket creates a bucket; an existing one is kept.
func (s *S3Server) CreateBucket(name string) error {
	err := s.backend.CreateBucket(name)
	if gofakes3.HasErrorCode(err, gofakes3.ErrBucketAlreadyExists) {
		return nil
	}
	return err
}

// Stop shuts the server down.
func (s *S3Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.server.Shutdown(ctx)
}

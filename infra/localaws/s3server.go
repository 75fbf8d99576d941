package localaws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	bolt "go.etcd.io/bbolt"

	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/s3objects"
)

// S3Server is an S3-compatible server (gofakes3) on a real port.
type S3Server struct {
	URL     string // http://127.0.0.1:port
	backend gofakes3.Backend
	server  *http.Server
	closer  func() error
}

// StartS3 serves S3 on addr ("127.0.0.1:0" for a free port), in memory, or
// in the bolt database file dbFile when it is not empty.
func StartS3(addr, dbFile string) (*S3Server, error) {
	var (
		backend gofakes3.Backend
		closer  = func() error { return nil }
	)
	if dbFile == "" {
		backend = s3mem.New()
	} else {
		db, err := bolt.Open(dbFile, 0o600, &bolt.Options{Timeout: 2 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("S3 server: open %s: %w", dbFile, err)
		}
		backend, closer = s3bolt.New(db), db.Close
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		_ = closer()
		return nil, fmt.Errorf("S3 server: %w", err)
	}
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false))
	s := &S3Server{
		URL:     "http://" + l.Addr().String(),
		backend: backend,
		server:  &http.Server{Handler: denyMissingKeys(backend, faker.Server()), ReadHeaderTimeout: 10 * time.Second},
		closer:  closer,
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
	_ = s.closer()
}

// denyMissingKeys answers a GET or HEAD of a missing object the way S3 does
// for a caller without s3:ListBucket on the bucket: 403 AccessDenied, not 404
// NoSuchKey. The functions are never granted ListBucket, so this is what they
// meet on AWS; gofakes3 alone would answer 404 and hide the difference.
// Requests are path-style: /bucket/key.
func denyMissingKeys(backend gofakes3.Backend, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && bucket != "" && key != "" {
			if _, err := backend.HeadObject(bucket, key); gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				if r.Method == http.MethodGet {
					fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
						`<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>%s</RequestId></Error>`, "local")
				}
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// S3Client returns an S3 client for a local S3 server as the functions
// build theirs: path-style addressing (the server has no per-bucket host
// names) and the SDKs' default checksums (app.DataIntegrity).
func S3Client(endpoint string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.NewFromConfig(AWSConfig(), append([]func(*s3.Options){func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		app.DataIntegrity(o)
	}}, optFns...)...)
}

// Bucket returns the functions' access to a bucket of a local S3 server,
// through a client of S3Client(endpoint, optFns...).
func Bucket(endpoint, bucket string, optFns ...func(*s3.Options)) *s3objects.Bucket {
	client := S3Client(endpoint, optFns...)
	return s3objects.New(client, s3.NewPresignClient(client), bucket)
}

package localstack

// Storage start-up: DynamoDB (Local or adopted) and the S3-compatible
// server, with the template's tables and bucket.

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/s3packages"
)

// startStorage starts (or adopts) DynamoDB and S3 and creates the template's
// tables and bucket.
func (s *Stack) startStorage(ctx context.Context, opts Options, tpl *samtemplate.Template, files string) error {
	s.TableNames = opts.TableNames
	if opts.DynamoDBEndpoint != "" {
		s.DynamoDBEndpoint = opts.DynamoDBEndpoint
	} else {
		dataDir := ""
		if opts.DataDir != "" {
			dataDir = filepath.Join(opts.DataDir, "dynamodb")
		}
		ddb, err := localaws.StartDynamoDB(ctx, localaws.DynamoDBOptions{DataDir: dataDir})
		if err != nil {
			return err
		}
		stopped := make(chan struct{})
		s.stop = append(s.stop, func() { close(stopped); ddb.Stop() })
		s.DynamoDBEndpoint, s.DynamoDBPid = ddb.Endpoint, ddb.Pid()
		go func() {
			// Every request would fail from now on; say so once, loudly,
			// rather than answer "Internal server error" forever.
			select {
			case <-ddb.Exited():
				err := fmt.Errorf("DynamoDB Local (pid %d) exited unexpectedly: %v", s.DynamoDBPid, ddb.ExitError())
				s.log.Error(err.Error())
				s.failed <- err
			case <-stopped:
			}
		}()
	}
	if s.TableNames == nil {
		tables, err := tpl.Tables()
		if err != nil {
			return err
		}
		s.TableNames = map[string]string{}
		for _, t := range tables {
			s.TableNames[t.LogicalID] = "checkstack-" + t.LogicalID
		}
	}
	db := localaws.DynamoDBClient(s.DynamoDBEndpoint)
	if err := localaws.CreateTables(ctx, db, tpl, s.TableNames); err != nil {
		return err
	}
	s.Registry = dynamo.NewRegistry(db, dynamo.Tables{
		Satellites: s.TableNames["SatellitesTable"], Connections: s.TableNames["ConnectionsTable"], Results: s.TableNames["ResultsTable"],
	})

	s.S3Endpoint, s.Bucket, s.TelemetryBucket = opts.S3Endpoint, opts.Bucket, opts.TelemetryBucket
	if s.S3Endpoint == "" {
		dbFile := ""
		if opts.DataDir != "" {
			dbFile = filepath.Join(opts.DataDir, "s3.bolt")
		}
		srv, err := localaws.StartS3("127.0.0.1:0", dbFile)
		if err != nil {
			return err
		}
		s.stop = append(s.stop, srv.Stop)
		s.S3Endpoint = srv.URL
		s.Bucket = orDefault(s.Bucket, "checkstack-script-packages")
		s.TelemetryBucket = orDefault(s.TelemetryBucket, "checkstack-telemetry")
		for _, b := range []string{s.Bucket, s.TelemetryBucket} {
			if err := srv.CreateBucket(b); err != nil {
				return err
			}
		}
	}
	sqsServer, err := localaws.StartSQS("127.0.0.1:0")
	if err != nil {
		return err
	}
	s.stop = append(s.stop, sqsServer.Stop)
	s.SQSEndpoint, s.Queues = sqsServer.URL, map[string]string{}
	names := map[string]string{}
	for _, id := range tpl.ResourcesOfType("AWS::SQS::Queue") {
		names[id] = "checkstack-" + id
		s.Queues[id] = sqsServer.QueueURL(names[id])
	}
	if err := sqsServer.CreateQueues(tpl, names); err != nil {
		return err
	}
	s.ResultsFeedQueueURL = s.Queues["ResultsFeedQueue"]

	objects := localaws.Bucket(s.S3Endpoint, s.Bucket)
	s.Publisher, s.Packages = s3packages.NewPublisher(objects), s3packages.New(objects)
	return nil
}

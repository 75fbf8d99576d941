package dynamo

import (
	"context"
	"encoding/json"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Settings implements satellite.Registry: one consistent query of the
// settings partition, so that a sandbox policy once stored is never read
// back older.
func (r *Registry) Settings(ctx context.Context) (satellite.Settings, error) {
	var st satellite.Settings
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey},
		ExpressionAttributeValues: item{":pk": str(packagesPart)},
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		switch getStr(it, SatellitesSortKey) {
		case packagesSort:
			if h := getStr(it, lockfileHashAttr); h != "" {
				st.LockfileHash = &h
			}
		case sandboxSort:
			// Set, whatever it holds: a policy that cannot be read back
			// must not give way to the default.
			st.SandboxPolicySet = true
			st.SandboxPolicy = json.RawMessage(getStr(it, policyAttr))
			st.SandboxPolicyUpdatedAt = getMillis(it, updatedAtAttr)
		}
		return nil
	})
	if err != nil {
		return satellite.Settings{}, internal(err, "read fleet settings")
	}
	return st, nil
}

// SetSandboxPolicy implements satellite.Fleet.
func (r *Registry) SetSandboxPolicy(ctx context.Context, policy json.RawMessage, now time.Time) error {
	_, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.tables.Satellites,
		Item: item{
			SatellitesPartitionKey: str(packagesPart),
			SatellitesSortKey:      str(sandboxSort),
			policyAttr:             str(string(policy)),
			updatedAtAttr:          millis(now),
		},
	})
	return internal(err, "store sandbox policy")
}

// DesiredLockfileHash implements satellite.Registry.
func (r *Registry) DesiredLockfileHash(ctx context.Context) (*string, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &r.tables.Satellites,
		Key:       item{SatellitesPartitionKey: str(packagesPart), SatellitesSortKey: str(packagesSort)},
	})
	if err != nil {
		return nil, internal(err, "read desired lockfile hash")
	}
	if h := getStr(out.Item, lockfileHashAttr); h != "" {
		return &h, nil
	}
	return nil, nil
}

// SetDesiredLockfileHash records the published script-package lockfile.
func (r *Registry) SetDesiredLockfileHash(ctx context.Context, lockfileHash string) error {
	_, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.tables.Satellites,
		Item: item{
			SatellitesPartitionKey: str(packagesPart),
			SatellitesSortKey:      str(packagesSort),
			lockfileHashAttr:       str(lockfileHash),
		},
	})
	return internal(err, "store desired lockfile hash")
}

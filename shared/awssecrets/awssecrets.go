// Package awssecrets is the adapter of satellite.SecretSource over AWS Secrets
// Manager. A run secret NAME is the secret "<prefix>NAME"; its SecretString is
// the value.
package awssecrets

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// API is the part of the Secrets Manager client the source calls.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Source implements satellite.SecretSource.
type Source struct {
	api    API
	prefix string
}

var _ satellite.SecretSource = (*Source)(nil)

// New returns a source that resolves NAME as the secret prefix+NAME. The IAM
// policy of the function grants read on that prefix only.
func New(api API, prefix string) *Source { return &Source{api: api, prefix: prefix} }

// Resolve implements satellite.SecretSource. Secrets are read one by one (a
// collector declares a handful); the first that cannot be resolved ends the
// call with ENOTFOUND naming it. Values never leave the returned map.
func (s *Source) Resolve(ctx context.Context, names []string) (map[string]string, error) {
	values := make(map[string]string, len(names))
	for _, name := range names {
		out, err := s.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.prefix + name)})
		var missing *types.ResourceNotFoundException
		switch {
		case errors.As(err, &missing):
			return nil, satellite.Errorf(satellite.ENOTFOUND, "Secret %s could not be resolved", name)
		case err != nil:
			return nil, satellite.Wrap(err, satellite.EINTERNAL, "Secret "+name+" could not be resolved")
		case out.SecretString == nil:
			return nil, satellite.Errorf(satellite.ENOTFOUND, "Secret %s has no string value", name)
		}
		values[name] = *out.SecretString
	}
	return values, nil
}

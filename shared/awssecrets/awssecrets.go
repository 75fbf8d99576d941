// Package awssecrets is the adapter of satellite.SecretSource over AWS Secrets
// Manager. A run secret NAME is the secret "<prefix>NAME"; its SecretString is
// the value.
package awssecrets

import (
	"context"
	"errors"

	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Source implements satellite.SecretSource.
type Source struct {
	api      *awsapi.Client
	endpoint string
	prefix   string
}

var _ satellite.SecretSource = (*Source)(nil)

// New returns a source that resolves NAME as the secret prefix+NAME. The IAM
// policy of the function grants read on that prefix only. endpoint overrides
// Secrets Manager's regional endpoint when not empty.
func New(api *awsapi.Client, endpoint, prefix string) *Source {
	return &Source{api: api, endpoint: api.Endpoint("secretsmanager", endpoint), prefix: prefix}
}

type getSecretValueInput struct {
	SecretID string `json:"SecretId"`
}

type getSecretValueOutput struct {
	SecretString *string `json:"SecretString"`
}

// Resolve implements satellite.SecretSource. Secrets are read one by one (a
// collector declares a handful); the first that cannot be resolved ends the
// call with ENOTFOUND naming it. Values never leave the returned map.
func (s *Source) Resolve(ctx context.Context, names []string) (map[string]string, error) {
	values := make(map[string]string, len(names))
	for _, name := range names {
		var out getSecretValueOutput
		id := s.prefix + name
		err := s.api.JSON11(ctx, "secretsmanager", "Secrets Manager", s.endpoint, "secretsmanager.GetSecretValue", id, getSecretValueInput{SecretID: id}, &out)
		var apiErr *awsapi.Error
		switch {
		case errors.As(err, &apiErr) && apiErr.Code == "ResourceNotFoundException":
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

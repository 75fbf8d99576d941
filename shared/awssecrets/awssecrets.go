// Package awssecrets is the adapter of satellite.SecretSource over AWS Secrets
// Manager. A run secret NAME is the secret "<prefix>NAME"; its SecretString is
// the value. The names of one request are read together with
// BatchGetSecretValue, up to 20 per call.
package awssecrets

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// MaxBatch is how many secrets one BatchGetSecretValue call may name.
const MaxBatch = 20

// maxPages bounds the NextToken pages followed for one batch: each page
// answers at least one of its at most MaxBatch secrets.
const maxPages = MaxBatch

// API is the part of the Secrets Manager client a Source calls.
type API interface {
	BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
}

var _ API = (*secretsmanager.Client)(nil)

// Source implements satellite.SecretSource.
type Source struct {
	api    API
	prefix string
}

var _ satellite.SecretSource = (*Source)(nil)

// New returns a source that resolves NAME as the secret prefix+NAME through
// api. The IAM policy of the function grants GetSecretValue on that prefix
// only (and BatchGetSecretValue, which has no resource of its own, on "*":
// it reads only what GetSecretValue allows).
func New(api API, prefix string) *Source {
	return &Source{api: api, prefix: prefix}
}

// Resolve implements satellite.SecretSource: one BatchGetSecretValue call
// per 20 names (a collector or a config names a handful). A secret that does
// not exist or holds no string is ENOTFOUND naming it; a secret Secrets
// Manager could not read (access, decryption), or a failed call, is
// EINTERNAL naming it. When several fail, the first of names is reported.
// Values never leave the returned map: errors carry names and AWS's error
// codes only.
func (s *Source) Resolve(ctx context.Context, names []string) (map[string]string, error) {
	unique := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			unique = append(unique, n)
		}
	}
	values := make(map[string]string, len(unique))
	failed := map[string]error{}
	for start := 0; start < len(unique); start += MaxBatch {
		if err := ctx.Err(); err != nil {
			return nil, satellite.Wrap(err, satellite.EINTERNAL, "Secrets could not be resolved before the deadline")
		}
		if err := s.batch(ctx, unique[start:min(start+MaxBatch, len(unique))], values, failed); err != nil {
			return nil, err
		}
	}
	for _, name := range unique {
		if err := failed[name]; err != nil {
			return nil, err
		}
		if _, ok := values[name]; !ok {
			return nil, satellite.Errorf(satellite.EINTERNAL, "Secret %s could not be resolved: Secrets Manager did not answer for it", name)
		}
	}
	return values, nil
}

// batch reads up to MaxBatch names in one call (and the pages it says
// follow), into values or failed.
func (s *Source) batch(ctx context.Context, names []string, values map[string]string, failed map[string]error) error {
	in := &secretsmanager.BatchGetSecretValueInput{SecretIdList: make([]string, len(names))}
	nameOf := make(map[string]string, len(names))
	for i, name := range names {
		in.SecretIdList[i] = s.prefix + name
		nameOf[s.prefix+name] = name
	}
	for page := 1; ; page++ {
		out, err := s.api.BatchGetSecretValue(ctx, in)
		if err != nil {
			return satellite.Wrap(err, satellite.EINTERNAL, "Secrets "+strings.Join(names, ", ")+" could not be resolved")
		}
		for _, v := range out.SecretValues {
			name, ok := nameOf[aws.ToString(v.Name)]
			switch {
			case !ok:
				// Not asked for: not ours to deliver.
			case v.SecretString == nil:
				failed[name] = satellite.Errorf(satellite.ENOTFOUND, "Secret %s has no string value", name)
			default:
				values[name] = *v.SecretString
			}
		}
		for _, e := range out.Errors {
			name, ok := nameOf[aws.ToString(e.SecretId)]
			code := aws.ToString(e.ErrorCode)
			switch {
			case !ok:
			case code == "ResourceNotFoundException":
				failed[name] = satellite.Errorf(satellite.ENOTFOUND, "Secret %s could not be resolved", name)
			default:
				failed[name] = satellite.Errorf(satellite.EINTERNAL, "Secret %s could not be resolved: Secrets Manager answered %s", name, code)
			}
		}
		if aws.ToString(out.NextToken) == "" || answered(names, values, failed) {
			return nil
		}
		if page == maxPages {
			return satellite.Errorf(satellite.EINTERNAL, "Secrets %s could not be resolved: Secrets Manager answered %d pages", strings.Join(names, ", "), page)
		}
		in.NextToken = out.NextToken
	}
}

func answered(names []string, values map[string]string, failed map[string]error) bool {
	for _, n := range names {
		if _, ok := values[n]; !ok && failed[n] == nil {
			return false
		}
	}
	return true
}

// Package awspartition names the DNS suffix of the AWS partition a region
// belongs to (amazonaws.com, amazonaws.com.cn, ...), so endpoints the code
// builds itself work in every partition, not only the commercial one.
package awspartition

import (
	"context"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Default is the commercial partition's DNS suffix.
const Default = "amazonaws.com"

var suffixes sync.Map // region -> DNS suffix

// DNSSuffix returns the DNS suffix of region's partition. It asks the SDK's
// own partition table (through DynamoDB's endpoint rules, which every
// function already links) instead of keeping a copy that would go stale as
// partitions are added. An empty or unknown region is in the commercial
// partition, as the SDK treats it. Answers are remembered per region.
func DNSSuffix(region string) string {
	if s, ok := suffixes.Load(region); ok {
		return s.(string)
	}
	s := resolve(region)
	suffixes.Store(region, s)
	return s
}

func resolve(region string) string {
	if region == "" {
		return Default
	}
	ep, err := dynamodb.NewDefaultEndpointResolverV2().ResolveEndpoint(context.Background(), dynamodb.EndpointParameters{Region: &region})
	if err != nil {
		return Default
	}
	u, err := url.Parse(ep.URI.String())
	if err != nil {
		return Default
	}
	// The regional DynamoDB endpoint is dynamodb.<region>.<dnsSuffix>.
	suffix, ok := strings.CutPrefix(u.Hostname(), "dynamodb."+region+".")
	if !ok || suffix == "" {
		return Default
	}
	return suffix
}

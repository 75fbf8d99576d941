package awspartition_test

import (
	"testing"

	"github.com/checkstack/satellite-backend/shared/awspartition"
)

func TestDNSSuffixFollowsThePartition(t *testing.T) {
	for region, want := range map[string]string{
		"eu-central-1":   "amazonaws.com",
		"us-east-1":      "amazonaws.com",
		"us-gov-west-1":  "amazonaws.com",
		"cn-north-1":     "amazonaws.com.cn",
		"cn-northwest-1": "amazonaws.com.cn",
		"us-iso-east-1":  "c2s.ic.gov",
		"":               "amazonaws.com",
	} {
		if got := awspartition.DNSSuffix(region); got != want {
			t.Errorf("DNSSuffix(%q) = %q, want %q", region, got, want)
		}
	}
}

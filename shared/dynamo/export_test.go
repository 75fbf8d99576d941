package dynamo

// SetBackfillScanLimit makes each step of r's fleet index backfill scan at
// most n items, so that a small table takes several steps.
func SetBackfillScanLimit(r *Registry, n int32) { r.backfillScanLimit = n }

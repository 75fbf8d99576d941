package dynamo

// SetBackfillScanLimit makes each step of r's fleet index backfill scan at
// most n items, so that a small table takes several steps.
func SetBackfillScanLimit(r *Registry, n int32) { r.backfillScanLimit = n }

// SetBeforeAdopt makes r call fn when a heartbeat is about to adopt its
// connection (after it read the satellite), so that a test can land a
// concurrent write in between.
func SetBeforeAdopt(r *Registry, fn func()) { r.beforeAdopt = fn }

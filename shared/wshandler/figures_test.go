package wshandler_test

import ()

// The cost model (make cost) multiplies out figures that tests measure:
// with COST_FIGURES_DIR set, TestRequestBudgets and
// TestHeartbeatCapacityInSteadyState write them there as JSON.

// costFigure is what one message costs.
type costFigure struct {
	DynamoDB   int     `json:"dynamoRequests"` // on the warm instance
	S3         int     `json:"s3Requests"`
	Posts      int     `json:"posts"`
	ReadUnits  float64 `json:"readUnits"` // warm instance
	WriteUnits float64 `json:"writeUnits"`
	// On an instance without the connection's binding cached.
	ColdDynamoDB   int     `json:"coldDynamoRequests"`
	ColdReadUnits  float64 `json:"coldReadUnits"`
	ColdWriteUnits float64 `json:"coldWriteUnits"`
	// DurationMs is the handler's median time in process against DynamoDB
	// Local on the warm instance (one run for authenticate and $disconnect).
	DurationMs float64 `json:"durationMs"`
	// ItemBytes is the size of the item the message stores (results);
	// FeedEntryBytes the size of that result in a results feed message.
	ItemBytes      int `json:"itemBytes,omitempty"`
	FeedEntryBytes int `json:"feedEntryBytes,omitempty"`
}
